//! Writing what is pending in one LMDB write transaction, rows sorted by key.

use super::pending::UtxoRow;
use super::{IndexError, Indexer};
use crate::hashes::TxNum;
use crate::schema::{self, UtxoKey};
use crate::store::runs::{self, RunKind};
use crate::store::{Store, StoreError};
use std::path::Path;
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
        let mut wtxn = tables.write_txn()?;
        let mut phases = Phases::start();

        for ((height, header), count) in pending.headers.iter().zip(&pending.tx_counts) {
            wtxn.append_block(*height, header, *count)?;
        }
        for (offset, txid) in pending.txids.iter().enumerate() {
            wtxn.append_txid(TxNum(self.committed_tx_count + offset as u64), txid)?;
        }

        // Sorted rows go into an empty table by appending, without a tree search each:
        // the first flush of an initial sync is usually the largest. Into a full table,
        // key order makes neighbouring writes share pages.
        let mut txid_keys: Vec<_> = pending
            .txids
            .iter()
            .enumerate()
            .map(|(offset, txid)| {
                schema::txid_index_key(txid, TxNum(self.committed_tx_count + offset as u64))
            })
            .collect();
        txid_keys.sort_unstable();
        phases.end("blocks and txids");
        wtxn.put_txid_index(&txid_keys)?;
        drop(txid_keys);
        phases.end("txid index");

        pending.history.sort_unstable();
        pending
            .spends
            .sort_unstable_by_key(|(tx_num, vout, _)| (*tx_num, *vout));
        if self.write_runs {
            // On disk before the commit that lists them.
            let dir = Path::new(store.dir());
            let id = self.state.tx_count;
            let history = pending
                .history
                .iter()
                .map(|(hashx, tx_num)| schema::history_key(hashx, *tx_num));
            runs::write_run(dir, RunKind::History, id, history).map_err(StoreError::from)?;
            let spends = pending
                .spends
                .iter()
                .map(|(tx_num, vout, spender)| schema::spends_record(*tx_num, *vout, *spender));
            runs::write_run(dir, RunKind::Spends, id, spends).map_err(StoreError::from)?;
            self.state.runs.push(id);
        } else {
            wtxn.put_history(&pending.history)?;
        }
        phases.end("history");

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
            wtxn.put_spends(&pending.spends)?;
        }
        phases.end("spends");

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
        wtxn.put_state(&self.state)?;
        wtxn.commit()?;
        phases.end("commit");
        phases.log(pending.headers.len());
        self.committed_tx_count = self.state.tx_count;
        self.pending.touched = touched;
        Ok(())
    }
}

