//! Applying blocks to the index and undoing them.
//!
//! The [`Indexer`] is the index's only writer. Blocks are applied in memory (new
//! outputs, spends, history, undo records) and written by [`Indexer::flush`] in one
//! LMDB write transaction, so the committed index is always exactly the chain up to
//! some block: a crash at any instant resumes from the last flush and reaches the same
//! result as an uninterrupted sync. During catch-up the caller flushes when
//! [`Indexer::pending_bytes`] passes its cache budget; once caught up, after every block.

use crate::chain::ParsedBlock;
use crate::hashes::{HASHX_LEN, HashX, Height, TXNUM_LEN, TxNum};
use crate::store::{
    DbState, Store, StoreError, be_u64, corrupt, header_hash, outpoint_key, outpoint_prefix,
    txid_index_key, utxo_key,
};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use heed::{PutFlags, RoTxn, WithoutTls};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "block {hash} at height {height} does not build on our tip {tip}; the caller must \
         handle the reorg first"
    )]
    DoesNotConnect {
        height: Height,
        hash: BlockHash,
        tip: BlockHash,
    },
    #[error(
        "transaction {spender} in block {height} spends {txid}:{vout}, which is not an unspent \
         output of the indexed chain; the index is inconsistent with the daemon"
    )]
    MissingUtxo {
        spender: Txid,
        height: Height,
        txid: Txid,
        vout: u32,
    },
    #[error(
        "a reorg of {depth} blocks is deeper than REORG_LIMIT ({limit}); the index is left \
         untouched. Raise REORG_LIMIT or resync from scratch"
    )]
    ReorgTooDeep { depth: u32, limit: u32 },
    #[error("no undo information for height {0}; the index cannot go back that far")]
    NoUndo(Height),
    #[error("the genesis block hash {found} is not the configured chain's {expected}")]
    WrongGenesis {
        found: BlockHash,
        expected: BlockHash,
    },
}

impl From<heed::Error> for IndexError {
    fn from(e: heed::Error) -> Self {
        IndexError::Store(StoreError::Lmdb(e))
    }
}

/// Size of one spent-output record in an undo entry: hashX, tx_num, vout, value.
const SPENT_LEN: usize = HASHX_LEN + TXNUM_LEN + 4 + 8;
/// Size of one created-output record in an undo entry: hashX, tx_num, vout.
const CREATED_LEN: usize = HASHX_LEN + TXNUM_LEN + 4;

/// An output created by a block that has not been flushed yet.
#[derive(Clone, Copy)]
struct NewOutput {
    hashx: HashX,
    tx_num: TxNum,
    value: u64,
}

/// An outpoint as a map key; hashed by its first txid bytes (already uniformly random).
#[derive(Clone, Copy, PartialEq, Eq)]
struct OutKey(Txid, u32);

impl std::hash::Hash for OutKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let bytes = self.0.as_byte_array();
        let mut head = [0u8; 8];
        head.copy_from_slice(&bytes[..8]);
        state.write_u64(u64::from_le_bytes(head) ^ u64::from(self.1).rotate_left(17));
    }
}

#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type OutputMap = HashMap<OutKey, NewOutput, BuildHasherDefault<PassThroughHasher>>;

/// A DB output spent by a pending block: both of its keys are deleted at flush.
struct SpentStored {
    hashx: HashX,
    tx_num: TxNum,
    txid: Txid,
    vout: u32,
}

/// Everything applied since the last flush.
#[derive(Default)]
struct Pending {
    headers: Vec<(Height, [u8; 80])>,
    /// Cumulative tx count after each pending block, parallel to `headers`.
    tx_counts: Vec<u64>,
    /// Txids of pending transactions, starting at the committed tx count.
    txids: Vec<Txid>,
    history: Vec<(HashX, TxNum)>,
    created: OutputMap,
    spent_stored: Vec<SpentStored>,
    undo: Vec<(Height, Vec<u8>)>,
    touched: HashSet<HashX>,
}

