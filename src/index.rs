//! Applying blocks to the index and undoing them.
//!
//! The [`Indexer`] is the index's only writer. Blocks are applied in memory (new
//! outputs, spends, history, undo records) and written by [`Indexer::flush`] in one
//! LMDB write transaction, so the committed index is always exactly the chain up to
//! some block: a crash at any instant resumes from the last flush and reaches the same
//! result as an uninterrupted sync. During catch-up the caller flushes when
//! [`Indexer::pending_bytes`] passes its cache budget; once caught up, after every block.

use crate::chain::ParsedBlock;
use crate::hashes::{HashX, Height, TxNum};
use crate::schema::{self, TXID_INDEX_KEY_LEN, UTXO_KEY_LEN, UndoOutput, UndoRecord};
use crate::spends::{self, SpendRows};
use crate::store::{DbState, Store, StoreError, TxidIs, corrupt, header_hash, unspent_output};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use heed::{PutFlags, RoTxn, WithoutTls};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;
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

impl From<schema::Malformed> for IndexError {
    fn from(e: schema::Malformed) -> Self {
        IndexError::Store(StoreError::from(e))
    }
}

impl From<heed::Error> for IndexError {
    fn from(e: heed::Error) -> Self {
        IndexError::Store(StoreError::Lmdb(e))
    }
}

/// An output being spent: where it was created and what it held.
#[derive(Clone, Copy)]
struct NewOutput {
    hashx: HashX,
    tx_num: TxNum,
    value: u64,
}

/// An output of a pending transaction, in `Pending::outputs`.
#[derive(Clone, Copy)]
struct PendingOutput {
    hashx: HashX,
    /// [`GONE`] once spent, or for an output the index does not record (unspendable).
    value: u64,
}

/// The value of a pending output slot that holds no output.
const GONE: u64 = u64::MAX;

/// Hashes a key whose first eight bytes are already uniformly random (a txid, a hashX)
/// by taking them as they are: SipHash would cost more than the table lookup.
#[derive(Default)]
struct FirstBytesHasher(u64);

impl Hasher for FirstBytesHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*head);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }
    // The length that arrays and slices write before their bytes carries nothing.
    fn write_usize(&mut self, _: usize) {}
}

type FastHash = BuildHasherDefault<FirstBytesHasher>;

/// The rows a flush sorts and writes for each new output.
type UtxoRow = ([u8; UTXO_KEY_LEN], u64);

/// A DB output spent by a pending block: both of its rows are deleted at flush.
struct SpentStored {
    hashx: HashX,
    tx_num: TxNum,
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
    /// Where each pending transaction's outputs start in `outputs`, parallel to `txids`.
    output_starts: Vec<u32>,
    /// The outputs of every pending transaction, in chain order: spends of young
    /// outputs are found here and never reach the index.
    outputs: Vec<PendingOutput>,
    /// A pending transaction's position in `txids` (one entry per transaction, not per
    /// output). A repeated txid (Bitcoin's two duplicated coinbases) names the later.
    tx_positions: HashMap<Txid, u32, FastHash>,
    history: Vec<(HashX, TxNum)>,
    spent_stored: Vec<SpentStored>,
    undo: Vec<(Height, Vec<u8>)>,
    touched: HashSet<HashX, FastHash>,
    spends: SpendRows,
}

impl Pending {
    /// Takes the unspent output `txid:vout` of a pending transaction.
    fn spend(&mut self, txid: &Txid, vout: u32, first_tx_num: u64) -> Option<NewOutput> {
        let position = *self.tx_positions.get(txid)? as usize;
        let start = self.output_starts[position] as usize;
        let end = self
            .output_starts
            .get(position + 1)
            .map_or(self.outputs.len(), |next| *next as usize);
        let slot = start
            .checked_add(vout as usize)
            .filter(|slot| *slot < end)?;
        let output = &mut self.outputs[slot];
        if output.value == GONE {
            return None;
        }
        let spent = NewOutput {
            hashx: output.hashx,
            tx_num: TxNum(first_tx_num + position as u64),
            value: output.value,
        };
        output.value = GONE;
        Some(spent)
    }

