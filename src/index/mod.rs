//! Applying blocks to the index and undoing them.
//!
//! The [`Indexer`] is the index's only writer. Blocks are applied in memory (new
//! outputs, spends, history, undo records) and written by [`Indexer::flush`] in one
//! LMDB write transaction, so the committed index is always exactly the chain up to
//! some block: a crash at any instant resumes from the last flush and reaches the same
//! result as an uninterrupted sync. During catch-up the caller flushes when
//! [`Indexer::pending_bytes`] passes its cache budget; once caught up, after every block.
//!
//! - [`pending`]: what is held between two flushes.
//! - [`apply`]: applying a block in memory.
//! - [`flush`]: writing what is pending.
//! - [`merge`]: merging the runs of a catch-up into the tables.
//! - [`undo`]: undoing blocks for a reorg.
//!
//! The index is read and written only through [`crate::store`]'s typed operations, whose
//! keys and values [`crate::schema`] encodes.

mod apply;
mod flush;
pub use flush::Compacted;
mod merge;
mod pending;
mod undo;

use crate::hashes::{HashX, Height, TxNum};
use crate::schema::TxidIndexKey;
use crate::store::{DbState, Store, StoreError, WriterView, corrupt, header_hash, runs};
use bitcoin::{BlockHash, Txid};
use pending::{Pending, PendingOutput, SpentStored, UtxoRow};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
    #[error(
        "the merge of the catch-up's runs stopped for a shutdown; it resumes where it \
         stopped at the next start"
    )]
    MergeInterrupted,
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
    reader: Option<WriterView>,
    /// Whether applied blocks record the scripts they touch (for notifications).
    track_touched: bool,
    /// Flushes write history and spends rows to runs ([`crate::store::runs`]) instead
    /// of their tables, until [`Indexer::finish_runs`] merges them.
    write_runs: bool,
    /// Run bytes a merge commits at a time ([`merge::MERGE_COMMIT_BYTES`]; tests
    /// make it small).
    merge_commit_bytes: usize,
    /// Set when the server stops: a merge then ends after its current commit.
    stop: Option<Arc<AtomicBool>>,
    /// Tests: the merge stops with an error after this many commits, as if cut short.
    #[cfg(test)]
    merge_commits_left: Option<usize>,
    /// Tests: the merge repacks the txid index however small its slack.
    #[cfg(test)]
    always_pack: bool,
}

impl Indexer {
    pub fn new(store: Arc<Store>, reorg_limit: u32) -> Result<Indexer, IndexError> {
        let state = store
            .state()?
            .ok_or_else(|| corrupt("the index has no state record".into()))?;
        let missing =
            runs::remove_unlisted(Path::new(store.dir()), &state.runs).map_err(StoreError::from)?;
        if let Some(id) = missing.first() {
            return Err(corrupt(format!(
                "a run of the catch-up ({} in {}) is missing",
                id,
                store.dir()
            ))
            .into());
        }
        Ok(Indexer {
            write_runs: !state.runs.is_empty(),
            committed_tx_count: state.tx_count,
            store,
            state,
            pending: Pending::default(),
            reorg_limit,
            reader: None,
            track_touched: true,
            merge_commit_bytes: merge::MERGE_COMMIT_BYTES,
            stop: None,
            #[cfg(test)]
            merge_commits_left: None,
            #[cfg(test)]
            always_pack: false,
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
        let flush_rows =
            p.outputs.len() * size_of::<UtxoRow>() + p.txids.len() * size_of::<TxidIndexKey>();
        positions
            + touched
            + flush_rows
            + p.outputs.len() * size_of::<PendingOutput>()
            + p.output_starts.len() * size_of::<u32>()
            + p.history.len() * size_of::<u128>()
            + p.txids.len() * size_of::<Txid>()
            + p.spent_stored.len() * size_of::<SpentStored>()
            + p.spends.capacity() * size_of::<(TxNum, u32, TxNum)>()
            + p.headers.len() * (size_of::<(Height, [u8; 80])>() + 8)
            + p.undo.iter().map(|(_, u)| u.capacity() + 32).sum::<usize>()
    }

    pub fn pending_blocks(&self) -> usize {
        self.pending.headers.len()
    }

    /// Whether to record the scripts applied blocks touch. Off during the first
    /// catch-up, when no client can be subscribed yet: on a long chain the set would
    /// hold every script and crowd the catch-up cache.
    /// From the next flush on, history and spends go to sorted runs, merged by
    /// [`Indexer::finish_runs`]: for the first catch-up of many blocks, which no client
    /// queries (the listeners open once it is done and the runs merged). Undoing a
    /// block merges the runs first ([`Indexer::rollback`]).
    /// A merge of runs ends after its current commit once `stop` is set.
    pub fn stop_merges_on(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    pub fn write_runs(&mut self) {
        self.write_runs = true;
    }

    pub fn track_touched(&mut self, on: bool) {
        self.track_touched = on;
    }

    /// Script hashes touched since the last call, for notifications.
    pub fn take_touched(&mut self) -> HashSet<HashX> {
        std::mem::take(&mut self.pending.touched)
            .into_iter()
            .collect()
    }

    /// Hashes of our blocks at `heights` (for finding a fork point), from the committed
    /// index. Call after [`Self::flush`].
    pub fn block_hash_at(&self, height: Height) -> Result<Option<BlockHash>, IndexError> {
        let snapshot = self.store.snapshot()?;
        Ok(snapshot.header(height)?.map(|h| header_hash(&h)))
    }
}

#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod tests;