impl Indexer {
    /// Flushes, then merges the runs into the history and spends tables in one
    /// transaction (key order: each page of the tables written once) and goes back to
    /// writing them straight into the tables. Returns how many rows were merged, `None`
    /// if no run was pending.
    pub fn finish_runs(&mut self) -> Result<Option<u64>, IndexError> {
        self.flush()?;
        self.write_runs = false;
        if self.state.runs.is_empty() {
            return Ok(None);
        }
        let started = Instant::now();
        let store = Arc::clone(&self.store);
        let dir = Path::new(store.dir()).to_path_buf();
        let ids = self.state.runs.clone();
        let run_error = |e| IndexError::from(StoreError::from(e));
        let bytes = runs::runs_size(&dir, RunKind::History, &ids).map_err(run_error)?
            + runs::runs_size(&dir, RunKind::Spends, &ids).map_err(run_error)?;
        // A row takes about as many bytes in its table as in its run, and the UTXO table
        // about as many as the outpoints: room twice over.
        let outpoints = store
            .table_sizes()?
            .iter()
            .find(|(name, _, _)| *name == "outpoints")
            .map_or(0, |(_, bytes, _)| *bytes);
        let needed = bytes.saturating_add(outpoints).saturating_mul(2);
        store.ensure_room(usize::try_from(needed).unwrap_or(usize::MAX / 4))?;
        // The UTXO table, left alone while the runs were written, is rebuilt from the
        // outpoints: sorted by script in chunks of bounded memory, then merged.
        let utxo_chunks = sort_unspent_in_chunks(&store, &dir, UTXO_CHUNK)?;
        let tables = store.tables()?;
        let mut wtxn = tables.write_txn()?;
        let history =
            runs::Merge::<{ schema::HISTORY_KEY_LEN }>::open(&dir, RunKind::History, &ids)
                .map_err(run_error)?;
        let history_rows = wtxn.put_history_sorted(history.map(|record| {
            let record = record.map_err(StoreError::from)?;
            Ok::<_, StoreError>(schema::decode_history_key(&record)?)
        }))?;
        let spends =
            runs::Merge::<{ schema::SPENDS_RECORD_LEN }>::open(&dir, RunKind::Spends, &ids)
                .map_err(run_error)?;
        let spends_rows = wtxn.put_spends_sorted(spends.map(|record| {
            let record = record.map_err(StoreError::from)?;
            Ok::<_, StoreError>(schema::decode_spends_record(&record))
        }))?;
        wtxn.clear_utxos()?;
        let utxos =
            runs::Merge::<{ schema::UTXO_RECORD_LEN }>::open(&dir, RunKind::Utxo, &utxo_chunks)
                .map_err(run_error)?;
        let utxo_rows = wtxn.put_utxos_sorted(utxos.map(|record| {
            record
                .map(|record| schema::decode_utxo_record(&record))
                .map_err(StoreError::from)
        }))?;
        self.state.runs.clear();
        wtxn.put_state(&self.state)?;
        wtxn.commit()?;
        // Merged and no longer listed: any file left behind is removed at the next start.
        runs::remove_unlisted(&dir, &[]).map_err(run_error)?;
        log::info!(
            "history and spends of {} flushes merged into the index, UTXOs rebuilt: \
             {history_rows} history, {spends_rows} spends and {utxo_rows} UTXO rows in {:.1}s",
            ids.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Some(history_rows + spends_rows + utxo_rows))
    }
}

/// UTXO records sorted in memory at a time while the table is rebuilt (28 bytes each).
const UTXO_CHUNK: usize = 2 << 20;

/// Writes the index's unspent outputs as UTXO records to runs of their own, each chunk of
/// `chunk_len` sorted by key; returns the chunks' ids.
pub(super) fn sort_unspent_in_chunks(
    store: &Store,
    dir: &Path,
    chunk_len: usize,
) -> Result<Vec<u64>, StoreError> {
    fn write(
        dir: &Path,
        chunk: &mut Vec<[u8; schema::UTXO_RECORD_LEN]>,
        chunks: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        chunk.sort_unstable();
        let id = chunks.len() as u64;
        runs::write_run(dir, RunKind::Utxo, id, chunk.drain(..))?;
        chunks.push(id);
        Ok(())
    }
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    store.snapshot()?.for_each_unspent(|key, value| {
        chunk.push(schema::utxo_record(&key, value));
        if chunk.len() >= chunk_len {
            write(dir, &mut chunk, &mut chunks)?;
        }
        Ok(())
    })?;
    if !chunk.is_empty() {
        write(dir, &mut chunk, &mut chunks)?;
    }
    Ok(chunks)
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
struct Phases {
    last: Instant,
    took: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn start() -> Phases {
        Phases {
            last: Instant::now(),
            took: Vec::new(),
        }
    }

    fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.took.push((phase, now - self.last));
        self.last = now;
    }

    fn log(&self, blocks: usize) {
        let total: Duration = self.took.iter().map(|(_, took)| *took).sum();
        if total >= Duration::from_secs(1) {
            let parts: Vec<String> = self
                .took
                .iter()
                .map(|(phase, took)| format!("{phase} {:.1}s", took.as_secs_f64()))
                .collect();
            log::info!(
                "flushed {blocks} blocks in {:.1}s: {}",
                total.as_secs_f64(),
                parts.join(", ")
            );
        }
    }
}