    /// The unspent pending outputs in key order of the outpoints table (tx_num, vout).
    fn unspent(&self, first_tx_num: u64) -> impl Iterator<Item = (TxNum, u32, &PendingOutput)> {
        self.output_starts
            .iter()
            .enumerate()
            .flat_map(move |(position, start)| {
                let end = self
                    .output_starts
                    .get(position + 1)
                    .map_or(self.outputs.len(), |next| *next as usize);
                let tx_num = TxNum(first_tx_num + position as u64);
                self.outputs[*start as usize..end]
                    .iter()
                    .enumerate()
                    .filter(|(_, output)| output.value != GONE)
                    .map(move |(vout, output)| (tx_num, vout as u32, output))
            })
    }
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
    /// Whether applied blocks record the scripts they touch (for notifications).
    track_touched: bool,
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
            track_touched: true,
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

    /// Memory held by unflushed blocks, plus what the flush adds to it (the sorted rows
    /// it writes), for the CACHE_MB budget. Vectors count at their length: they grow by
    /// `realloc`, which moves large blocks without holding two copies, and capacity not
    /// yet written is not resident. The outputs map counts at its allocated size, and
    /// thrice that when it is about to double (old and new table at once).
    pub fn pending_bytes(&self) -> usize {
        use std::mem::size_of;
        let p = &self.pending;
        let table = |capacity: usize, slot: usize| capacity * 8 / 7 * (slot + 1);
        let mut positions = table(p.tx_positions.capacity(), size_of::<(Txid, u32)>());
        if p.tx_positions.len() >= p.tx_positions.capacity() / 4 * 3 {
            positions *= 3;
        }
        let mut touched = table(p.touched.capacity(), size_of::<HashX>());
        if p.touched.len() >= p.touched.capacity() / 4 * 3 {
            touched *= 3;
        }
        // The flush sorts a UTXO row per output (at most) and a txid-index key per tx.
        let flush_rows = p.outputs.len() * size_of::<UtxoRow>()
            + p.txids.len() * size_of::<[u8; TXID_INDEX_KEY_LEN]>();
        positions
            + touched
            + flush_rows
            + p.outputs.len() * size_of::<PendingOutput>()
            + p.output_starts.len() * size_of::<u32>()
            + p.history.len() * size_of::<(HashX, TxNum)>()
            + p.txids.len() * size_of::<Txid>()
            + p.spent_stored.len() * size_of::<SpentStored>()
            + p.headers.len() * (size_of::<(Height, [u8; 80])>() + 8)
            + p.undo.iter().map(|(_, u)| u.capacity() + 32).sum::<usize>()
            + p.spends.bytes()
    }

    pub fn pending_blocks(&self) -> usize {
        self.pending.headers.len()
    }

    /// Whether to record the scripts applied blocks touch. Off during the first
    /// catch-up, when no client can be subscribed yet: on a long chain the set would
    /// hold every script and crowd the catch-up cache.
    pub fn track_touched(&mut self, on: bool) {
        self.track_touched = on;
    }

