//! Undoing blocks for a reorg, from their undo records, in one write transaction.

use super::{IndexError, Indexer};
use crate::hashes::{HashX, Height, TxNum};
use crate::schema;
use crate::store::{WriteTxn, corrupt, header_hash};
use std::collections::HashSet;
use std::sync::Arc;

impl Indexer {
    /// Undoes the last `count` blocks in one write transaction, after checking that
    /// every one of them can be undone; on any error the index is left as it was.
    /// Returns the scripts the undone blocks touched.
    pub fn rollback(&mut self, count: u32) -> Result<HashSet<HashX>, IndexError> {
        // Undoing deletes history rows from the table: none may wait in a run.
        self.finish_runs()?;
        if count > self.reorg_limit {
            return Err(IndexError::ReorgTooDeep {
                depth: count,
                limit: self.reorg_limit,
            });
        }
        let Some(height) = self.state.height else {
            return Ok(HashSet::new());
        };
        let Some(new_height) = height.checked_sub(count) else {
            return Err(IndexError::NoUndo(Height::GENESIS));
        };
        let store = Arc::clone(&self.store);
        store.ensure_room(0)?;
        let tables = store.tables()?;
        let mut wtxn = tables.write_txn()?;
        for h in new_height.next().through(height).rev() {
            if !wtxn.has_undo(h)? {
                return Err(IndexError::NoUndo(h));
            }
        }
        let mut touched = HashSet::new();
        for h in new_height.next().through(height).rev() {
            undo_block(&mut wtxn, h, &mut touched)?;
        }
        let header = wtxn
            .header(new_height)?
            .ok_or_else(|| corrupt(format!("no header at height {new_height}")))?;
        let tx_count = wtxn.tx_count_after(new_height)?;
        // The new state is kept only once it is committed: a failed commit (a full disk)
        // leaves memory at the height the index still has.
        let mut state = self.state.clone();
        state.height = Some(new_height);
        state.tip = Some(header_hash(&header).to_string());
        state.tx_count = tx_count;
        wtxn.put_state(&state)?;
        wtxn.commit()?;
        self.state = state;
        self.committed_tx_count = tx_count;
        self.pending.touched.extend(touched.iter().copied());
        Ok(touched)
    }
}

fn undo_block(
    wtxn: &mut WriteTxn,
    height: Height,
    touched: &mut HashSet<HashX>,
) -> Result<(), IndexError> {
    let spent = wtxn
        .undo_record(height)?
        .ok_or(IndexError::NoUndo(height))?;
    let end = wtxn.tx_count_after(height)?;
    let first = match height.prev() {
        Some(prev) => wtxn.tx_count_after(prev)?,
        None => 0,
    };
    let mut touched_here = HashSet::new();

    // The block's outputs still unspent are the outpoints rows of its tx_num range
    // (those later blocks spent were restored when those blocks were undone).
    for (hashx, tx_num, vout) in wtxn.outpoints_of(TxNum(first), TxNum(end))? {
        wtxn.delete_utxo(&schema::utxo_key(&hashx, tx_num, vout))?;
        wtxn.delete_outpoint(tx_num, vout)?;
        touched_here.insert(hashx);
    }
    for output in &spent {
        wtxn.delete_spend(output.tx_num, output.vout)?;
        touched_here.insert(output.hashx);
        if output.tx_num.0 >= first {
            // Created and spent within this block: it never was a committed UTXO.
            continue;
        }
        wtxn.put_utxo(output)?;
        wtxn.put_outpoint(output)?;
    }
    for hashx in &touched_here {
        wtxn.delete_history_from(hashx, TxNum(first))?;
    }
    for tx_num in first..end {
        wtxn.delete_tx(TxNum(tx_num))?;
    }
    wtxn.delete_block(height, end)?;
    touched.extend(touched_here);
    Ok(())
}
