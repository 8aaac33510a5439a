//! Writing what is pending in one LMDB write transaction, rows sorted by key.

use super::pending::{Pending, UtxoRow};
use super::{IndexError, Indexer};
use crate::hashes::TxNum;
use crate::schema::{self, UtxoKey};
use crate::store::runs::{self, RunKind};
use crate::store::{StoreError, Tables, WriteTxn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Indexer {
    /// Writes everything pending in one transaction.
    pub fn flush(&mut self) -> Result<(), IndexError> {
        // The long-lived reader must end before the commit so LMDB can reuse pages.
        self.reader = None;
        if self.pending.headers.is_empty() {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        // LMDB copies the pages it changes: room for the new data a few times over.
        store.ensure_room(self.pending_bytes().saturating_mul(3))?;
        let mut pending = std::mem::take(&mut self.pending);
        let touched = std::mem::take(&mut pending.touched);
        let tables = store.tables()?;
        let mut phases = Phases::start();
        // While the catch-up writes runs, they are sorted and written on another thread
        // as the LMDB part of the flush goes on (the daemon idles during a flush, so a
        // core is free); joined on every path before the commit that lists them.
        let runs_writer = if self.write_runs {
            let history = std::mem::take(&mut pending.history);
            let spends = std::mem::take(&mut pending.spends);
            let dir = PathBuf::from(store.dir());
            let id = self.state.tx_count;
            let spawned = std::thread::Builder::new()
                .name("flush-runs".into())
                .spawn(move || write_flush_runs(&dir, id, history, spends));
            Some((id, spawned.map_err(writer_thread_error)))
        } else {
            None
        };
        let written = self.write_pending(&tables, &mut pending, &mut phases);
        let runs_written = match runs_writer {
            None => Ok(None),
            Some((id, spawned)) => spawned
                .and_then(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(writer_thread_error(std::io::Error::other("panicked")))
                    })
                })
                .map(|()| Some(id)),
        };
        phases.end("runs");
        let mut wtxn = written?;
        if let Some(id) = runs_written.map_err(StoreError::from)? {
            self.state.runs.push(id);
            store.note_runs_listed(true);
        }
        wtxn.put_state(&self.state)?;
        wtxn.commit()?;
        phases.end("commit");
        phases.log(pending.headers.len());
        self.committed_tx_count = self.state.tx_count;
        self.pending.touched = touched;
        Ok(())
    }

    /// Everything pending but the runs and the state, in one write transaction left
    /// open for the commit.
    fn write_pending<'t>(
        &self,
        tables: &'t Tables,
        pending: &mut Pending,
        phases: &mut Phases,
    ) -> Result<WriteTxn<'t>, IndexError> {
        let mut wtxn = tables.write_txn()?;

        for ((height, header), count) in pending.headers.iter().zip(&pending.tx_counts) {
            wtxn.append_block(*height, header, *count)?;
        }
        for (offset, txid) in pending.txids.iter().enumerate() {
            wtxn.append_txid(TxNum(self.committed_tx_count + offset as u64), txid)?;
        }

        // Sorted rows go into an empty table by appending, without a tree search each:
        // the first flush of an initial sync is usually the largest. Into a full table,
        // key order makes neighbouring writes share pages.
        // As big-endian integers (13 bytes, then zeros), which sort as the keys do.
        let mut txid_keys: Vec<u128> = pending
            .txids
            .iter()
            .enumerate()
            .map(|(offset, txid)| {
                let key =
                    schema::txid_index_key(txid, TxNum(self.committed_tx_count + offset as u64));
                let mut wide = [0u8; 16];
                wide[..key.len()].copy_from_slice(&key);
                u128::from_be_bytes(wide)
            })
            .collect();
        txid_keys.sort_unstable();
        phases.end("blocks and txids");
        wtxn.put_txid_index(txid_keys.iter().map(|wide| {
            let mut key = [0u8; schema::TXID_INDEX_KEY_LEN];
            key.copy_from_slice(&wide.to_be_bytes()[..schema::TXID_INDEX_KEY_LEN]);
            key
        }))?;
        drop(txid_keys);
        phases.end("txid index");

        if !self.write_runs {
            pending.history.sort_unstable();
            wtxn.put_history_sorted(
                pending
                    .history
                    .iter()
                    .map(|key| schema::decode_history_key(&key.to_be_bytes())),
            )?;
            phases.end("history");
        }

        // Spent outputs, in key order: the outpoints by age (young ones share the last
        // pages), the UTXOs by script.
        pending
            .spent_stored
            .sort_unstable_by_key(|s| (s.tx_num, s.vout));
        for spent in &pending.spent_stored {
            wtxn.delete_outpoint(spent.tx_num, spent.vout)?;
        }
        phases.end("spent outpoints");
        // While runs are written the UTXO table is left alone (the sync reads the
        // outpoints): the merge rebuilds it from them.
        let first_tx_num = self.committed_tx_count;
        if !self.write_runs {
            let mut spent_utxos: Vec<UtxoKey> = pending
                .spent_stored
                .iter()
                .map(|s| schema::utxo_key(&s.hashx, s.tx_num, s.vout))
                .collect();
            spent_utxos.sort_unstable();
            for key in &spent_utxos {
                wtxn.delete_utxo(key)?;
            }
            drop(spent_utxos);
            phases.end("spent utxos");

            let mut utxo_rows: Vec<UtxoRow> = pending
                .unspent(first_tx_num)
                .map(|(tx_num, vout, output)| {
                    (schema::utxo_key(&output.hashx, tx_num, vout), output.value)
                })
                .collect();
            utxo_rows.sort_unstable_by_key(|a| a.0);
            wtxn.put_utxos(&utxo_rows)?;
            drop(utxo_rows);
            phases.end("new utxos");
        }
        // New outputs have the chain's highest tx_nums, and come in key order: each goes
        // at the end.
        for (tx_num, vout, output) in pending.unspent(first_tx_num) {
            wtxn.append_outpoint(tx_num, vout, &output.hashx, output.value)?;
        }
        phases.end("new outpoints");

        if !self.write_runs {
            pending
                .spends
                .sort_unstable_by_key(|(tx_num, vout, _)| (*tx_num, *vout));
            wtxn.put_spends(&pending.spends)?;
            phases.end("spends");
        }

        for (height, record) in &pending.undo {
            wtxn.put_undo(*height, record)?;
        }
        if let Some(height) = self.state.height {
            // Undo older than REORG_LIMIT can never be used.
            if let Some(oldest_kept) = height.checked_sub(self.reorg_limit) {
                wtxn.prune_undo_below(oldest_kept)?;
            }
        }

        phases.end("undo");
        Ok(wtxn)
    }
}

