//! The Admin actor and the `rpc://` listener: ElectrumX's LocalRPC interface, the
//! commands `electrumx_rpc` (and `ferrumx-rpc`) send. It listens from start-up, before
//! catch-up, so an operator can watch a long sync and stop it cleanly. Requests are
//! newline JSON-RPC with named parameters; no `server.version` is needed and replies
//! have no size limit. The service listens only on loopback unless RPC_ALLOW_REMOTE is
//! set (checked in the configuration): there is no authentication.

use crate::block_processor::{BlockProcessor, ChainUpdate, ForceReorg};
use crate::server::Shutdown;
use crate::session::SessionShared;
use crate::session_manager::{
    Disconnect, GetGroups, GetSessions, GetSummary, GroupRow, InspectSession, SessionRow,
    SessionsSummary, SetLogging,
};
use crate::supervisor::{InjectPanic, faults_enabled, restart_counts};
use actix::prelude::*;
use ferrumx::admin::{coin_class_name, formatted_time, query_lines};
use ferrumx::cache::CacheStats;
use ferrumx::coins::Coin;
use ferrumx::config::Config;
use ferrumx::daemon::{Daemon, DaemonAuth, DaemonUrl};
use ferrumx::hashes::Height;
use ferrumx::latency::LatencySnapshot;
use ferrumx::mempool::SharedMempool;
use ferrumx::protocol::jsonrpc::{self, Dialect, Item, Message as RpcMessage, Request};
use ferrumx::protocol::params::{Signature, bind, non_negative_integer, py_str};
use ferrumx::protocol::{RpcError, with_commas};
use ferrumx::store::Store;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the Admin actor is given at start-up.
pub struct AdminSetup {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub daemon: Daemon,
    pub mempool: SharedMempool,
    pub processor: Addr<BlockProcessor>,
    pub shutdown: Shutdown,
    /// The supervised actors, by name, for the test-only `test_panic` command.
    pub supervised: Vec<(&'static str, Recipient<InjectPanic>)>,
}

pub struct Admin {
    setup: AdminSetup,
    started: Instant,
    /// The first catch-up is done (a simulated reorg is refused before).
    caught_up: bool,
    /// The daemon's height at the last chain update.
    daemon_height: Option<Height>,
    /// What client sessions share, once the client listeners are open.
    shared: Option<Arc<SessionShared>>,
    /// Open admin connections by session id (ids are shared with client sessions).
    rpc_connections: BTreeMap<u64, RpcConnection>,
    /// (when, height, tx count) of the index over the last minute, for the sync rate.
    progress: std::collections::VecDeque<(Instant, Height, u64)>,
}

/// The index's progress is sampled this often (and on every chain update); the sync rate
/// is measured over PROGRESS_WINDOW, from at most PROGRESS_SAMPLES samples.
const PROGRESS_SAMPLE: Duration = Duration::from_secs(5);
const PROGRESS_WINDOW: Duration = Duration::from_secs(60);
const PROGRESS_SAMPLES: usize = 1000;

/// An open admin RPC connection: `sessions` lists it with the flag R, as ElectrumX lists
/// its LocalRPC sessions.
struct RpcConnection {
    peer: SocketAddr,
    connected: Instant,
    recv_count: u64,
    recv_size: u64,
    send_count: u64,
    send_size: u64,
}

/// From an admin connection's task to the Admin actor.
#[derive(Message)]
#[rtype(result = "()")]
enum RpcTraffic {
    Opened {
        id: u64,
        peer: SocketAddr,
    },
    Exchanged {
        id: u64,
        received: usize,
        sent: usize,
    },
    Closed {
        id: u64,
    },
}

impl Admin {
    pub fn new(setup: AdminSetup) -> Admin {
        Admin {
            setup,
            started: Instant::now(),
            caught_up: false,
            daemon_height: None,
            shared: None,
            rpc_connections: BTreeMap::new(),
            progress: std::collections::VecDeque::new(),
        }
    }