    /// Script hashes touched since the last call, for notifications.
    pub fn take_touched(&mut self) -> HashSet<HashX> {
        std::mem::take(&mut self.pending.touched)
            .into_iter()
            .collect()
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
        let mut undo = UndoRecord::default();
        let mut tx_num = TxNum(self.state.tx_count);
        for tx in &block.txs {
            let mut touched_by_tx: Vec<HashX> = Vec::new();
            if !tx.is_coinbase {
                for prevout in &tx.inputs {
                    let young =
                        self.pending
                            .spend(&prevout.txid, prevout.vout, self.committed_tx_count);
                    let spent = match young {
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
                        undo.spent(&UndoOutput {
                            hashx: spent.hashx,
                            tx_num: spent.tx_num,
                            vout: prevout.vout,
                            value: spent.value,
                        });
                    }
                    self.pending
                        .spends
                        .spent(spent.tx_num, prevout.vout, tx_num);
                    touched_by_tx.push(spent.hashx);
                }
            }
            let position = self.pending.txids.len();
            self.pending
                .output_starts
                .push(self.pending.outputs.len() as u32);
            self.pending.tx_positions.insert(tx.txid, position as u32);
            for output in &tx.outputs {
                let Some(hashx) = output.hashx else {
                    self.pending.outputs.push(PendingOutput {
                        hashx: HashX([0; crate::hashes::HASHX_LEN]),
                        value: GONE,
                    });
                    continue;
                };
                self.pending.outputs.push(PendingOutput {
                    hashx,
                    value: output.value,
                });
                touched_by_tx.push(hashx);
            }
            // One history row per (script, transaction), however often the tx touches it.
            touched_by_tx.sort_unstable();
            touched_by_tx.dedup();
            for hashx in touched_by_tx {
                self.pending.history.push((hashx, tx_num));
                if self.track_touched {
                    self.pending.touched.insert(hashx);
                }
            }
            self.pending.txids.push(tx.txid);
            tx_num = TxNum(tx_num.0 + 1);
        }
        if keep_undo {
            self.pending.undo.push((height, undo.encode()));
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
        let Some((hashx, tx_num, value)) =
            unspent_output(&self.store, reader, txid, vout, TxidIs::Indexed)?
        else {
            return Ok(None);
        };
        self.pending.spent_stored.push(SpentStored {
            hashx,
            tx_num,
            vout,
        });
        Ok(Some(NewOutput {
            hashx,
            tx_num,
            value,
        }))
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
            let key = schema::height_key(*height);
            let count = schema::count_bytes(*count);
            let append = PutFlags::APPEND;
            store
                .headers
                .put_with_flags(&mut wtxn, append, &key, header)?;
            store
                .tx_counts
                .put_with_flags(&mut wtxn, append, &key, &count)?;
            store
                .tx_heights
                .put_with_flags(&mut wtxn, append, &count, &key)?;
        }
        for (offset, txid) in pending.txids.iter().enumerate() {
            let tx_num = TxNum(self.committed_tx_count + offset as u64);
            store.txids.put_with_flags(
                &mut wtxn,
                PutFlags::APPEND,
                &schema::tx_num_key(tx_num),
                txid.as_byte_array(),
            )?;
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
        let flags = append_if_empty(&store.txid_index, &wtxn)?;
        for key in &txid_keys {
            store
                .txid_index
                .put_with_flags(&mut wtxn, flags, key, &[])?;
        }
        drop(txid_keys);

        pending.history.sort_unstable();
        let append = store.history.is_empty(&wtxn)?;
        let mut previous: Option<HashX> = None;
        for (hashx, tx_num) in &pending.history {
            let flags = match (append, previous == Some(*hashx)) {
                (false, _) => PutFlags::empty(),
                (true, false) => PutFlags::APPEND,
                (true, true) => PutFlags::APPEND_DUP,
            };
            store.history.put_with_flags(
                &mut wtxn,
                flags,
                &hashx.0,
                &schema::tx_num_key(*tx_num),
            )?;
            previous = Some(*hashx);
        }

        // Spent outputs, in key order: the outpoints by age (young ones share the last
        // pages), the UTXOs by script.
        pending
            .spent_stored
            .sort_unstable_by_key(|s| (s.tx_num, s.vout));
        for spent in &pending.spent_stored {
            store
                .outpoints
                .delete(&mut wtxn, &schema::outpoint_key(spent.tx_num, spent.vout))?;
        }
        let mut spent_utxos: Vec<[u8; UTXO_KEY_LEN]> = pending
            .spent_stored
            .iter()
            .map(|s| schema::utxo_key(&s.hashx, s.tx_num, s.vout))
            .collect();
        spent_utxos.sort_unstable();
        for key in &spent_utxos {
            store.utxo.delete(&mut wtxn, key)?;
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
        let flags = append_if_empty(&store.utxo, &wtxn)?;
        for (key, value) in &utxo_rows {
            store
                .utxo
                .put_with_flags(&mut wtxn, flags, key, &schema::value_bytes(*value))?;
        }
        drop(utxo_rows);
        // New outputs have the chain's highest tx_nums, and come in key order: each goes
        // at the end.
        for (tx_num, vout, output) in pending.unspent(first_tx_num) {
            store.outpoints.put_with_flags(
                &mut wtxn,
                PutFlags::APPEND,
                &schema::outpoint_key(tx_num, vout),
                &schema::outpoint_value(&output.hashx, output.value),
            )?;
        }

        std::mem::take(&mut pending.spends).write(&store, &mut wtxn)?;
        for (height, record) in &pending.undo {
            store
                .undo
                .put(&mut wtxn, &schema::height_key(*height), record)?;
        }
        if let Some(height) = self.state.height {
            // Undo older than REORG_LIMIT can never be used.
            if let Some(oldest_kept) = height.checked_sub(self.reorg_limit) {
                let first = match store.undo.first(&wtxn)? {
                    Some((key, _)) => schema::decode_height(key)?,
                    None => oldest_kept,
                };
                for old in first..oldest_kept {
                    store.undo.delete(&mut wtxn, &schema::height_key(old))?;
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
            if store.undo.get(&wtxn, &schema::height_key(h))?.is_none() {
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
            .get(&wtxn, &schema::height_key(new_height))?
            .ok_or_else(|| corrupt(format!("no header at height {new_height}")))?;
        let tx_count = tx_count_after(&store, &wtxn, new_height)?;
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
        let key = schema::height_key(height);
        let record = store
            .undo
            .get(wtxn, &key)?
            .ok_or(IndexError::NoUndo(height))?
            .to_vec();
        let end = tx_count_after(store, wtxn, height)?;
        let first = match height.checked_sub(1) {
            Some(prev) => tx_count_after(store, wtxn, prev)?,
            None => 0,
        };
        let spent = UndoRecord::decode(&record)?;
        spends::undo(store, wtxn, &spent)?;
        let mut touched_here = HashSet::new();

        // The block's outputs still unspent are the outpoints rows of its tx_num range
        // (those later blocks spent were restored when those blocks were undone).
        let from = schema::outpoint_key(TxNum(first), 0);
        let to = schema::outpoint_key(TxNum(end), 0);
        let mut created = Vec::new();
        for item in store.outpoints.range(
            wtxn,
            &(Bound::Included(&from[..]), Bound::Excluded(&to[..])),
        )? {
            let (key, value) = item?;
            let (tx_num, vout) = schema::decode_outpoint_key(key)?;
            let (hashx, _) = schema::decode_outpoint_value(value)?;
            created.push((hashx, tx_num, vout));
        }
        for (hashx, tx_num, vout) in created {
            store
                .utxo
                .delete(wtxn, &schema::utxo_key(&hashx, tx_num, vout))?;
            store
                .outpoints
                .delete(wtxn, &schema::outpoint_key(tx_num, vout))?;
            touched_here.insert(hashx);
        }
        for output in &spent {
            touched_here.insert(output.hashx);
            if output.tx_num.0 >= first {
                // Created and spent within this block: it never was a committed UTXO.
                continue;
            }
            store.utxo.put(
                wtxn,
                &schema::utxo_key(&output.hashx, output.tx_num, output.vout),
                &schema::value_bytes(output.value),
            )?;
            store.outpoints.put(
                wtxn,
                &schema::outpoint_key(output.tx_num, output.vout),
                &schema::outpoint_value(&output.hashx, output.value),
            )?;
        }
        for hashx in &touched_here {
            let mut doomed = Vec::new();
            if let Some(iter) = store.history.get_duplicates(wtxn, &hashx.0)? {
                for item in iter {
                    let (_, value) = item?;
                    if schema::decode_tx_num(value)?.0 >= first {
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
            let key = schema::tx_num_key(tx_num);
            let txid = match store.txids.get(wtxn, &key)? {
                Some(bytes) => schema::decode_txid(bytes)?,
                None => return Err(corrupt(format!("no txid for tx_num {}", tx_num.0)).into()),
            };
            store
                .txid_index
                .delete(wtxn, &schema::txid_index_key(&txid, tx_num))?;
            store.txids.delete(wtxn, &key)?;
        }
        store.headers.delete(wtxn, &key)?;
        store.tx_counts.delete(wtxn, &key)?;
        store.tx_heights.delete(wtxn, &schema::count_bytes(end))?;
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

/// The cumulative tx count after the block at `height`, which must be indexed.
fn tx_count_after(store: &Store, txn: &heed::RwTxn, height: Height) -> Result<u64, IndexError> {
    match store.tx_counts.get(txn, &schema::height_key(height))? {
        Some(bytes) => Ok(schema::decode_count(bytes)?),
        None => Err(corrupt(format!("no tx count at height {height}")).into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn block(prev: BlockHash, nonce: u8, txs: Vec<ParsedTx>) -> ParsedBlock {
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