fn writer_thread_error(source: std::io::Error) -> runs::RunError {
    runs::RunError::Io {
        path: "the flush's run writer thread".into(),
        source,
    }
}

/// A flush's history and spends, sorted, as its runs `id`: on disk (synced) when this
/// returns.
fn write_flush_runs(
    dir: &Path,
    id: u64,
    mut history: Vec<u128>,
    mut spends: Vec<(TxNum, u32, TxNum)>,
) -> Result<(), runs::RunError> {
    history.sort_unstable();
    runs::write_run(
        dir,
        RunKind::History,
        id,
        history.iter().map(|key| key.to_be_bytes()),
    )?;
    drop(history);
    spends.sort_unstable_by_key(|(tx_num, vout, _)| (*tx_num, *vout));
    let records = spends
        .iter()
        .map(|(tx_num, vout, spender)| schema::spends_record(*tx_num, *vout, *spender));
    runs::write_run(dir, RunKind::Spends, id, records)
}

/// What a compaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// Free pages found, and the file's size before and after, in bytes.
    pub free: u64,
    pub before: u64,
    pub after: u64,
}

impl Indexer {
    /// Flushes, then compacts the index file if at least `min_free` bytes of it are free
    /// pages or the slack of half-empty pages ([`crate::store::Store::compact`]); `None` if there were fewer.
    pub fn compact_if_free(&mut self, min_free: u64) -> Result<Option<Compacted>, IndexError> {
        self.flush()?;
        // The store swaps its file: no view of the old one may stay open.
        self.reader = None;
        let free = self.store.free_bytes()?;
        let reclaimable = free.saturating_add(self.store.slack_bytes()?);
        if reclaimable < min_free || reclaimable == 0 {
            return Ok(None);
        }
        let (before, after) = self.store.compact()?;
        Ok(Some(Compacted {
            free,
            before,
            after,
        }))
    }
}

/// How long each part of a flush took, logged when the flush was slow enough to matter.
pub(super) struct Phases {
    last: Instant,
    took: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub(super) fn start() -> Phases {
        Phases {
            last: Instant::now(),
            took: Vec::new(),
        }
    }

    pub(super) fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.took.push((phase, now - self.last));
        self.last = now;
    }

    /// Each part and how long it took: `history 1.2s, spends 0.4s`.
    pub(super) fn parts(&self) -> String {
        let parts: Vec<String> = self
            .took
            .iter()
            .map(|(phase, took)| format!("{phase} {:.1}s", took.as_secs_f64()))
            .collect();
        parts.join(", ")
    }

    fn log(&self, blocks: usize) {
        let total: Duration = self.took.iter().map(|(_, took)| *took).sum();
        if total >= Duration::from_secs(1) {
            log::info!(
                "flushed {blocks} blocks in {:.1}s: {}",
                total.as_secs_f64(),
                self.parts()
            );
        }
    }
}