    fn sample_progress(&mut self) {
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
                f64::from(last.1.saturating_sub(first.1)) / secs,
                last.2.saturating_sub(first.2) as f64 / secs,
            )
        })
    }

    /// The admin connections as rows of the `sessions` list.
    fn rpc_rows(&self) -> Vec<SessionRow> {
        self.rpc_connections
            .iter()
            .map(|(&id, c)| SessionRow {
                id,
                flags: "R".into(),
                peer: c.peer,
                client: String::new(),
                protocol: String::new(),
                cost: 0.0,
                extra_cost: 0.0,
                reqs: 0,
                txs_sent: 0,
                subs: 0,
                recv_count: c.recv_count,
                recv_size: c.recv_size,
                send_count: c.send_count,
                send_size: c.send_size,
                time: c.connected.elapsed(),
            })
            .collect()
    }

    /// Test-only (FERRUMX_TEST_FAULTS=1): makes the named supervised actor panic.
    fn test_panic(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("test_panic", params, &sig(&["actor"], 1))?;
        let name = slots[0].map(py_str).unwrap_or_default();
        let (name, actor) = self
            .setup
            .supervised
            .iter()
            .find(|(actor, _)| *actor == name)
            .ok_or_else(|| RpcError::bad_request(format!("no supervised actor {name:?}")))?;
        actor.do_send(InjectPanic);
        Ok(json!(format!("panic injected into {name}")))
    }

    /// `inspect_session`: ElectrumX 2.0's dict for a client session.
    fn inspect_session(&self, params: &Value) -> ResponseFuture<Result<Value, RpcError>> {
        let ready =
            |result| -> ResponseFuture<Result<Value, RpcError>> { Box::pin(async move { result }) };
        let id = match bind("inspect_session", params, &sig(&["session_id"], 1)) {
            Ok(slots) => match slots[0].and_then(Value::as_u64) {
                Some(id) => id,
                None => {
                    return ready(Err(RpcError::bad_request(format!(
                        "session_id must be a session number, not {}",
                        slots[0].map_or_else(|| "None".into(), py_str)
                    ))));
                }
            },
            Err(e) => return ready(Err(e)),
        };
        if self.rpc_connections.contains_key(&id) {
            // ElectrumX's wording, Python class name included.
            return ready(Err(RpcError::bad_request(format!(
                "session with id={id} is not a client session, but <class 'electrumx.server.session.LocalRPC'>"
            ))));
        }
        let manager = self.shared.as_ref().map(|shared| shared.manager.clone());
        Box::pin(async move {
            let found = match manager {
                Some(manager) => manager.send(InspectSession { id }).await.map_err(|e| {
                    log::error!("session manager unavailable: {e}");
                    RpcError::internal()
                })?,
                None => None,
            };
            found.ok_or_else(|| RpcError::bad_request(format!("no session with id={id}")))
        })
    }

    fn stats(&self) -> Stats {
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
    fn full_stats(&self) -> impl Future<Output = Stats> + 'static {
        let mut stats = self.stats();
        let shared = self.shared.clone();
        async move {
            if let Some(shared) = shared {
                stats.sessions = shared.manager.send(GetSummary).await.ok();
            }
            stats
        }
    }

    /// `getinfo`: ElectrumX 2.0's keys (no sessions before the client listeners open).
    fn getinfo(coin: &Coin, daemon: &Daemon, stats: &Stats, peers: Value) -> Value {
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
            "db height": stats.db_height.map_or(-1, i64::from),
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
        info
    }

    /// `memory`: ferrumx's answer to ElectrumX's Python-only debug_memusage commands.
    fn memory(&self, stats: &Stats) -> Value {
        let entries: Map<String, Value> = stats
            .caches
            .iter()
            .map(|(name, s)| ((*name).to_string(), json!(s.entries)))
            .collect();
        json!({
            "resident memory": stats.resident_bytes.map(kilobytes),
            "index file": stats.index_bytes.map(kilobytes),
            "index memory map": kilobytes(self.setup.store.map_size() as u64),
            "mempool transactions": stats.mempool_txs,
            "mempool vsize": stats.mempool_vsize,
            "cache entries": entries,
        })
    }

    fn daemon_url(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("daemon_url", params, &sig(&["daemon_url"], 0))?;
        let text = match slots[0] {
            None | Some(Value::Null) => String::new(),
            Some(value) => py_str(value),
        };
        let urls = if text.trim().is_empty() {
            self.setup.config.daemon_urls.clone()
        } else {
            let cookie = self.cookie_file();
            DaemonUrl::parse_list(&text, self.setup.config.coin.rpc_port, cookie.as_deref())
                .map_err(|e| RpcError::bad_request(format!("an error occurred: {e}")))?
        };
        self.setup
            .daemon
            .set_urls(urls)
            .map_err(|e| RpcError::bad_request(format!("an error occurred: {e}")))?;
        Ok(Value::String(format!(
            "now using daemon at {}",
            self.setup.daemon.current_url()
        )))
    }

    /// The cookie file for a new URL without credentials: the configured one, else the
    /// coin's default.
    fn cookie_file(&self) -> Option<PathBuf> {
        let configured = self
            .setup
            .config
            .daemon_urls
            .iter()
            .find_map(|url| match &url.auth {
                DaemonAuth::CookieFile(path) => Some(path.clone()),
                DaemonAuth::UserPass { .. } => None,
            });
        configured.or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| self.setup.config.coin.default_cookie_file(home.as_ref()))
        })
    }

    fn reorg(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("reorg", params, &sig(&["count"], 1))?;
        let count = non_negative_integer(slots[0].unwrap_or(&Value::Null))?;
        if !self.caught_up {
            return Err(RpcError::bad_request("still catching up with daemon"));
        }
        let blocks = u32::try_from(count).unwrap_or(u32::MAX);
        self.setup.processor.do_send(ForceReorg(blocks));
        Ok(Value::String(format!(
            "scheduled a reorg of {} blocks",
            with_commas(count.into())
        )))
    }

    /// `add_peer REAL_NAME`: the peer joins the list (and, with discovery on, is
    /// checked). Before the client listeners open there is no peer list yet.
    fn add_peer(&self, params: &Value) -> Result<Value, RpcError> {
        let slots = bind("add_peer", params, &sig(&["real_name"], 1))?;
        let real_name = py_str(slots[0].unwrap_or(&Value::Null));
        if self
            .peers(|peers, _| peers.add_rpc_peer(&real_name))
            .is_none()
        {
            log::info!("admin add_peer {real_name:?}: peer discovery has not started");
        }
        Ok(Value::String(format!("peer '{real_name}' added")))
    }

    /// Something of the peer directory (once the client listeners are open).
    fn peers<R>(&self, f: impl FnOnce(&ferrumx::peers::PeerDirectory, f64) -> R) -> Option<R> {
        let shared = self.shared.as_ref()?;
        Some(f(&shared.server.peers, ferrumx::peers::unix_now()))
    }
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