/// The writer of the index. Owns the only write path into the [`Store`].
pub struct Indexer {
    store: Arc<Store>,
    /// The committed state plus what is pending: height/tip/tx_count of the last
    /// applied block.
    state: DbState,
    committed_tx_count: u64,
    pending: Pending,
    reorg_limit: u32,
    reader: Option<RoTxn<'static, WithoutTls>>,
}

impl Indexer {
    pub fn new(store: Arc<Store>, reorg_limit: u32) -> Result<Indexer, IndexError> {
        let state = store
            .state()?
            .ok_or_else(|| corrupt("the index has no state record".into()))?;
        Ok(Indexer {
            committed_tx_count: state.tx_count,
            store,
            state,
            pending: Pending::default(),
            reorg_limit,
            reader: None,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Height of the last applied block (pending or committed), `None` before genesis.
    pub fn height(&self) -> Option<Height> {
        self.state.height
    }

    /// Hash of the last applied block.
    pub fn tip(&self) -> Option<BlockHash> {
        self.pending
            .headers
            .last()
            .map(|(_, header)| header_hash(header))
            .or_else(|| self.state.tip.as_ref().and_then(|hex| hex.parse().ok()))
    }

    pub fn tx_count(&self) -> u64 {
        self.state.tx_count
    }

    pub fn reorg_limit(&self) -> u32 {
        self.reorg_limit
    }

    /// Rough memory held by unflushed blocks, for the CACHE_MB budget.
    pub fn pending_bytes(&self) -> usize {
        let p = &self.pending;
        // HashMap entry (key 36 + value 24 + control/padding), vectors at their element size.
        p.created.len() * 80
            + p.history.len() * 24
            + p.txids.len() * 32
            + p.spent_stored.len() * 64
            + p.headers.len() * 100
            + p.undo.iter().map(|(_, u)| u.len() + 32).sum::<usize>()
            + p.touched.len() * 16
    }

    pub fn pending_blocks(&self) -> usize {
        self.pending.headers.len()
    }

    /// Script hashes touched since the last call, for notifications.
    pub fn take_touched(&mut self) -> HashSet<HashX> {
        std::mem::take(&mut self.pending.touched)
    }

    /// Stores the genesis header. Its transactions are not indexed (ElectrumX does the
    /// same: the genesis coinbase cannot be spent).
    pub fn apply_genesis(
        &mut self,
        header: [u8; 80],
        expected: &BlockHash,
    ) -> Result<(), IndexError> {
        let found = header_hash(&header);
        if found != *expected {
            return Err(IndexError::WrongGenesis {
                found,
                expected: *expected,
            });
        }
        self.pending.headers.push((0, header));
        self.pending.tx_counts.push(self.state.tx_count);
        self.state.height = Some(0);
        self.state.tip = Some(found.to_string());
        Ok(())
    }

    /// Applies a block on top of the current tip. `keep_undo` is false for blocks deeper
    /// than REORG_LIMIT below the daemon's tip, which can never be undone.
    pub fn apply_block(&mut self, block: &ParsedBlock, keep_undo: bool) -> Result<(), IndexError> {
        let height = self.state.height.map_or(0, |h| h + 1);
        let tip = self.tip().unwrap_or_else(BlockHash::all_zeros);
        if block.prev_hash != tip {
            return Err(IndexError::DoesNotConnect {
                height,
                hash: block.hash,
                tip,
            });
        }
        if self.reader.is_none() {
            self.reader = Some(self.store.env.clone().static_read_txn()?);
        }
        let mut spent_undo: Vec<u8> = Vec::new();
        let mut created_undo: Vec<u8> = Vec::new();
        let mut tx_num = TxNum(self.state.tx_count);
        for tx in &block.txs {
            let mut touched_by_tx: Vec<HashX> = Vec::new();
            if !tx.is_coinbase {
                for prevout in &tx.inputs {
                    let key = OutKey(prevout.txid, prevout.vout);
                    let spent = match self.pending.created.remove(&key) {
                        Some(output) => output,
                        None => {
                            self.spend_stored(&prevout.txid, prevout.vout)
                                .and_then(|found| {
                                    found.ok_or(IndexError::MissingUtxo {
                                        spender: tx.txid,
                                        height,
                                        txid: prevout.txid,
                                        vout: prevout.vout,
                                    })
                                })?
                        }
                    };
                    if keep_undo {
                        spent_undo.extend_from_slice(&spent.hashx.0);
                        spent_undo.extend_from_slice(&spent.tx_num.to_bytes());
                        spent_undo.extend_from_slice(&prevout.vout.to_be_bytes());
                        spent_undo.extend_from_slice(&spent.value.to_be_bytes());
                    }
                    touched_by_tx.push(spent.hashx);
                }
            }
            for (vout, output) in tx.outputs.iter().enumerate() {
                let Some(hashx) = output.hashx else { continue };
                let vout = vout as u32;
                self.pending.created.insert(
                    OutKey(tx.txid, vout),
                    NewOutput {
                        hashx,
                        tx_num,
                        value: output.value,
                    },
                );
                if keep_undo {
                    created_undo.extend_from_slice(&hashx.0);
                    created_undo.extend_from_slice(&tx_num.to_bytes());
                    created_undo.extend_from_slice(&vout.to_be_bytes());
                }
                touched_by_tx.push(hashx);
            }
            // One history row per (script, transaction), however often the tx touches it.
            touched_by_tx.sort_unstable();
            touched_by_tx.dedup();
            for hashx in touched_by_tx {
                self.pending.history.push((hashx, tx_num));
                self.pending.touched.insert(hashx);
            }
            self.pending.txids.push(tx.txid);
            tx_num = TxNum(tx_num.0 + 1);
        }
        if keep_undo {
            let mut record = Vec::with_capacity(4 + spent_undo.len() + created_undo.len());
            record.extend_from_slice(&((spent_undo.len() / SPENT_LEN) as u32).to_be_bytes());
            record.extend_from_slice(&spent_undo);
            record.extend_from_slice(&created_undo);
            self.pending.undo.push((height, record));
        }
        self.pending.headers.push((height, block.header));
        self.pending.tx_counts.push(tx_num.0);
        self.state.height = Some(height);
        self.state.tip = Some(block.hash.to_string());
        self.state.tx_count = tx_num.0;
        Ok(())
    }

    /// Finds and removes a committed output spent by a pending block.
    fn spend_stored(&mut self, txid: &Txid, vout: u32) -> Result<Option<NewOutput>, IndexError> {
        let Some(reader) = self.reader.as_ref() else {
            return Err(corrupt("no read transaction while applying a block".into()).into());
        };
        let store = &self.store;
        for item in store
            .outpoints
            .prefix_iter(reader, &outpoint_prefix(txid, vout))?
        {
            let (key, hashx) = item?;
            let tx_num = TxNum::from_bytes(&key[8..]);
            let stored_txid = store
                .txids
                .get(reader, &tx_num.to_bytes())?
                .ok_or_else(|| {
                    corrupt(format!("outpoint refers to unknown tx_num {}", tx_num.0))
                })?;
            if stored_txid != txid.as_byte_array() {
                continue;
            }
            if hashx.len() != HASHX_LEN {
                return Err(corrupt("outpoint value of the wrong size".into()).into());
            }
            let hashx = HashX::from_slice(hashx);
            let Some(value) = store.utxo.get(reader, &utxo_key(&hashx, tx_num, vout))? else {
                // The outpoint row outlived its UTXO row: only possible after corruption.
                return Err(corrupt(format!("outpoint {txid}:{vout} has no utxo row")).into());
            };
            let value = be_u64(value)?;
            self.pending.spent_stored.push(SpentStored {
                hashx,
                tx_num,
                txid: *txid,
                vout,
            });
            return Ok(Some(NewOutput {
                hashx,
                tx_num,
                value,
            }));
        }
        Ok(None)
    }

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
        let mut wtxn = store.env.write_txn()?;

        for ((height, header), count) in pending.headers.iter().zip(&pending.tx_counts) {
            let key = height.to_be_bytes();
            store
                .headers
                .put_with_flags(&mut wtxn, PutFlags::APPEND, &key, header)?;
            store.tx_counts.put_with_flags(
                &mut wtxn,
                PutFlags::APPEND,
                &key,
                &count.to_be_bytes(),
            )?;
            store.tx_heights.put_with_flags(
                &mut wtxn,
                PutFlags::APPEND,
                &count.to_be_bytes(),
                &key,
            )?;
        }
        for (offset, txid) in pending.txids.iter().enumerate() {
            let tx_num = TxNum(self.committed_tx_count + offset as u64);
            store.txids.put_with_flags(
                &mut wtxn,
                PutFlags::APPEND,
                &tx_num.to_bytes(),
                txid.as_byte_array(),
            )?;
        }

        // Sorted rows go into an empty table by appending, without a tree search each:
        // the first flush of an initial sync is usually the largest.
        let mut txid_keys: Vec<_> = pending
            .txids
            .iter()
            .enumerate()
            .map(|(offset, txid)| {
                txid_index_key(txid, TxNum(self.committed_tx_count + offset as u64))
            })
            .collect();
        txid_keys.sort_unstable();
        let flags = append_if_empty(&store.txid_index, &wtxn)?;
        for key in &txid_keys {
            store
                .txid_index
                .put_with_flags(&mut wtxn, flags, key, &[])?;
        }

        pending.history.sort_unstable();
        let append = store.history.is_empty(&wtxn)?;
        let mut previous: Option<HashX> = None;
        for (hashx, tx_num) in &pending.history {
            let flags = match (append, previous == Some(*hashx)) {
                (false, _) => PutFlags::empty(),
                (true, false) => PutFlags::APPEND,
                (true, true) => PutFlags::APPEND_DUP,
            };
            store
                .history
                .put_with_flags(&mut wtxn, flags, &hashx.0, &tx_num.to_bytes())?;
            previous = Some(*hashx);
        }

        for spent in &pending.spent_stored {
            store
                .utxo
                .delete(&mut wtxn, &utxo_key(&spent.hashx, spent.tx_num, spent.vout))?;
            store.outpoints.delete(
                &mut wtxn,
                &outpoint_key(&spent.txid, spent.vout, spent.tx_num),
            )?;
        }

        let mut utxo_rows: Vec<([u8; crate::store::UTXO_KEY_LEN], u64)> = Vec::new();
        let mut outpoint_rows: Vec<([u8; crate::store::OUTPOINT_KEY_LEN], HashX)> = Vec::new();
        utxo_rows.reserve(pending.created.len());
        outpoint_rows.reserve(pending.created.len());
        for (OutKey(txid, vout), output) in &pending.created {
            utxo_rows.push((utxo_key(&output.hashx, output.tx_num, *vout), output.value));
            outpoint_rows.push((outpoint_key(txid, *vout, output.tx_num), output.hashx));
        }
        utxo_rows.sort_unstable_by_key(|a| a.0);
        outpoint_rows.sort_unstable_by_key(|a| a.0);
        let flags = append_if_empty(&store.utxo, &wtxn)?;
        for (key, value) in &utxo_rows {
            store
                .utxo
                .put_with_flags(&mut wtxn, flags, key, &value.to_be_bytes())?;
        }
        let flags = append_if_empty(&store.outpoints, &wtxn)?;
        for (key, hashx) in &outpoint_rows {
            store
                .outpoints
                .put_with_flags(&mut wtxn, flags, key, &hashx.0)?;
        }

        for (height, record) in &pending.undo {
            store.undo.put(&mut wtxn, &height.to_be_bytes(), record)?;
        }
        if let Some(height) = self.state.height {
            // Undo older than REORG_LIMIT can never be used.
            if let Some(oldest_kept) = height.checked_sub(self.reorg_limit) {
                let first = match store.undo.first(&wtxn)? {
                    Some((key, _)) => crate::store::be_u32(key)?,
                    None => oldest_kept,
                };
                for old in first..oldest_kept {
                    store.undo.delete(&mut wtxn, &old.to_be_bytes())?;
                }
            }
        }

        store.put_state(&mut wtxn, &self.state)?;
        wtxn.commit()?;
        self.committed_tx_count = self.state.tx_count;
        self.pending.touched = touched;
        Ok(())
    }

    /// Undoes the last `count` blocks in one write transaction, after checking that
    /// every one of them can be undone; on any error the index is left as it was.
    /// Returns the scripts the undone blocks touched.
    pub fn rollback(&mut self, count: u32) -> Result<HashSet<HashX>, IndexError> {
        self.flush()?;
        if count > self.reorg_limit {
            return Err(IndexError::ReorgTooDeep {
                depth: count,
                limit: self.reorg_limit,
            });
        }
        let Some(height) = self.state.height else {
            return Ok(HashSet::new());
        };
        if count > height {
            return Err(IndexError::NoUndo(0));
        }
        let store = Arc::clone(&self.store);
        store.ensure_room(0)?;
        let mut wtxn = store.env.write_txn()?;
        for h in (height + 1 - count..=height).rev() {
            if store.undo.get(&wtxn, &h.to_be_bytes())?.is_none() {
                return Err(IndexError::NoUndo(h));
            }
        }
        let mut touched = HashSet::new();
        for h in (height + 1 - count..=height).rev() {
            self.undo_block(&mut wtxn, h, &mut touched)?;
        }
        let new_height = height - count;
        let header = store
            .headers
            .get(&wtxn, &new_height.to_be_bytes())?
            .ok_or_else(|| corrupt(format!("no header at height {new_height}")))?;
        let tx_count = match store.tx_counts.get(&wtxn, &new_height.to_be_bytes())? {
            Some(bytes) => be_u64(bytes)?,
            None => return Err(corrupt(format!("no tx count at height {new_height}")).into()),
        };
        self.state.height = Some(new_height);
        self.state.tip = Some(header_hash(header).to_string());
        self.state.tx_count = tx_count;
        store.put_state(&mut wtxn, &self.state)?;
        wtxn.commit()?;
        self.committed_tx_count = tx_count;
        self.pending.touched.extend(touched.iter().copied());
        Ok(touched)
    }

    fn undo_block(
        &self,
        wtxn: &mut heed::RwTxn,
        height: Height,
        touched: &mut HashSet<HashX>,
    ) -> Result<(), IndexError> {
        let store = &self.store;
        let key = height.to_be_bytes();
        let record = store
            .undo
            .get(wtxn, &key)?
            .ok_or(IndexError::NoUndo(height))?
            .to_vec();
        let end = match store.tx_counts.get(wtxn, &key)? {
            Some(bytes) => be_u64(bytes)?,
            None => return Err(corrupt(format!("no tx count at height {height}")).into()),
        };
        let first = match height.checked_sub(1) {
            Some(prev) => match store.tx_counts.get(wtxn, &prev.to_be_bytes())? {
                Some(bytes) => be_u64(bytes)?,
                None => return Err(corrupt(format!("no tx count at height {prev}")).into()),
            },
            None => 0,
        };
        let (spent, created) = split_undo(&record, height)?;
        let mut touched_here = HashSet::new();

        for entry in created.chunks_exact(CREATED_LEN) {
            let hashx = HashX::from_slice(entry);
            let tx_num = TxNum::from_bytes(&entry[HASHX_LEN..]);
            let vout = read_u32(&entry[HASHX_LEN + TXNUM_LEN..]);
            let txid = txid_at(store, wtxn, tx_num)?;
            store.utxo.delete(wtxn, &utxo_key(&hashx, tx_num, vout))?;
            store
                .outpoints
                .delete(wtxn, &outpoint_key(&txid, vout, tx_num))?;
            touched_here.insert(hashx);
        }
        for entry in spent.chunks_exact(SPENT_LEN) {
            let hashx = HashX::from_slice(entry);
            let tx_num = TxNum::from_bytes(&entry[HASHX_LEN..]);
            let vout = read_u32(&entry[HASHX_LEN + TXNUM_LEN..]);
            touched_here.insert(hashx);
            if tx_num.0 >= first {
                // Created and spent within this block: it never was a committed UTXO.
                continue;
            }
            let value = &entry[HASHX_LEN + TXNUM_LEN + 4..];
            let txid = txid_at(store, wtxn, tx_num)?;
            store
                .utxo
                .put(wtxn, &utxo_key(&hashx, tx_num, vout), value)?;
            store
                .outpoints
                .put(wtxn, &outpoint_key(&txid, vout, tx_num), &hashx.0)?;
        }
        for hashx in &touched_here {
            let mut doomed = Vec::new();
            if let Some(iter) = store.history.get_duplicates(wtxn, &hashx.0)? {
                for item in iter {
                    let (_, value) = item?;
                    if TxNum::from_bytes(value).0 >= first {
                        doomed.push(value.to_vec());
                    }
                }
            }
            for value in doomed {
                store.history.delete_one_duplicate(wtxn, &hashx.0, &value)?;
            }
        }
        for tx_num in first..end {
            let tx_num = TxNum(tx_num);
            let txid = txid_at(store, wtxn, tx_num)?;
            store
                .txid_index
                .delete(wtxn, &txid_index_key(&txid, tx_num))?;
            store.txids.delete(wtxn, &tx_num.to_bytes())?;
        }
        store.headers.delete(wtxn, &key)?;
        store.tx_counts.delete(wtxn, &key)?;
        store.tx_heights.delete(wtxn, &end.to_be_bytes())?;
        store.undo.delete(wtxn, &key)?;
        touched.extend(touched_here);
        Ok(())
    }

    /// Hashes of our blocks at `heights` (for finding a fork point), from the committed
    /// index. Call after [`Self::flush`].
    pub fn block_hash_at(&self, height: Height) -> Result<Option<BlockHash>, IndexError> {
        let snapshot = self.store.snapshot()?;
        Ok(snapshot.header(height)?.map(|h| header_hash(&h)))
    }
}

fn append_if_empty(db: &crate::store::Db, txn: &heed::RwTxn) -> Result<PutFlags, IndexError> {
    Ok(if db.is_empty(txn)? {
        PutFlags::APPEND
    } else {
        PutFlags::empty()
    })
}

fn split_undo(record: &[u8], height: Height) -> Result<(&[u8], &[u8]), IndexError> {
    let bad = || IndexError::Store(corrupt(format!("malformed undo record at height {height}")));
    if record.len() < 4 {
        return Err(bad());
    }
    let spent_count = read_u32(record) as usize;
    let spent_end = spent_count
        .checked_mul(SPENT_LEN)
        .and_then(|n| n.checked_add(4))
        .filter(|end| *end <= record.len())
        .ok_or_else(bad)?;
    let created = &record[spent_end..];
    if !created.len().is_multiple_of(CREATED_LEN) {
        return Err(bad());
    }
    Ok((&record[4..spent_end], created))
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(array)
}

fn txid_at(store: &Store, txn: &heed::RwTxn, tx_num: TxNum) -> Result<Txid, IndexError> {
    let bytes = store
        .txids
        .get(txn, &tx_num.to_bytes())?
        .ok_or_else(|| corrupt(format!("no txid for tx_num {}", tx_num.0)))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("txid {} is not 32 bytes", tx_num.0)))?;
    Ok(Txid::from_byte_array(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{ParsedTx, TxOutput};
    use bitcoin::OutPoint;
    use bitcoin::hashes::sha256d;

    const GENESIS: [u8; 80] = [0; 80];

    fn genesis_hash() -> BlockHash {
        header_hash(&GENESIS)
    }

    fn script(n: u8) -> HashX {
        HashX::from_script(&[0x51, n])
    }

    fn txid(tag: &str) -> Txid {
        Txid::from_raw_hash(sha256d::Hash::hash(tag.as_bytes()))
    }

    fn tx(tag: &str, inputs: &[(Txid, u32)], outputs: &[(u8, u64)]) -> ParsedTx {
        ParsedTx {
            txid: txid(tag),
            is_coinbase: inputs.is_empty(),
            inputs: inputs
                .iter()
                .map(|(txid, vout)| OutPoint {
                    txid: *txid,
                    vout: *vout,
                })
                .collect(),
            outputs: outputs
                .iter()
                .map(|(s, value)| TxOutput {
                    hashx: Some(script(*s)),
                    value: *value,
                })
                .collect(),
            vsize: 100,
        }
    }

    fn block(prev: BlockHash, nonce: u8, txs: Vec<ParsedTx>) -> ParsedBlock {
        let mut header = [0u8; 80];
        header[4..36].copy_from_slice(prev.as_byte_array());
        header[76] = nonce;
        ParsedBlock {
            header,
            hash: header_hash(&header),
            prev_hash: prev,
            txs,
        }
    }

    /// genesis, then three blocks: reused scripts, a spend of a committed output, and a
    /// spend of an output created earlier in the same block.
    fn chain() -> Vec<ParsedBlock> {
        let b1 = block(genesis_hash(), 1, vec![tx("cb1", &[], &[(1, 50)])]);
        let b2 = block(
            b1.hash,
            2,
            vec![
                tx("cb2", &[], &[(2, 50)]),
                tx("t2", &[(txid("cb1"), 0)], &[(3, 30), (1, 20)]),
            ],
        );
        let b3 = block(
            b2.hash,
            3,
            vec![
                tx("cb3", &[], &[(2, 50)]),
                tx("t3a", &[(txid("t2"), 0)], &[(4, 29)]),
                tx("t3b", &[(txid("t3a"), 0)], &[(5, 28)]),
            ],
        );
        vec![b1, b2, b3]
    }

    fn fresh(limit: u32) -> (tempfile::TempDir, Indexer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "Test", "regtest", &genesis_hash()).unwrap());
        let mut indexer = Indexer::new(store, limit).unwrap();
        indexer.apply_genesis(GENESIS, &genesis_hash()).unwrap();
        indexer.flush().unwrap();
        (dir, indexer)
    }

