//! Writing what is pending in one LMDB write transaction, rows sorted by key.

use super::pending::UtxoRow;
use super::{IndexError, Indexer};
use crate::hashes::TxNum;
use crate::schema::{self, UtxoKey};
use std::sync::Arc;

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
        wtxn.put_txid_index(&txid_keys)?;
        drop(txid_keys);

        pending.history.sort_unstable();
        wtxn.put_history(&pending.history)?;

        // Spent outputs, in key order: the outpoints by age (young ones share the last
        // pages), the UTXOs by script.
        pending
            .spent_stored
            .sort_unstable_by_key(|s| (s.tx_num, s.vout));
        for spent in &pending.spent_stored {
            wtxn.delete_outpoint(spent.tx_num, spent.vout)?;
        }
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

        let first_tx_num = self.committed_tx_count;
        let mut utxo_rows: Vec<UtxoRow> = pending
            .unspent(first_tx_num)
            .map(|(tx_num, vout, output)| {
                (schema::utxo_key(&output.hashx, tx_num, vout), output.value)
            })
            .collect();
        utxo_rows.sort_unstable_by_key(|a| a.0);
        wtxn.put_utxos(&utxo_rows)?;
        drop(utxo_rows);
        // New outputs have the chain's highest tx_nums, and come in key order: each goes
        // at the end.
        for (tx_num, vout, output) in pending.unspent(first_tx_num) {
            wtxn.append_outpoint(tx_num, vout, &output.hashx, output.value)?;
        }

        pending
            .spends
            .sort_unstable_by_key(|(tx_num, vout, _)| (*tx_num, *vout));
        wtxn.put_spends(&pending.spends)?;

        for (height, record) in &pending.undo {
            wtxn.put_undo(*height, record)?;
        }
        if let Some(height) = self.state.height {
            // Undo older than REORG_LIMIT can never be used.
            if let Some(oldest_kept) = height.checked_sub(self.reorg_limit) {
                wtxn.prune_undo_below(oldest_kept)?;
            }
        }

        wtxn.put_state(&self.state)?;
        wtxn.commit()?;
        self.committed_tx_count = self.state.tx_count;
        self.pending.touched = touched;
        Ok(())
    }
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
    /// pages ([`crate::store::Store::compact`]); `None` if there were fewer.
    pub fn compact_if_free(&mut self, min_free: u64) -> Result<Option<Compacted>, IndexError> {
        self.flush()?;
        // The store swaps its file: no view of the old one may stay open.
        self.reader = None;
        let free = self.store.free_bytes()?;
        if free < min_free || free == 0 {
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
