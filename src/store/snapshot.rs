//! The index's read API: a [`Snapshot`] is one LMDB read transaction, so every answer
//! it gives is computed against one committed state even while blocks are applied. The
//! writer's own long-lived reader ([`WriterView`]) shares the txid lookups.

use super::merge_reads::MergeReads;
use super::{DbState, Store, StoreError, Tables, corrupt, read_state};
use crate::hashes::{HashX, Height, TxNum};
use crate::schema::{self, UtxoKey};
use bitcoin::{BlockHash, Txid};
use heed::{RoTxn, WithoutTls};
use std::sync::{Arc, PoisonError, RwLockReadGuard};

/// A confirmed transaction touching a script, as `get_history` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub tx_num: TxNum,
    pub txid: Txid,
    pub height: Height,
}

/// A confirmed unspent output of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utxo {
    pub tx_num: TxNum,
    pub txid: Txid,
    pub vout: u32,
    pub height: Height,
    pub value: u64,
}

/// A confirmed output's funding height and, if it is spent, its spender and the
/// spender's height ([`Snapshot::confirmed_outpoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfirmedOutpoint {
    pub funder_height: Height,
    pub spender: Option<(Txid, Height)>,
}

/// The history of a script was longer than the caller's limit.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryTooLong;

impl Store {
    /// A consistent read-only view of the index.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        let gate = self.map_gate.read().unwrap_or_else(PoisonError::into_inner);
        let tables = self.tables()?;
        let txn = tables.env.clone().static_read_txn()?;
        let (tables, merging) = self.merge_reads(tables, &txn)?;
        Ok(Snapshot {
            txn,
            tables,
            merging,
            _gate: gate,
        })
    }
}

/// A read transaction over the index: every method sees the same committed state.
pub struct Snapshot<'s> {
    pub(super) txn: RoTxn<'static, WithoutTls>,
    pub(super) tables: Arc<Tables>,
    /// While the catch-up's runs are listed: what is read from them.
    merging: Option<MergeReads>,
    /// Declared after `txn`, so released after it: the map is not resized, nor the file
    /// swapped, under it.
    _gate: RwLockReadGuard<'s, ()>,
}