fn sig(names: &'static [&'static str], required: usize) -> Signature {
    Signature {
        names,
        required,
        extra_ok: false,
    }
}

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

impl Actor for Admin {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample_progress();
        ctx.run_interval(PROGRESS_SAMPLE, |admin, _| admin.sample_progress());
    }
}

/// One admin command.
#[derive(Message)]
#[rtype(result = "Result<Value, RpcError>")]
pub struct Command {
    pub method: String,
    pub params: Value,
}

impl Handler<Command> for Admin {
    type Result = ResponseFuture<Result<Value, RpcError>>;

    fn handle(&mut self, command: Command, _: &mut Context<Self>) -> Self::Result {
        let params = &command.params;
        let no_args = |method: &str| bind(method, params, &sig(&[], 0)).map(|_| ());
        let ready =
            |result: Result<Value, RpcError>| -> Self::Result { Box::pin(async move { result }) };
        match command.method.as_str() {
            "getinfo" => {
                if let Err(e) = no_args("getinfo") {
                    return ready(Err(e));
                }
                let stats = self.full_stats();
                let coin = self.setup.config.coin;
                let daemon = self.setup.daemon.clone();
                let peers = self.peers(|peers, now| peers.counts(now)).unwrap_or_else(
                    || json!({"bad": 0, "good": 0, "never": 0, "stale": 0, "total": 0}),
                );
                Box::pin(async move {
                    let stats = stats.await;
                    let mut info = Admin::getinfo(coin, &daemon, &stats, peers);
                    // Not in ElectrumX: failed actors restarted, by actor.
                    info["restarts"] = json!(stats.restarts);
                    // A fresh height when the daemon answers at once; else the last known.
                    let fresh = tokio::task::spawn_blocking(move || {
                        daemon.client().call_once::<Height>("getblockcount", &[])
                    })
                    .await;
                    if let Ok(Ok(height)) = fresh {
                        info["daemon height"] = json!(height);
                    }
                    Ok(info)
                })
            }
            "memory" => ready(no_args("memory").map(|()| self.memory(&self.stats()))),
            "sessions" | "groups" | "disconnect" | "log" => {
                let shared = self.shared.clone();
                let method = command.method;
                let params = command.params;
                let rpc_rows = self.rpc_rows();
                Box::pin(async move { sessions_command(shared, &method, &params, rpc_rows).await })
            }
            "inspect_session" => self.inspect_session(params),
            "test_panic" if faults_enabled() => ready(self.test_panic(params)),
            "daemon_url" => ready(self.daemon_url(params)),
            "stop" => ready(no_args("stop").map(|()| Value::String("stopping".into()))),
            "reorg" => ready(self.reorg(params)),
            "peers" => ready(no_args("peers").map(|()| {
                self.peers(|peers, now| peers.rpc_entries(now))
                    .unwrap_or_else(|| json!([]))
            })),
            "add_peer" => ready(self.add_peer(params)),
            "query" => {
                let store = Arc::clone(&self.setup.store);
                let coin = self.setup.config.coin;
                let params = command.params;
                Box::pin(async move {
                    let (items, limit) = query_params(&params)?;
                    tokio::task::spawn_blocking(move || {
                        let snapshot = store.snapshot()?;
                        query_lines(&snapshot, coin, &items, limit)
                    })
                    .await
                    .map_err(|e| {
                        log::error!("admin query task failed: {e}");
                        RpcError::internal()
                    })?
                    .map(|lines| json!(lines))
                    .map_err(|e| {
                        log::error!("admin query: {e}");
                        RpcError::internal()
                    })
                })
            }
            method => ready(Err(RpcError::new(
                RpcError::METHOD_NOT_FOUND,
                format!("unknown method \"{method}\""),
            ))),
        }
    }
}

