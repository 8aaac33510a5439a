//! The server's numbers, as the Admin actor gathers them for `getinfo`, `memory` and the
//! metrics endpoint: the index (with its sync rate over the last minute), the daemon's
//! height, the mempool, the caches, memory, restarts and, once clients are served, the
//! session manager's summary and request latency.

use super::Admin;
use crate::session_manager::GetSummary;
use crate::supervisor::restart_counts;
use crate::tables::SessionsSummary;
use ferrumx::admin::coin_class_name;
use ferrumx::cache::CacheStats;
use ferrumx::coins::Coin;
use ferrumx::daemon::Daemon;
use ferrumx::hashes::Height;
use ferrumx::latency::LatencySnapshot;
use ferrumx::python::{formatted_time, with_commas};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The index's progress is sampled this often (and on every chain update); the sync rate
/// is measured over PROGRESS_WINDOW, from at most PROGRESS_SAMPLES samples.
pub(super) const PROGRESS_SAMPLE: Duration = Duration::from_secs(5);
const PROGRESS_WINDOW: Duration = Duration::from_secs(60);
const PROGRESS_SAMPLES: usize = 1000;

/// The process's resident memory, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The server's numbers, for `getinfo`, `memory` and the metrics endpoint.
#[derive(Clone, Debug)]
pub struct Stats {
    pub db_height: Option<Height>,
    pub daemon_height: Option<Height>,
    pub caught_up: bool,
    pub mempool_txs: usize,
    pub mempool_vsize: u64,
    /// Empty until the client listeners open.
    pub caches: Vec<(&'static str, CacheStats)>,
    pub txs_sent: u64,
    pub uptime: Duration,
    pub resident_bytes: Option<u64>,
    pub index_bytes: Option<u64>,
    /// The session manager's counts, once the client listeners are open.
    pub sessions: Option<SessionsSummary>,
    /// Client request latency, once the client listeners are open.
    pub latency: Option<LatencySnapshot>,
    /// Transactions in the index.
    pub index_txs: Option<u64>,
    /// Blocks and transactions indexed per second over the last minute.
    pub sync_rate: Option<(f64, f64)>,
    /// Restarts of failed actors, by actor.
    pub restarts: BTreeMap<&'static str, u64>,
}

impl Admin {
    pub(super) fn sample_progress(&mut self) {
        let Ok(Some(state)) = self.setup.store.state() else {
            return;
        };
        let Some(height) = state.height else { return };
        while self.progress.len() >= PROGRESS_SAMPLES
            || self
                .progress
                .front()
                .is_some_and(|sample| sample.0.elapsed() > PROGRESS_WINDOW)
        {
            self.progress.pop_front();
        }
        self.progress
            .push_back((Instant::now(), height, state.tx_count));
    }

    /// Blocks and transactions per second between the oldest and newest samples.
    fn sync_rate(&self) -> Option<(f64, f64)> {
        let (first, last) = (self.progress.front()?, self.progress.back()?);
        let secs = last.0.saturating_duration_since(first.0).as_secs_f64();
        (secs > 0.0).then(|| {
            (
                f64::from(last.1.blocks_after(first.1)) / secs,
                last.2.saturating_sub(first.2) as f64 / secs,
            )
        })
    }

    pub(super) fn stats(&self) -> Stats {
        let db_height = self
            .setup
            .store
            .snapshot()
            .and_then(|s| s.tip())
            .ok()
            .flatten()
            .map(|(height, _)| height);
        let (mempool_txs, mempool_vsize) = {
            let mempool = self
                .setup
                .mempool
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            (mempool.len(), mempool.vsize())
        };
        let caches = match &self.shared {
            Some(shared) => {
                let state = &shared.state;
                vec![
                    ("estimatefee", state.estimatefee_cache.stats()),
                    ("history", state.history_cache.stats()),
                    ("merkle txid", state.merkle_cache.stats()),
                    ("txids", state.txids_cache.stats()),
                ]
            }
            None => Vec::new(),
        };
        Stats {
            db_height,
            daemon_height: self.daemon_height,
            caught_up: self.caught_up,
            mempool_txs,
            mempool_vsize,
            caches,
            txs_sent: self
                .shared
                .as_ref()
                .map_or(0, |s| s.state.txs_sent.load(Ordering::Relaxed)),
            uptime: self.started.elapsed(),
            resident_bytes: resident_bytes(),
            index_bytes: self.setup.store.disk_size().ok(),
            sessions: None,
            latency: self.shared.as_ref().map(|s| s.latency.snapshot()),
            index_txs: self.progress.back().map(|sample| sample.2),
            sync_rate: self.sync_rate(),
            restarts: restart_counts(),
        }
    }