impl Snapshot<'_> {
    pub fn state(&self) -> Result<Option<DbState>, StoreError> {
        read_state(&self.tables.meta, &self.txn)
    }

    /// Height and hash of the last indexed block.
    pub fn tip(&self) -> Result<Option<(Height, BlockHash)>, StoreError> {
        match self.tables.headers.last(&self.txn)? {
            None => Ok(None),
            Some((key, header)) => Ok(Some((
                schema::decode_height(key)?,
                super::header_hash(header),
            ))),
        }
    }

    pub fn header(&self, height: Height) -> Result<Option<[u8; 80]>, StoreError> {
        header(&self.tables, &self.txn, height)
    }

    /// Cumulative number of transactions after the block at `height`.
    pub fn tx_count_after(&self, height: Height) -> Result<Option<u64>, StoreError> {
        tx_count_after(&self.tables, &self.txn, height)
    }

    pub fn txid(&self, tx_num: TxNum) -> Result<Txid, StoreError> {
        txid(&self.tables, &self.txn, tx_num)
    }

    /// Where a confirmed transaction is: its tx_num and the height of its block.
    pub fn tx_position(&self, txid: &Txid) -> Result<Option<(TxNum, Height)>, StoreError> {
        match self.tx_nums_of(txid)?.first() {
            Some(tx_num) => Ok(Some((*tx_num, self.height_of(*tx_num)?.0))),
            None => Ok(None),
        }
    }

    /// What the chain says of the output `txid:vout`: where it was created, and where it
    /// was spent; `None` when the chain has no such output (no such transaction, an
    /// index past its outputs, or an unspendable output, which the index does not keep).
    /// An output is in exactly one place: unspent in `outpoints`, or spent in `spends`.
    pub fn confirmed_outpoint(
        &self,
        txid: &Txid,
        vout: u32,
    ) -> Result<Option<ConfirmedOutpoint>, StoreError> {
        // Bitcoin's two duplicated coinbases: the later one is the output that counts.
        for tx_num in self.tx_nums_of(txid)?.into_iter().rev() {
            let key = schema::outpoint_key(tx_num, vout);
            let spender = if self.tables.outpoints.get(&self.txn, &key)?.is_some() {
                None
            } else if let Some(spender) = self.spender_of(&key)? {
                Some((self.txid(spender)?, self.height_of(spender)?.0))
            } else {
                continue;
            };
            return Ok(Some(ConfirmedOutpoint {
                funder_height: self.height_of(tx_num)?.0,
                spender,
            }));
        }
        Ok(None)
    }

    /// Who spent the output whose outpoints key is `key`, if it is spent.
    fn spender_of(&self, key: &[u8]) -> Result<Option<TxNum>, StoreError> {
        if let Some(found) = self.merging.as_ref().and_then(|m| m.spender(key)) {
            return found;
        }
        match self.tables.spends.get(&self.txn, key)? {
            Some(spender) => Ok(Some(schema::decode_tx_num(spender)?)),
            None => Ok(None),
        }
    }

    /// The tx_nums of the confirmed transactions with this txid, in chain order (more
    /// than one only for Bitcoin's two duplicated coinbases).
    fn tx_nums_of(&self, txid: &Txid) -> Result<Vec<TxNum>, StoreError> {
        tx_nums_of(&self.tables, &self.txn, txid, TxidIs::Unknown)
    }

    /// The height of the block holding `tx_num`: the first block whose cumulative count
    /// exceeds it.
    pub fn height_of(&self, tx_num: TxNum) -> Result<(Height, u64), StoreError> {
        let (count, height) = self
            .tables
            .tx_heights
            .get_greater_than(&self.txn, &schema::count_bytes(tx_num.0))?
            .ok_or_else(|| corrupt(format!("tx_num {} is past the indexed chain", tx_num.0)))?;
        Ok((schema::decode_height(height)?, schema::decode_count(count)?))
    }

    /// Confirmed transactions touching `hashx`, in chain order. Fails with
    /// `HistoryTooLong` when there are `limit` or more of them (ElectrumX's rule).
    pub fn history(
        &self,
        hashx: &HashX,
        limit: usize,
    ) -> Result<Result<Vec<HistoryEntry>, HistoryTooLong>, StoreError> {
        let tx_nums = match self.history_tx_nums(hashx, limit)? {
            Ok(tx_nums) => tx_nums,
            Err(too_long) => return Ok(Err(too_long)),
        };
        let mut heights = HeightCursor::default();
        let mut out = Vec::with_capacity(tx_nums.len());
        for tx_num in tx_nums {
            let height = heights.height_of(self, tx_num)?;
            out.push(HistoryEntry {
                tx_num,
                txid: self.txid(tx_num)?,
                height,
            });
        }
        Ok(Ok(out))
    }

    /// How many confirmed transactions `hashx` has, if at most `at_most` (counting stops
    /// past that): `None` for a longer history.
    pub fn history_len_within(
        &self,
        hashx: &HashX,
        at_most: usize,
    ) -> Result<Option<usize>, StoreError> {
        Ok(self
            .history_tx_nums(hashx, at_most.saturating_add(1))?
            .ok()
            .map(|tx_nums| tx_nums.len()))
    }

    /// The first confirmed transaction touching `hashx` (its first use), however long
    /// its history.
    pub fn first_in_history(&self, hashx: &HashX) -> Result<Option<TxNum>, StoreError> {
        if let Some(found) = self.merging.as_ref().and_then(|m| m.history(hashx, 1)) {
            return Ok(found?.first().copied());
        }
        match self.tables.history.prefix_iter(&self.txn, &hashx.0)?.next() {
            None => Ok(None),
            Some(row) => Ok(Some(schema::decode_history_key(row?.0)?.1)),
        }
    }

    /// The tx_nums of the history of `hashx`, bounded by `limit` as in [`Self::history`].
    pub fn history_tx_nums(
        &self,
        hashx: &HashX,
        limit: usize,
    ) -> Result<Result<Vec<TxNum>, HistoryTooLong>, StoreError> {
        if let Some(found) = self.merging.as_ref().and_then(|m| m.history(hashx, limit)) {
            let tx_nums = found?;
            return Ok(if tx_nums.len() >= limit {
                Err(HistoryTooLong)
            } else {
                Ok(tx_nums)
            });
        }
        let mut out = Vec::new();
        for row in self.tables.history.prefix_iter(&self.txn, &hashx.0)? {
            let (key, value) = row?;
            schema::decode_history_row(key, value, &mut out)?;
            if out.len() >= limit {
                return Ok(Err(HistoryTooLong));
            }
        }
        Ok(Ok(out))
    }

    /// Every unspent output in chain order, as its UTXO-table key and value: what that
    /// table holds, sorted another way.
    pub fn for_each_unspent(
        &self,
        mut f: impl FnMut(UtxoKey, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.tables.outpoints.iter(&self.txn)? {
            let (key, value) = item?;
            let (tx_num, vout) = schema::decode_outpoint_key(key)?;
            let (hashx, value) = schema::decode_outpoint_value(value)?;
            f(schema::utxo_key(&hashx, tx_num, vout), value)?;
        }
        Ok(())
    }

    /// The confirmed unspent output `txid:vout`, if there is one: its script's hashX,
    /// the tx_num of `txid`, and its value.
    pub fn utxo_of(
        &self,
        txid: &Txid,
        vout: u32,
    ) -> Result<Option<(HashX, TxNum, u64)>, StoreError> {
        unspent_output(&self.tables, &self.txn, txid, vout, TxidIs::Unknown)
    }

    /// Confirmed unspent outputs of `hashx` in chain order (tx_num, then vout).
    pub fn utxos(&self, hashx: &HashX) -> Result<Vec<Utxo>, StoreError> {
        Ok(self.utxos_within(hashx, usize::MAX)?.unwrap_or_default())
    }

    /// As [`Self::utxos`], or `None` as soon as there are more than `at_most`.
    pub fn utxos_within(
        &self,
        hashx: &HashX,
        at_most: usize,
    ) -> Result<Option<Vec<Utxo>>, StoreError> {
        let mut heights = HeightCursor::default();
        let mut out = Vec::new();
        let complete = self.for_each_utxo(hashx, at_most, |tx_num, vout, value| {
            let height = heights.height_of(self, tx_num)?;
            out.push(Utxo {
                tx_num,
                txid: self.txid(tx_num)?,
                vout,
                height,
                value,
            });
            Ok(())
        })?;
        Ok(complete.then_some(out))
    }

    /// Calls `each` with the tx_num, vout and value of each confirmed unspent output of
    /// `hashx` in chain order; `false` (and no call past `at_most`) when there are more
    /// than `at_most`.
    fn for_each_utxo(
        &self,
        hashx: &HashX,
        at_most: usize,
        mut each: impl FnMut(TxNum, u32, u64) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let mut count = 0usize;
        if self.merging.is_some() {
            // The UTXO table is not rebuilt yet: the outputs to the script are among
            // those of the transactions of its history, and the unspent ones are in
            // the outpoints.
            let Ok(tx_nums) = self.history_tx_nums(hashx, usize::MAX)? else {
                return Err(corrupt("a history longer than the chain".into()));
            };
            for tx_num in tx_nums {
                for item in self
                    .tables
                    .outpoints
                    .prefix_iter(&self.txn, &schema::tx_num_key(tx_num))?
                {
                    let (key, value) = item?;
                    let (owner, value) = schema::decode_outpoint_value(value)?;
                    if owner != *hashx {
                        continue;
                    }
                    if count == at_most {
                        return Ok(false);
                    }
                    count += 1;
                    each(tx_num, schema::decode_outpoint_key(key)?.1, value)?;
                }
            }
            return Ok(true);
        }
        for item in self.tables.utxo.prefix_iter(&self.txn, &hashx.0)? {
            if count == at_most {
                return Ok(false);
            }
            count += 1;
            let (key, value) = item?;
            let (tx_num, vout) = schema::decode_utxo_key(key)?;
            each(tx_num, vout, schema::decode_value(value)?)?;
        }
        Ok(true)
    }

    /// Sum of the confirmed unspent outputs of `hashx`, and how many there are.
    pub fn balance(&self, hashx: &HashX) -> Result<(u64, usize), StoreError> {
        Ok(self.balance_within(hashx, usize::MAX)?.unwrap_or_default())
    }

    /// As [`Self::balance`], or `None` as soon as there are more than `at_most` outputs.
    pub fn balance_within(
        &self,
        hashx: &HashX,
        at_most: usize,
    ) -> Result<Option<(u64, usize)>, StoreError> {
        let mut total = 0u64;
        let mut count = 0usize;
        let complete = self.for_each_utxo(hashx, at_most, |_, _, value| {
            total = total.saturating_add(value);
            count += 1;
            Ok(())
        })?;
        Ok(complete.then_some((total, count)))
    }
}