impl Handler<RpcTraffic> for Admin {
    type Result = ();

    fn handle(&mut self, traffic: RpcTraffic, _: &mut Context<Self>) {
        match traffic {
            RpcTraffic::Opened { id, peer } => {
                self.rpc_connections.insert(
                    id,
                    RpcConnection {
                        peer,
                        connected: Instant::now(),
                        recv_count: 0,
                        recv_size: 0,
                        send_count: 0,
                        send_size: 0,
                    },
                );
            }
            RpcTraffic::Exchanged { id, received, sent } => {
                if let Some(c) = self.rpc_connections.get_mut(&id) {
                    c.recv_count += 1;
                    c.recv_size += received as u64;
                    c.send_count += u64::from(sent > 0);
                    c.send_size += sent as u64;
                }
            }
            RpcTraffic::Closed { id } => {
                self.rpc_connections.remove(&id);
            }
        }
    }
}

/// The commands the session manager answers. Before the client listeners open there
/// are no sessions and no groups.
async fn sessions_command(
    shared: Option<Arc<SessionShared>>,
    method: &str,
    params: &Value,
    rpc_rows: Vec<SessionRow>,
) -> Result<Value, RpcError> {
    let unavailable = |e: MailboxError| {
        log::error!("session manager unavailable: {e}");
        RpcError::internal()
    };
    match method {
        "sessions" | "groups" => {
            bind(method, params, &sig(&[], 0))?;
            if method == "sessions" {
                let mut rows = match &shared {
                    Some(shared) => shared
                        .manager
                        .send(GetSessions)
                        .await
                        .map_err(unavailable)?,
                    None => Vec::new(),
                };
                rows.extend(rpc_rows);
                rows.sort_by_key(|row| row.id);
                return Ok(Value::Array(rows.iter().map(session_row).collect()));
            }
            let Some(shared) = shared else {
                return Ok(json!([]));
            };
            let manager = &shared.manager;
            let rows = manager.send(GetGroups).await.map_err(unavailable)?;
            Ok(Value::Array(rows.iter().map(group_row).collect()))
        }
        _ => {
            let slots = bind(method, params, &sig(&["session_ids"], 1))?;
            let targets = match slots[0] {
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect::<Vec<String>>(),
                _ => return Err(RpcError::bad_request("expected a list of session IDs")),
            };
            let lines = match shared.as_ref().map(|shared| &shared.manager) {
                Some(manager) if method == "disconnect" => manager
                    .send(Disconnect { targets })
                    .await
                    .map_err(unavailable)?,
                Some(manager) => manager
                    .send(SetLogging { targets })
                    .await
                    .map_err(unavailable)?,
                None => targets
                    .iter()
                    .map(|target| format!("unknown: {target}"))
                    .collect(),
            };
            Ok(json!(lines))
        }
    }
}