    fn dump(indexer: &Indexer) -> String {
        let mut out = Vec::new();
        indexer.store().snapshot().unwrap().dump(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn history_utxos_and_balance_follow_the_chain() {
        let (_dir, mut indexer) = fresh(100);
        for b in chain() {
            indexer.apply_block(&b, true).unwrap();
        }
        indexer.flush().unwrap();
        let snap = indexer.store().snapshot().unwrap();
        let history = |s| {
            let h = snap.history(&script(s), 1000).unwrap().unwrap();
            h.iter().map(|e| (e.txid, e.height)).collect::<Vec<_>>()
        };
        assert_eq!(history(1), vec![(txid("cb1"), 1), (txid("t2"), 2)]);
        assert_eq!(history(2), vec![(txid("cb2"), 2), (txid("cb3"), 3)]);
        assert_eq!(history(3), vec![(txid("t2"), 2), (txid("t3a"), 3)]);
        assert_eq!(history(4), vec![(txid("t3a"), 3), (txid("t3b"), 3)]);
        assert_eq!(snap.balance(&script(1)).unwrap(), (20, 1));
        assert_eq!(snap.balance(&script(3)).unwrap(), (0, 0));
        assert_eq!(snap.balance(&script(4)).unwrap(), (0, 0));
        let utxos = snap.utxos(&script(2)).unwrap();
        assert_eq!(
            utxos
                .iter()
                .map(|u| (u.height, u.value))
                .collect::<Vec<_>>(),
            vec![(2, 50), (3, 50)]
        );
        assert_eq!(snap.utxos(&script(5)).unwrap()[0].txid, txid("t3b"));
        assert_eq!(snap.tx_position(&txid("t3a")).unwrap(), Some((TxNum(4), 3)));
        assert_eq!(snap.tx_position(&txid("cb1")).unwrap(), Some((TxNum(0), 1)));
        assert_eq!(snap.tx_position(&txid("nowhere")).unwrap(), None);
        assert_eq!(
            snap.utxo_of(&txid("t2"), 1).unwrap(),
            Some((script(1), TxNum(2), 20))
        );
        assert_eq!(snap.utxo_of(&txid("t2"), 0).unwrap(), None);
        assert_eq!(
            snap.history(&script(2), 2).unwrap(),
            Err(crate::store::HistoryTooLong)
        );
    }

    #[test]
    fn flush_boundaries_do_not_change_the_index() {
        let (_d1, mut one_flush) = fresh(100);
        let (_d2, mut every_block) = fresh(100);
        for b in chain() {
            one_flush.apply_block(&b, true).unwrap();
            every_block.apply_block(&b, true).unwrap();
            every_block.flush().unwrap();
        }
        one_flush.flush().unwrap();
        assert_eq!(dump(&one_flush), dump(&every_block));
    }

    #[test]
    fn rollback_restores_the_exact_earlier_index() {
        let (_dir, mut indexer) = fresh(100);
        let blocks = chain();
        let mut dumps = vec![dump(&indexer)];
        for b in &blocks {
            indexer.apply_block(b, true).unwrap();
            indexer.flush().unwrap();
            dumps.push(dump(&indexer));
        }
        let touched = indexer.rollback(1).unwrap();
        assert!(touched.contains(&script(4)) && touched.contains(&script(3)));
        assert_eq!(dump(&indexer), dumps[2]);
        indexer.apply_block(&blocks[2], true).unwrap();
        indexer.flush().unwrap();
        assert_eq!(dump(&indexer), dumps[3]);
        indexer.rollback(3).unwrap();
        assert_eq!(dump(&indexer), dumps[0]);
        assert_eq!(indexer.tip(), Some(genesis_hash()));
    }

    #[test]
    fn too_deep_or_unrecorded_reorgs_leave_the_index_untouched() {
        let (_dir, mut indexer) = fresh(2);
        for b in chain() {
            indexer.apply_block(&b, true).unwrap();
        }
        indexer.flush().unwrap();
        let before = dump(&indexer);
        assert!(matches!(
            indexer.rollback(3),
            Err(IndexError::ReorgTooDeep { depth: 3, limit: 2 })
        ));
        assert_eq!(dump(&indexer), before);

        let (_dir2, mut no_undo) = fresh(100);
        for b in chain() {
            no_undo.apply_block(&b, false).unwrap();
        }
        no_undo.flush().unwrap();
        let before = dump(&no_undo);
        assert!(matches!(no_undo.rollback(1), Err(IndexError::NoUndo(3))));
        assert_eq!(dump(&no_undo), before);
    }

    #[test]
    fn spending_an_unknown_output_is_an_error() {
        let (_dir, mut indexer) = fresh(100);
        let bad = block(
            genesis_hash(),
            9,
            vec![
                tx("cb", &[], &[(1, 1)]),
                tx("x", &[(txid("nowhere"), 0)], &[(2, 1)]),
            ],
        );
        assert!(matches!(
            indexer.apply_block(&bad, true),
            Err(IndexError::MissingUtxo { vout: 0, .. })
        ));
        let orphan = block(txid("other").to_raw_hash().into(), 9, vec![]);
        assert!(matches!(
            indexer.apply_block(&orphan, true),
            Err(IndexError::DoesNotConnect { .. })
        ));
    }
}