/// Remembers the tx_num range of the last block looked up: histories and UTXO lists are
/// in chain order, so consecutive entries usually fall in the same block.
#[derive(Default)]
struct HeightCursor {
    range: Option<(u64, u64, Height)>,
}

impl HeightCursor {
    fn height_of(&mut self, snapshot: &Snapshot, tx_num: TxNum) -> Result<Height, StoreError> {
        if let Some((start, end, height)) = self.range
            && tx_num.0 >= start
            && tx_num.0 < end
        {
            return Ok(height);
        }
        let (height, end) = snapshot.height_of(tx_num)?;
        let start = match height.checked_sub(1) {
            Some(prev) => snapshot.tx_count_after(prev)?.unwrap_or(0),
            None => 0,
        };
        self.range = Some((start, end, height));
        Ok(height)
    }
}

// Reads shared by snapshots and the writer's transaction (which derefs to a read one).

pub(super) fn header(
    store: &Tables,
    txn: &RoTxn<WithoutTls>,
    height: Height,
) -> Result<Option<[u8; 80]>, StoreError> {
    match store.headers.get(txn, &schema::height_key(height))? {
        None => Ok(None),
        Some(bytes) => Ok(Some(schema::decode_header(bytes)?)),
    }
}

pub(super) fn tx_count_after(
    store: &Tables,
    txn: &RoTxn<WithoutTls>,
    height: Height,
) -> Result<Option<u64>, StoreError> {
    match store.tx_counts.get(txn, &schema::height_key(height))? {
        None => Ok(None),
        Some(bytes) => Ok(Some(schema::decode_count(bytes)?)),
    }
}