/// ElectrumX's `sessions` tuple.
fn session_row(row: &SessionRow) -> Value {
    json!([
        row.id,
        row.flags,
        row.peer.to_string(),
        row.client,
        row.protocol,
        row.cost,
        row.extra_cost,
        row.reqs,
        row.txs_sent,
        row.subs,
        row.recv_count,
        row.recv_size,
        row.send_count,
        row.send_size,
        row.time.as_secs_f64(),
    ])
}

/// ElectrumX's `groups` list.
fn group_row(row: &GroupRow) -> Value {
    json!([
        row.name,
        row.sessions,
        row.cost,
        row.retained,
        row.reqs,
        row.txs_sent,
        row.subs,
        row.recv_count,
        row.recv_size,
        row.send_count,
        row.send_size,
    ])
}

fn query_params(params: &Value) -> Result<(Vec<String>, usize), RpcError> {
    let slots = bind("query", params, &sig(&["items", "limit"], 2))?;
    let items = match slots[0] {
        Some(Value::Array(items)) => items.iter().map(py_str).collect(),
        Some(Value::String(item)) => vec![item.clone()],
        _ => return Err(RpcError::bad_request("items should be a list of strings")),
    };
    let limit = non_negative_integer(slots[1].unwrap_or(&Value::Null))?;
    Ok((items, usize::try_from(limit).unwrap_or(usize::MAX)))
}

/// The first catch-up finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CaughtUp;

impl Handler<CaughtUp> for Admin {
    type Result = ();

    fn handle(&mut self, _: CaughtUp, _: &mut Context<Self>) {
        self.caught_up = true;
    }
}

/// The client listeners opened: what their sessions share (caches, counters).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Arc<SessionShared>);

impl Handler<Attach> for Admin {
    type Result = ();

    fn handle(&mut self, Attach(shared): Attach, _: &mut Context<Self>) {
        self.shared = Some(shared);
    }
}

