//! The index's write API: a [`WriteTxn`] is one LMDB write transaction with one typed
//! operation per kind of row the writer ([`crate::index`]) adds or removes. Keys and
//! values go through [`crate::schema`]; the tables stay private to the store.

use super::{DbState, Packed, STATE_KEY, StoreError, Tables, corrupt, snapshot};
use crate::hashes::{HashX, Height, TxNum};
use crate::schema::{self, TxidIndexKey, UndoOutput, UndoRecord, UtxoKey};
use bitcoin::Txid;
use bitcoin::hashes::Hash;
use heed::{PutFlags, RwTxn};
use std::ops::Bound;

/// A write transaction over the index. Dropped without [`WriteTxn::commit`], it is
/// aborted and the index keeps its last commit.
pub struct WriteTxn<'s> {
    store: &'s Tables,
    txn: RwTxn<'s>,
}

impl Tables {
    /// The one write transaction LMDB allows at a time.
    pub fn write_txn(&self) -> Result<WriteTxn<'_>, StoreError> {
        Ok(WriteTxn {
            store: self,
            txn: self.env.write_txn()?,
        })
    }
}

impl WriteTxn<'_> {
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.txn.commit()?)
    }

    pub fn put_state(&mut self, state: &DbState) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.meta.put(&mut self.txn, STATE_KEY, &json)?;
        Ok(())
    }

    // Applying blocks.

    /// A block's header and cumulative tx count, above every block already stored.
    pub fn append_block(
        &mut self,
        height: Height,
        header: &[u8; 80],
        tx_count: u64,
    ) -> Result<(), StoreError> {
        let store = self.store;
        let key = schema::height_key(height);
        let count = schema::count_bytes(tx_count);
        let append = PutFlags::APPEND;
        store
            .headers
            .put_with_flags(&mut self.txn, append, &key, header)?;
        store
            .tx_counts
            .put_with_flags(&mut self.txn, append, &key, &count)?;
        store
            .tx_heights
            .put_with_flags(&mut self.txn, append, &count, &key)?;
        Ok(())
    }

    /// The txid of a transaction above every one already stored.
    pub fn append_txid(&mut self, tx_num: TxNum, txid: &Txid) -> Result<(), StoreError> {
        self.store.txids.put_with_flags(
            &mut self.txn,
            PutFlags::APPEND,
            &schema::tx_num_key(tx_num),
            txid.as_byte_array(),
        )?;
        Ok(())
    }

    /// Txid-index rows, `keys` in ascending order.
    pub fn put_txid_index(
        &mut self,
        keys: impl Iterator<Item = TxidIndexKey>,
    ) -> Result<(), StoreError> {
        let txid_index = self.store.txid_index;
        self.put_sorted(
            txid_index,
            keys.map(|key| Ok::<_, StoreError>((key, [0u8; 0]))),
        )?;
        Ok(())
    }

    /// History rows, `rows` in ascending order (the store's tests; the indexer writes
    /// through [`WriteTxn::put_history_sorted`]).
    #[cfg(test)]
    pub fn put_history(&mut self, rows: &[(HashX, TxNum)]) -> Result<(), StoreError> {
        self.put_history_sorted(rows.iter().map(|row| Ok::<_, StoreError>(*row)))?;
        Ok(())
    }

    /// History entries in ascending order (by script, then tx_num), from a source that
    /// may fail (the merge of history runs), each script's after those it has. Scripts
    /// past the table's last row are appended without a tree search (every one, into an
    /// empty table). Returns how many entries were written.
    pub fn put_history_sorted<E>(
        &mut self,
        rows: impl Iterator<Item = Result<(HashX, TxNum), E>>,
    ) -> Result<u64, StoreError>
    where
        StoreError: From<E>,
    {
        let mut end = PastEnd::of(self.store.history, &self.txn)?;
        let mut script: Option<(HashX, Vec<TxNum>)> = None;
        let mut written = 0;
        for row in rows {
            let (hashx, tx_num) = row?;
            match &mut script {
                Some((current, tx_nums)) if *current == hashx => tx_nums.push(tx_num),
                _ => {
                    if let Some((hashx, tx_nums)) = script.take() {
                        let append = end.passed_by(&schema::history_key(&hashx, TxNum(0)));
                        self.extend_history(&hashx, tx_nums, append)?;
                    }
                    script = Some((hashx, vec![tx_num]));
                }
            }
            written += 1;
        }
        if let Some((hashx, tx_nums)) = script {
            let append = end.passed_by(&schema::history_key(&hashx, TxNum(0)));
            self.extend_history(&hashx, tx_nums, append)?;
        }
        Ok(written)
    }

    /// Adds `new` (ascending, after every tx_num the script has) to the history of
    /// `hashx`: its last row is filled up to [`schema::HISTORY_ROW_TXS`], then new rows
    /// are started, so that the rows depend only on the history.
    fn extend_history(
        &mut self,
        hashx: &HashX,
        mut new: Vec<TxNum>,
        append: bool,
    ) -> Result<(), StoreError> {
        let history = self.store.history;
        let mut flags = PutFlags::APPEND;
        if !append {
            flags = PutFlags::empty();
            let last =
                history.get_lower_than_or_equal_to(&self.txn, &schema::history_key_after(hashx))?;
            if let Some((key, value)) = last
                && key.starts_with(&hashx.0)
            {
                let mut row = Vec::with_capacity(schema::HISTORY_ROW_TXS);
                schema::decode_history_row(key, value, &mut row)?;
                if row.len() < schema::HISTORY_ROW_TXS {
                    row.append(&mut new);
                    new = row;
                }
            }
        }
        for row in new.chunks(schema::HISTORY_ROW_TXS) {
            history.put_with_flags(
                &mut self.txn,
                flags,
                &schema::history_key(hashx, row[0]),
                &schema::history_value(row[0], &row[1..]),
            )?;
        }
        Ok(())
    }

    /// UTXO rows (key, value), in ascending key order.
    pub fn put_utxos(&mut self, rows: &[(UtxoKey, u64)]) -> Result<(), StoreError> {
        self.put_utxos_sorted(rows.iter().map(|row| Ok::<_, StoreError>(*row)))?;
        Ok(())
    }

    /// Empties the UTXO table, before it is rebuilt from the outpoints.
    pub fn clear_utxos(&mut self) -> Result<(), StoreError> {
        self.store.utxo.clear(&mut self.txn)?;
        Ok(())
    }

    /// UTXO rows in ascending key order from a source that may fail (the merge of the
    /// rebuild's chunks). Returns how many were written.
    pub fn put_utxos_sorted<E>(
        &mut self,
        rows: impl Iterator<Item = Result<(UtxoKey, u64), E>>,
    ) -> Result<u64, StoreError>
    where
        StoreError: From<E>,
    {
        let utxo = self.store.utxo;
        self.put_sorted(
            utxo,
            rows.map(|row| row.map(|(key, value)| (key, schema::value_bytes(value)))),
        )
    }

    /// Spends rows (the spent output's tx_num and vout, the spender's tx_num), in
    /// ascending key order: spends of young outputs, the most common, land on the
    /// table's last pages; into an empty table every row is appended.
    pub fn put_spends(&mut self, rows: &[(TxNum, u32, TxNum)]) -> Result<(), StoreError> {
        self.put_spends_sorted(rows.iter().map(|row| Ok::<_, StoreError>(*row)))?;
        Ok(())
    }

    /// Spends rows in ascending key order from a source that may fail (the merge of
    /// runs). Returns how many were written.
    pub fn put_spends_sorted<E>(
        &mut self,
        rows: impl Iterator<Item = Result<(TxNum, u32, TxNum), E>>,
    ) -> Result<u64, StoreError>
    where
        StoreError: From<E>,
    {
        let spends = self.store.spends;
        self.put_sorted(
            spends,
            rows.map(|row| {
                row.map(|(tx_num, vout, spender)| {
                    (
                        schema::outpoint_key(tx_num, vout),
                        schema::tx_num_key(spender),
                    )
                })
            }),
        )
    }

    /// Rows of `db` in ascending key order, appended (no tree search) from the first
    /// one past the table's last key: all of them into an empty table. Returns how many
    /// were written.
    fn put_sorted<E, K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        db: super::Db,
        rows: impl Iterator<Item = Result<(K, V), E>>,
    ) -> Result<u64, StoreError>
    where
        StoreError: From<E>,
    {
        let mut end = PastEnd::of(db, &self.txn)?;
        let mut written = 0;
        for row in rows {
            let (key, value) = row?;
            let flags = if end.passed_by(key.as_ref()) {
                PutFlags::APPEND
            } else {
                PutFlags::empty()
            };
            db.put_with_flags(&mut self.txn, flags, key.as_ref(), value.as_ref())?;
            written += 1;
        }
        Ok(written)
    }

    /// An unspent output above every outpoint already stored.
    pub fn append_outpoint(
        &mut self,
        tx_num: TxNum,
        vout: u32,
        hashx: &HashX,
        value: u64,
    ) -> Result<(), StoreError> {
        self.store.outpoints.put_with_flags(
            &mut self.txn,
            PutFlags::APPEND,
            &schema::outpoint_key(tx_num, vout),
            &schema::outpoint_value(hashx, value),
        )?;
        Ok(())
    }

    pub fn put_undo(&mut self, height: Height, record: &[u8]) -> Result<(), StoreError> {
        self.store
            .undo
            .put(&mut self.txn, &schema::height_key(height), record)?;
        Ok(())
    }

    /// Deletes the undo records of the blocks below `oldest_kept`.
    pub fn prune_undo_below(&mut self, oldest_kept: Height) -> Result<(), StoreError> {
        let first = match self.store.undo.first(&self.txn)? {
            Some((key, _)) => schema::decode_height(key)?,
            None => oldest_kept,
        };
        for old in first.until(oldest_kept) {
            self.store
                .undo
                .delete(&mut self.txn, &schema::height_key(old))?;
        }
        Ok(())
    }

    /// One step of repacking `table` through the spare table: appends to the spare
    /// (`to_spare`) or back to the emptied table the records of the other after its own
    /// last key, about `max_bytes` of them. Returns whether the source is done. Each
    /// table is filled only this way, in key order, so its last key says how far a
    /// repack cut short got.
    pub fn pack_step(
        &mut self,
        table: Packed,
        to_spare: bool,
        max_bytes: usize,
    ) -> Result<bool, StoreError> {
        let db = *table.db(self.store);
        let (from, to) = if to_spare {
            (db, self.store.spare)
        } else {
            (self.store.spare, db)
        };
        let (key_len, value_len) = table.record();
        let after = to.last(&self.txn)?.map(|(key, _)| key.to_vec());
        let range = match &after {
            Some(key) => (Bound::Excluded(&key[..]), Bound::Unbounded),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        let most = (max_bytes / (key_len + value_len)).max(1);
        // Keys and values one after the other: every record of the table has one size.
        let mut records = Vec::with_capacity(most.min(1 << 20) * (key_len + value_len));
        let mut count = 0;
        for item in from.range(&self.txn, &range)? {
            let (key, value) = item?;
            if key.len() != key_len || value.len() != value_len {
                return Err(corrupt(format!(
                    "a {table:?} record of {} + {} bytes",
                    key.len(),
                    value.len()
                )));
            }
            records.extend_from_slice(key);
            records.extend_from_slice(value);
            count += 1;
            if count == most {
                break;
            }
        }
        for record in records.chunks_exact(key_len + value_len) {
            let (key, value) = record.split_at(key_len);
            to.put_with_flags(&mut self.txn, PutFlags::APPEND, key, value)?;
        }
        Ok(count < most)
    }

    /// Empties `table` (once its records are all in the spare table) or the spare.
    pub fn clear_packed(&mut self, table: Packed, spare: bool) -> Result<(), StoreError> {
        let db = if spare {
            self.store.spare
        } else {
            *table.db(self.store)
        };
        db.clear(&mut self.txn)?;
        Ok(())
    }

    // Spending and unspending outputs.

    pub fn put_utxo(&mut self, output: &UndoOutput) -> Result<(), StoreError> {
        self.store.utxo.put(
            &mut self.txn,
            &schema::utxo_key(&output.hashx, output.tx_num, output.vout),
            &schema::value_bytes(output.value),
        )?;
        Ok(())
    }

    pub fn put_outpoint(&mut self, output: &UndoOutput) -> Result<(), StoreError> {
        self.store.outpoints.put(
            &mut self.txn,
            &schema::outpoint_key(output.tx_num, output.vout),
            &schema::outpoint_value(&output.hashx, output.value),
        )?;
        Ok(())
    }

    pub fn delete_utxo(&mut self, key: &UtxoKey) -> Result<(), StoreError> {
        self.store.utxo.delete(&mut self.txn, key)?;
        Ok(())
    }

    /// Forgets who spent `tx_num:vout` (its spender's block is undone).
    pub fn delete_spend(&mut self, tx_num: TxNum, vout: u32) -> Result<(), StoreError> {
        self.store
            .spends
            .delete(&mut self.txn, &schema::outpoint_key(tx_num, vout))?;
        Ok(())
    }

    pub fn delete_outpoint(&mut self, tx_num: TxNum, vout: u32) -> Result<(), StoreError> {
        self.store
            .outpoints
            .delete(&mut self.txn, &schema::outpoint_key(tx_num, vout))?;
        Ok(())
    }

    // Undoing blocks.

    pub fn has_undo(&self, height: Height) -> Result<bool, StoreError> {
        Ok(self
            .store
            .undo
            .get(&self.txn, &schema::height_key(height))?
            .is_some())
    }

    /// The outputs the block at `height` spent, if its undo record is kept.
    pub fn undo_record(&self, height: Height) -> Result<Option<Vec<UndoOutput>>, StoreError> {
        match self
            .store
            .undo
            .get(&self.txn, &schema::height_key(height))?
        {
            None => Ok(None),
            Some(record) => Ok(Some(UndoRecord::decode(record)?)),
        }
    }

    pub fn header(&self, height: Height) -> Result<Option<[u8; 80]>, StoreError> {
        snapshot::header(self.store, &self.txn, height)
    }

    /// The cumulative tx count after the block at `height`, which must be indexed.
    pub fn tx_count_after(&self, height: Height) -> Result<u64, StoreError> {
        snapshot::tx_count_after(self.store, &self.txn, height)?
            .ok_or_else(|| corrupt(format!("no tx count at height {height}")))
    }

    /// The unspent outputs of the transactions `first..end`: hashX, tx_num, vout.
    pub fn outpoints_of(
        &self,
        first: TxNum,
        end: TxNum,
    ) -> Result<Vec<(HashX, TxNum, u32)>, StoreError> {
        let from = schema::outpoint_key(first, 0);
        let to = schema::outpoint_key(end, 0);
        let mut out = Vec::new();
        for item in self.store.outpoints.range(
            &self.txn,
            &(Bound::Included(&from[..]), Bound::Excluded(&to[..])),
        )? {
            let (key, value) = item?;
            let (tx_num, vout) = schema::decode_outpoint_key(key)?;
            let (hashx, _) = schema::decode_outpoint_value(value)?;
            out.push((hashx, tx_num, vout));
        }
        Ok(out)
    }

    /// Deletes the history rows of `hashx` from transaction `first` on.
    pub fn delete_history_from(&mut self, hashx: &HashX, first: TxNum) -> Result<(), StoreError> {
        let history = self.store.history;
        // From the last row back, the rows holding tx_nums from `first` on.
        let mut doomed = Vec::new();
        let mut kept_of_last = Vec::new();
        for row in history.rev_prefix_iter(&self.txn, &hashx.0)? {
            let (key, value) = row?;
            let mut tx_nums = Vec::new();
            schema::decode_history_row(key, value, &mut tx_nums)?;
            if tx_nums.last().is_some_and(|last| last.0 < first.0) {
                break;
            }
            doomed.push(key.to_vec());
            tx_nums.retain(|tx_num| tx_num.0 < first.0);
            if !tx_nums.is_empty() {
                kept_of_last = tx_nums;
                break;
            }
        }
        for key in doomed {
            history.delete(&mut self.txn, &key)?;
        }
        if let Some((first_kept, later)) = kept_of_last.split_first() {
            history.put(
                &mut self.txn,
                &schema::history_key(hashx, *first_kept),
                &schema::history_value(*first_kept, later),
            )?;
        }
        Ok(())
    }

    /// Deletes the transaction `tx_num` (its txid and txid-index rows).
    pub fn delete_tx(&mut self, tx_num: TxNum) -> Result<(), StoreError> {
        let txid = snapshot::txid(self.store, &self.txn, tx_num)?;
        self.store
            .txid_index
            .delete(&mut self.txn, &schema::txid_index_key(&txid, tx_num))?;
        self.store
            .txids
            .delete(&mut self.txn, &schema::tx_num_key(tx_num))?;
        Ok(())
    }

    /// Deletes the block at `height` (header, tx counts, undo record); `tx_count` is the
    /// cumulative count after it.
    pub fn delete_block(&mut self, height: Height, tx_count: u64) -> Result<(), StoreError> {
        let store = self.store;
        let key = schema::height_key(height);
        store.headers.delete(&mut self.txn, &key)?;
        store.tx_counts.delete(&mut self.txn, &key)?;
        store
            .tx_heights
            .delete(&mut self.txn, &schema::count_bytes(tx_count))?;
        store.undo.delete(&mut self.txn, &key)?;
        Ok(())
    }
}

/// Whether ascending keys have gone past a table's last key (as it was when they
/// started): from there on each goes at the end, where LMDB can append it.
struct PastEnd {
    last: Option<Vec<u8>>,
}

impl PastEnd {
    fn of(db: super::Db, txn: &heed::RwTxn) -> Result<PastEnd, StoreError> {
        Ok(PastEnd {
            last: db.last(txn)?.map(|(key, _)| key.to_vec()),
        })
    }

    /// Whether `key`, and so every later key, is past the end. Keys must ascend.
    fn passed_by(&mut self, key: &[u8]) -> bool {
        if self.last.as_deref().is_some_and(|last| key <= last) {
            return false;
        }
        self.last = None;
        true
    }
}