pub(super) fn txid(
    store: &Tables,
    txn: &RoTxn<WithoutTls>,
    tx_num: TxNum,
) -> Result<Txid, StoreError> {
    let bytes = store
        .txids
        .get(txn, &schema::tx_num_key(tx_num))?
        .ok_or_else(|| corrupt(format!("no txid for tx_num {}", tx_num.0)))?;
    Ok(schema::decode_txid(bytes)?)
}

/// What the caller knows of a txid it looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TxidIs {
    /// It may be anywhere or nowhere (a client's or the mempool's).
    Unknown,
    /// A block the daemon accepted spends it and it is not pending: the index holds it.
    /// A single txid-index row with its prefix is then it, with no read of `txids`.
    Indexed,
}

/// The tx_nums whose txid is `txid`, from the txid index, in chain order.
fn tx_nums_of(
    store: &Tables,
    txn: &RoTxn,
    txid: &Txid,
    known: TxidIs,
) -> Result<Vec<TxNum>, StoreError> {
    let mut candidates = Vec::new();
    for item in store
        .txid_index
        .prefix_iter(txn, &schema::txid_prefix(txid))?
    {
        let (key, _) = item?;
        candidates.push(schema::decode_txid_index_key(key)?);
    }
    if known == TxidIs::Indexed && candidates.len() == 1 {
        return Ok(candidates);
    }
    let mut out = Vec::new();
    for tx_num in candidates {
        let stored = store
            .txids
            .get(txn, &schema::tx_num_key(tx_num))?
            .ok_or_else(|| corrupt(format!("txid index names unknown tx_num {}", tx_num.0)))?;
        if schema::decode_txid(stored)? == *txid {
            out.push(tx_num);
        }
    }
    Ok(out)
}

/// The unspent output `txid:vout` (its hashX, tx_num and value), if the index has it.
fn unspent_output(
    store: &Tables,
    txn: &RoTxn,
    txid: &Txid,
    vout: u32,
    known: TxidIs,
) -> Result<Option<(HashX, TxNum, u64)>, StoreError> {
    for tx_num in tx_nums_of(store, txn, txid, known)? {
        if let Some(value) = store
            .outpoints
            .get(txn, &schema::outpoint_key(tx_num, vout))?
        {
            let (hashx, value) = schema::decode_outpoint_value(value)?;
            return Ok(Some((hashx, tx_num, value)));
        }
    }
    Ok(None)
}

/// The writer's read transaction, kept open across the blocks it applies between two
/// flushes, to find the committed outputs they spend. It takes no map gate: only the
/// writer grows the map, and it ends this view first.
pub struct WriterView {
    txn: RoTxn<'static, WithoutTls>,
    tables: Arc<Tables>,
}

impl Store {
    pub fn writer_view(&self) -> Result<WriterView, StoreError> {
        let tables = self.tables()?;
        Ok(WriterView {
            txn: tables.env.clone().static_read_txn()?,
            tables,
        })
    }
}

impl WriterView {
    /// The committed unspent output `txid:vout` (its hashX, tx_num and value), if there
    /// is one. `txid` is spent by a block the daemon accepted, so the index holds it.
    pub fn unspent_output(
        &self,
        txid: &Txid,
        vout: u32,
    ) -> Result<Option<(HashX, TxNum, u64)>, StoreError> {
        unspent_output(&self.tables, &self.txn, txid, vout, TxidIs::Indexed)
    }
}