    /// [`Self::stats`] with the session manager's summary, once there is one.
    pub(super) fn full_stats(&self) -> impl Future<Output = Stats> + 'static {
        let mut stats = self.stats();
        let shared = self.shared.clone();
        async move {
            if let Some(shared) = shared {
                stats.sessions = shared.manager.send(GetSummary).await.ok();
            }
            stats
        }
    }

    /// `getinfo`: ElectrumX 2.0's keys (no sessions before the client listeners open) and
    /// the documented ones ([`seed_keys`]).
    pub(super) fn getinfo(coin: &Coin, daemon: &Daemon, stats: &Stats, peers: Value) -> Value {
        let caches: Map<String, Value> = stats
            .caches
            .iter()
            .map(|(name, s)| ((*name).to_string(), Value::String(cache_line(s))))
            .collect();
        let mut info = json!({
            "caches": caches,
            "coin": coin_class_name(coin),
            "daemon": daemon.current_url().to_string(),
            "daemon height": stats.daemon_height,
            "db height": stats.db_height.map_or(-1, |h| i64::from(h.to_u32())),
            "peers": peers,
            "pid": std::process::id(),
            "txs sent": stats.txs_sent,
            "uptime": formatted_time(stats.uptime.as_secs(), " "),
            "version": ferrumx::protocol::server::software_version(),
        });
        if let (Some(summary), Value::Object(info)) = (&stats.sessions, &mut info) {
            info.insert("groups".into(), json!(summary.groups));
            info.insert("sessions".into(), summary.sessions_json());
            info.insert("request counts".into(), json!(summary.request_counts));
            info.insert("request total".into(), json!(summary.request_total));
        }
        if let Value::Object(info) = &mut info {
            info.extend(seed_keys(stats));
        }
        info
    }

    /// `memory`: ferrumx's answer to ElectrumX's Python-only debug_memusage commands.
    pub(super) fn memory(&self, stats: &Stats) -> Value {
        let entries: Map<String, Value> = stats
            .caches
            .iter()
            .map(|(name, s)| ((*name).to_string(), json!(s.entries)))
            .collect();
        // Each table's pages (what the index costs, table by table; the file also
        // holds free pages).
        let tables: Map<String, Value> = self
            .setup
            .store
            .table_sizes()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, bytes, entries)| {
                let text = format!(
                    "{} bytes, {} entries",
                    with_commas(i128::from(bytes)),
                    with_commas(i128::from(entries))
                );
                (name.to_string(), Value::String(text))
            })
            .collect();
        json!({
            "resident memory": stats.resident_bytes.map(kilobytes),
            "index file": stats.index_bytes.map(kilobytes),
            "index tables": tables,
            "index memory map": kilobytes(self.setup.store.map_size() as u64),
            "mempool transactions": stats.mempool_txs,
            "mempool vsize": stats.mempool_vsize,
            "cache entries": entries,
        })
    }
}

/// The keys of ElectrumX's documented `getinfo` (its RPC interface page, which older
/// tools read), beside ElectrumX 2.0's: `peers` and `sessions` are 2.0's objects (their
/// `total` and `count` are the documented numbers); `groups` and `pid` are the same in
/// both. Before the client listeners open there are no sessions: their numbers are 0.
fn seed_keys(stats: &Stats) -> Map<String, Value> {
    let summary = stats.sessions.clone().unwrap_or_default();
    let mut keys = Map::new();
    for (key, value) in [
        ("closing", json!(summary.closing)),
        ("daemon_height", json!(stats.daemon_height)),
        (
            "db_height",
            json!(stats.db_height.map_or(-1, |h| i64::from(h.to_u32()))),
        ),
        ("errors", json!(summary.errors)),
        ("groups", json!(summary.groups)),
        ("logged", json!(summary.logged)),
        ("paused", json!(summary.paused)),
        ("requests", json!(summary.pending_requests)),
        ("subs", json!(summary.subs_sh + summary.subs_txo)),
        ("txs_sent", json!(stats.txs_sent)),
    ] {
        keys.insert(key.to_string(), value);
    }
    keys
}

/// `N lookups, N hits, N entries, hitrate 0.xxxx`, as ElectrumX's getinfo shows a cache.
fn cache_line(stats: &CacheStats) -> String {
    format!(
        "{} lookups, {} hits, {} entries, hitrate {:.4}",
        stats.lookups,
        stats.hits,
        stats.entries,
        stats.hits as f64 / stats.lookups.max(1) as f64
    )
}

fn kilobytes(bytes: u64) -> String {
    format!("{} KB", with_commas(i128::from(bytes / 1024)))
}