impl Handler<ChainUpdate> for Admin {
    type Result = ();

    fn handle(&mut self, update: ChainUpdate, _: &mut Context<Self>) {
        self.daemon_height = Some(update.daemon_height);
        self.sample_progress();
    }
}

/// The numbers behind the metrics endpoint.
#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

impl Handler<GetStats> for Admin {
    type Result = ResponseFuture<Stats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.full_stats())
    }
}

/// Stop the server (after the `stop` reply was written).
#[derive(Message)]
#[rtype(result = "()")]
struct StopServer;

impl Handler<StopServer> for Admin {
    type Result = ();

    fn handle(&mut self, _: StopServer, _: &mut Context<Self>) {
        log::info!("admin stop command: shutting down");
        actix_rt::spawn(self.setup.shutdown.clone().run());
    }
}

/// Accepts admin connections until the server stops.
pub async fn serve(listener: TcpListener, admin: Addr<Admin>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                log::debug!("admin connection from {peer}");
                actix_rt::spawn(connection(stream, peer, admin.clone()));
            }
            Err(e) => {
                log::warn!("admin listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, admin: Addr<Admin>) {
    let id = crate::listener::next_session_id();
    admin.do_send(RpcTraffic::Opened { id, peer });
    serve_connection(stream, id, &admin).await;
    admin.do_send(RpcTraffic::Closed { id });
}

async fn serve_connection(stream: TcpStream, id: u64, admin: &Addr<Admin>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut dialect: Option<Dialect> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (reply, stop) = answer(&line, &mut dialect, admin).await;
        let sent = reply.as_ref().map_or(0, |reply| reply.len() + 1);
        admin.do_send(RpcTraffic::Exchanged {
            id,
            received: line.len(),
            sent,
        });
        if let Some(mut reply) = reply {
            reply.push('\n');
            if writer.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
        if stop {
            let _ = writer.flush().await;
            admin.do_send(StopServer);
        }
    }
}

/// The reply to one line (none for notifications), and whether it stopped the server.
async fn answer(
    line: &[u8],
    dialect: &mut Option<Dialect>,
    admin: &Addr<Admin>,
) -> (Option<String>, bool) {
    let message = match jsonrpc::parse_message(line, dialect) {
        Ok(message) => message,
        Err(error) => {
            return (
                Some(jsonrpc::response(*dialect, &Value::Null, &Err(error))),
                false,
            );
        }
    };
    let dialect = *dialect;
    match message {
        RpcMessage::Single(item) => {
            let (reply, stop) = answer_item(item, dialect, admin).await;
            (reply, stop)
        }
        RpcMessage::Batch(items) => {
            let mut parts = Vec::new();
            let mut stop = false;
            for item in items {
                let (reply, stopped) = answer_item(item, dialect, admin).await;
                parts.extend(reply);
                stop |= stopped;
            }
            let reply = (!parts.is_empty()).then(|| format!("[{}]", parts.join(",")));
            (reply, stop)
        }
    }
}

async fn answer_item(
    item: Item,
    dialect: Option<Dialect>,
    admin: &Addr<Admin>,
) -> (Option<String>, bool) {
    let Request { method, params, id } = match item {
        Item::Request(request) => request,
        Item::Invalid { id, error } => {
            return (Some(jsonrpc::response(dialect, &id, &Err(error))), false);
        }
        Item::Response => return (None, false),
        Item::Answered { id, result } => {
            return (Some(jsonrpc::response(dialect, &id, &Ok(result))), false);
        }
    };
    let is_stop = method == "stop";
    let result = match admin.send(Command { method, params }).await {
        Ok(result) => result,
        Err(e) => {
            log::error!("admin actor unavailable: {e}");
            Err(RpcError::internal())
        }
    };
    let stop = is_stop && result.is_ok();
    let reply = id.map(|id| jsonrpc::response(dialect, &id, &result));
    (reply, stop)
}
