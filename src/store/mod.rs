//! The LMDB index: its environment, its identity check, and the growth of its map.
//!
//! One environment, named databases, one writer (the block processor, through
//! [`crate::index`]) writing through a [`WriteTxn`]. Readers take a [`Snapshot`]: an
//! LMDB read transaction, so every answer is computed against one committed state even
//! while blocks are applied. The tables and their keys and values are described, encoded
//! and decoded in [`crate::schema`]; no module outside this one sees a table.
//!
//! - [`snapshot`]: the read API (histories, UTXOs, balances, transactions' positions).
//! - [`dump`]: every record of the index as text (`ferrumx dump-index`).
//! - [`write`]: the write API, one typed operation per kind of row.
//! - [`runs`]: history and spends of a large catch-up, in sorted files until merged.

mod dump;
mod merge_progress;
mod merge_reads;
mod repack;
mod run_lookup;
pub mod runs;
mod snapshot;
mod write;

pub use dump::DumpError;
pub use merge_progress::{MergeProgress, MergeStage, Packed};
pub use snapshot::{ConfirmedOutpoint, HistoryEntry, HistoryTooLong, Snapshot, Utxo, WriterView};
pub use write::WriteTxn;

use crate::hashes::Height;
use crate::schema::Malformed;
use bitcoin::BlockHash;
use bitcoin::hashes::{Hash, sha256d};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithoutTls};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Bumped whenever the layout ([`crate::schema`]) changes; an index of another version
/// is refused. 2: outpoints keyed by tx_num ‖ vout (appended in chain order). 3: the
/// spends table (who spent each confirmed output). 4: histories in rows of up to
/// [`crate::schema::HISTORY_ROW_TXS`] tx_nums instead of one duplicate per entry.
pub const SCHEMA_VERSION: u32 = 4;

/// The memory map starts at twice the data file (at least MIN_MAP_SIZE) and grows, in
/// multiples of MAP_GRANULE, before a write could fill it ([`Store::ensure_room`]): no
/// terabyte reservation, which systems with a capped address space refuse.
const MIN_MAP_SIZE: usize = 64 << 20;
const MAP_GRANULE: usize = 64 << 20;
const TEST_GRANULE: usize = 64 << 10;

/// FERRUMX_TEST_MAP_SIZE (bytes, a multiple of 64 KiB) replaces MIN_MAP_SIZE, and
/// MAP_GRANULE becomes 64 KiB, so that tests can make the map grow many times on a
/// small chain.
fn test_map_size() -> Option<usize> {
    crate::test_switches::map_size().map(|size| size.max(TEST_GRANULE))
}

fn initial_map_size(file_len: u64) -> usize {
    let file_len = usize::try_from(file_len).unwrap_or(usize::MAX / 2);
    round_up_to_granule(
        test_map_size()
            .unwrap_or(MIN_MAP_SIZE)
            .max(file_len.saturating_mul(2)),
    )
}

fn round_up_to_granule(bytes: usize) -> usize {
    let granule = test_map_size().map_or(MAP_GRANULE, |_| TEST_GRANULE);
    bytes.div_ceil(granule).saturating_mul(granule)
}

/// The map size needed to write `needed` more bytes into a data file of `file_len`
/// bytes, or `None` when `map_size` is enough: at least double, so that growing is rare.
pub fn grown_map_size(map_size: usize, file_len: u64, needed: usize) -> Option<usize> {
    let file_len = usize::try_from(file_len).unwrap_or(usize::MAX / 2);
    let required = file_len.saturating_add(needed);
    (required > map_size).then(|| {
        round_up_to_granule(
            map_size
                .saturating_mul(2)
                .max(file_len.saturating_add(needed.saturating_mul(2))),
        )
    })
}

type Db = Database<'static, Bytes, Bytes>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("LMDB error: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("cannot create the index directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the index in {dir} was built for {found}, but this server is configured for {expected}; \
         point DB_DIRECTORY at an empty directory or fix COIN/NET"
    )]
    WrongChain {
        dir: String,
        found: String,
        expected: String,
    },
    #[error(
        "the index in {dir} has schema version {found}, this ferrumx needs {expected}; \
         delete the directory and let ferrumx sync again"
    )]
    WrongSchema {
        dir: String,
        found: u32,
        expected: u32,
    },
    #[error("the index is inconsistent: {0}; delete DB_DIRECTORY and sync again")]
    Corrupt(String),
    #[error("the index was closed after a failed compaction; restart ferrumx")]
    Closed,
    #[error("cannot replace the index in {dir} with its compacted copy: {source}")]
    Compact { dir: String, source: std::io::Error },
    #[error(transparent)]
    Run(#[from] runs::RunError),
}

impl From<Malformed> for StoreError {
    fn from(e: Malformed) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl StoreError {
    /// The write failed for want of space (a full disk, a file-size limit, or a full
    /// memory map): the transaction was aborted and the index keeps its last commit.
    pub fn is_out_of_space(&self) -> bool {
        const ENOSPC: i32 = 28;
        const EFBIG: i32 = 27;
        const EDQUOT: i32 = 122;
        match self {
            StoreError::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull)) => true,
            StoreError::Lmdb(heed::Error::Mdb(heed::MdbError::Other(code))) => {
                matches!(*code, ENOSPC | EFBIG | EDQUOT)
            }
            StoreError::Lmdb(heed::Error::Io(e)) => {
                matches!(e.raw_os_error(), Some(ENOSPC | EFBIG | EDQUOT))
            }
            _ => false,
        }
    }

    pub fn is_map_full(&self) -> bool {
        matches!(
            self,
            StoreError::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull))
        )
    }
}

/// What the index holds, stored under meta/"state" and rewritten by every flush.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbState {
    pub schema_version: u32,
    pub coin: String,
    pub net: String,
    pub genesis: String,
    /// Height of the last indexed block; `None` before the genesis block is stored.
    pub height: Option<Height>,
    /// Hash of the last indexed block (display hex).
    pub tip: Option<String>,
    /// Number of indexed transactions (the next tx_num).
    pub tx_count: u64,
    /// Runs ([`runs`]) committed and not yet merged into their tables, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<u64>,
    /// How far the merge of `runs` has committed, when one was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeProgress>,
}

/// The LMDB environment and its databases, as one opening of the data file. The writer
/// writes through [`Tables::write_txn`]; readers take [`Store::snapshot`].
#[derive(Clone)]
pub struct Tables {
    env: Env<WithoutTls>,
    headers: Db,
    tx_counts: Db,
    tx_heights: Db,
    txids: Db,
    txid_index: Db,
    history: Db,
    utxo: Db,
    outpoints: Db,
    undo: Db,
    meta: Db,
    /// Who spent each confirmed output (protocol 1.7's outpoint status).
    spends: Db,
    /// Empty but while a table is repacked through it ([`WriteTxn::pack_step`]).
    spare: Db,
}

/// The index: its current [`Tables`] (replaced when the file is compacted), shared behind
/// an `Arc`.
pub struct Store {
    /// `None` only while a compaction swaps the file, under the exclusive map gate.
    current: RwLock<Option<Arc<Tables>>>,
    dir: String,
    /// Readers hold it shared; growing the map or swapping the compacted file takes it
    /// exclusively, since LMDB must not be remapped under an open transaction of this
    /// process.
    map_gate: RwLock<()>,
    map_size: AtomicUsize,
    run_reads: merge_reads::RunReads,
}

const STATE_KEY: &[u8] = b"state";

impl Store {
    /// Opens (or creates) the index in `dir` for the given chain. An index made for
    /// another coin, network or schema version is refused.
    pub fn open(
        dir: &Path,
        coin: &str,
        net: &str,
        genesis: &BlockHash,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        remove_unfinished_compaction(dir);
        let file_len = std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len());
        let map_size = initial_map_size(file_len);
        let tables = open_tables(dir, map_size)?;
        let store = Store {
            current: RwLock::new(Some(Arc::new(tables))),
            dir: dir.display().to_string(),
            map_gate: RwLock::new(()),
            map_size: AtomicUsize::new(map_size),
            run_reads: Default::default(),
        };
        store.check_identity(coin, net, genesis)?;
        store.note_runs_listed(store.state()?.is_some_and(|state| !state.runs.is_empty()));
        Ok(store)
    }

    fn check_identity(&self, coin: &str, net: &str, genesis: &BlockHash) -> Result<(), StoreError> {
        let expected = format!("{coin} {net} (genesis {genesis})");
        match self.state()? {
            Some(state) => {
                if state.schema_version != SCHEMA_VERSION {
                    return Err(StoreError::WrongSchema {
                        dir: self.dir.clone(),
                        found: state.schema_version,
                        expected: SCHEMA_VERSION,
                    });
                }
                if state.coin != coin || state.net != net || state.genesis != genesis.to_string() {
                    return Err(StoreError::WrongChain {
                        dir: self.dir.clone(),
                        found: format!("{} {} (genesis {})", state.coin, state.net, state.genesis),
                        expected,
                    });
                }
                Ok(())
            }
            None => {
                let state = DbState {
                    schema_version: SCHEMA_VERSION,
                    coin: coin.to_string(),
                    net: net.to_string(),
                    genesis: genesis.to_string(),
                    height: None,
                    tip: None,
                    tx_count: 0,
                    runs: Vec::new(),
                    merge: None,
                };
                let tables = self.tables()?;
                let mut wtxn = tables.write_txn()?;
                wtxn.put_state(&state)?;
                wtxn.commit()?;
                Ok(())
            }
        }
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The tables as they are now; the writer writes through them.
    pub fn tables(&self) -> Result<Arc<Tables>, StoreError> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// The committed state, or `None` for a brand-new environment.
    pub fn state(&self) -> Result<Option<DbState>, StoreError> {
        self.snapshot()?.state()
    }

    /// The memory map's size now.
    pub fn map_size(&self) -> usize {
        self.map_size.load(Ordering::Acquire)
    }

    /// Grows the memory map, if needed, so that `needed` more bytes (and a quarter
    /// granule of slack) can be written. Only the writer calls it, holding no transaction: it waits
    /// for this process's readers to finish, and holds new ones back while it remaps.
    pub fn ensure_room(&self, needed: usize) -> Result<(), StoreError> {
        let needed = needed.saturating_add(round_up_to_granule(1) / 4);
        let file_len = self.tables()?.env.real_disk_size()?;
        let Some(new_size) = grown_map_size(self.map_size(), file_len, needed) else {
            return Ok(());
        };
        self.resize_map(new_size)
    }

    /// Doubles the memory map (after a write found it full anyway).
    pub fn grow_map(&self) -> Result<(), StoreError> {
        self.resize_map(round_up_to_granule(self.map_size().saturating_mul(2)))
    }

    fn resize_map(&self, new_size: usize) -> Result<(), StoreError> {
        let _gate = self
            .map_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let tables = self.tables()?;
        let old_size = self.map_size();
        // SAFETY: no transaction of this process is open: readers are held off by the
        // gate, and the only writer is the caller, between transactions.
        unsafe { tables.env.resize(new_size)? };
        self.map_size.store(new_size, Ordering::Release);
        log::info!(
            "LMDB map grown from {} KB to {} KB",
            old_size >> 10,
            new_size >> 10
        );
        Ok(())
    }

    /// Each table's name, the bytes of its pages, and its entries.
    pub fn table_sizes(&self) -> Result<Vec<(&'static str, u64, u64)>, StoreError> {
        let snapshot = self.snapshot()?;
        let mut sizes = Vec::new();
        for (_, name, db) in snapshot.tables.named() {
            let stat = db.stat(&snapshot.txn)?;
            sizes.push((name, stat_bytes(&stat), stat.entries as u64));
        }
        Ok(sizes)
    }

    /// Bytes the index occupies on disk.
    pub fn disk_size(&self) -> Result<u64, StoreError> {
        let _gate = self.map_gate.read().unwrap_or_else(PoisonError::into_inner);
        Ok(self.tables()?.env.real_disk_size()?)
    }

    /// Bytes of the data file that no table uses: pages LMDB freed (it copies every
    /// page a write changes) and will reuse, but which only a compaction gives back.
    pub fn free_bytes(&self) -> Result<u64, StoreError> {
        let snapshot = self.snapshot()?;
        let mut used = 0u64;
        for (_, _, db) in snapshot.tables.named() {
            used += stat_bytes(&db.stat(&snapshot.txn)?);
        }
        used += stat_bytes(&snapshot.tables.meta.stat(&snapshot.txn)?);
        // The two meta pages and the main database's page (the tables' names).
        used += 3 * u64::from(snapshot.tables.meta.stat(&snapshot.txn)?.page_size);
        Ok(snapshot.tables.env.real_disk_size()?.saturating_sub(used))
    }

    /// Rebuilds the data file: every table copied in key order into a fresh environment
    /// ([`repack`]), so that the copy has neither the free pages nor the half-empty pages
    /// that random-key writes leave, and continues on the copy. Only the writer calls it,
    /// holding no transaction and no [`WriterView`]. The copy is written beside the
    /// file, synced, then renamed over it, so a crash at any instant leaves either file
    /// whole (an unfinished copy is removed at the next start). Readers go on during the
    /// copy and wait only for the swap. Returns the sizes before and after. Fails,
    /// leaving the index as it was, if the disk has no room for the copy.
    pub fn compact(&self) -> Result<(u64, u64), StoreError> {
        let dir = Path::new(&self.dir);
        let copy_dir = dir.join(COMPACT_DIR);
        let before;
        {
            let tables = self.tables()?;
            before = tables.env.real_disk_size()?;
            remove_unfinished_compaction(dir);
            let copied = self.repack_into(&tables, &copy_dir, before);
            if let Err(e) = copied {
                let _ = std::fs::remove_dir_all(&copy_dir);
                return Err(e);
            }
        }
        // The copy is read in a transaction of its own, beside the readers (the writer,
        // the caller, writes nothing meanwhile); only the swap holds them off. The old
        // environment is closed (no snapshot holds it: the gate is ours) before the same
        // directory is opened again.
        let _gate = self
            .map_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(StoreError::Closed)?;
        let closing = old.env.clone().prepare_for_closing();
        drop(old);
        if !closing.wait_timeout(std::time::Duration::from_secs(10)) {
            return Err(StoreError::Corrupt(
                "the index was still open elsewhere when it was to be compacted".into(),
            ));
        }
        let io = |source| StoreError::Compact {
            dir: self.dir.clone(),
            source,
        };
        std::fs::rename(copy_dir.join("data.mdb"), dir.join("data.mdb")).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        // Only the copy's lock file is left there.
        let _ = std::fs::remove_dir_all(&copy_dir);
        let after = std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len());
        let map_size = initial_map_size(after).max(self.map_size());
        let tables = open_tables(dir, map_size)?;
        self.map_size.store(map_size, Ordering::Release);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(tables));
        Ok((before, after))
    }
}

impl Store {
    /// Writes the rebuilt environment into `copy_dir` and syncs it; the copy is closed
    /// when this returns.
    fn repack_into(&self, tables: &Tables, copy_dir: &Path, before: u64) -> Result<(), StoreError> {
        std::fs::create_dir_all(copy_dir).map_err(|source| StoreError::CreateDir {
            path: copy_dir.display().to_string(),
            source,
        })?;
        // The rebuilt file is never larger than the pages in use now.
        let copy = open_tables(copy_dir, initial_map_size(before))?;
        let rtxn = tables.env.read_txn()?;
        repack::copy_tables(tables, &rtxn, &copy, repack::COMMIT_EVERY)?;
        drop(rtxn);
        copy.env.force_sync()?;
        let closing = copy.env.clone().prepare_for_closing();
        drop(copy);
        if !closing.wait_timeout(std::time::Duration::from_secs(10)) {
            return Err(StoreError::Corrupt(
                "the rebuilt index was still open when it was to replace the index".into(),
            ));
        }
        Ok(())
    }
}

impl Tables {
    /// Every table but meta: its name in dumps, its name in LMDB, and its handle.
    fn named(&self) -> [(&'static str, &'static str, &Db); 10] {
        [
            ("header", "headers", &self.headers),
            ("tx_count", "tx_counts", &self.tx_counts),
            ("tx_height", "tx_heights", &self.tx_heights),
            ("txid", "txids", &self.txids),
            ("txid_index", "txid_index", &self.txid_index),
            ("history", "histories", &self.history),
            ("utxo", "utxo", &self.utxo),
            ("outpoint", "outpoints", &self.outpoints),
            ("undo", "undo", &self.undo),
            ("spend", "spends", &self.spends),
        ]
    }
}

/// The rebuilt environment, in a directory beside `data.mdb` until its data file
/// replaces it.
const COMPACT_DIR: &str = "compacting";
/// Where LMDB's compacting copy went, before the rebuild replaced it.
const OLD_COMPACT_FILE: &str = "data.mdb.compacting";

/// A copy left by a compaction that did not finish (the server stopped during it).
fn remove_unfinished_compaction(dir: &Path) {
    let copy = dir.join(COMPACT_DIR);
    if copy.exists() {
        log::warn!(
            "removing an unfinished compaction of the index ({})",
            copy.display()
        );
        let _ = std::fs::remove_dir_all(copy);
    }
    let _ = std::fs::remove_file(dir.join(OLD_COMPACT_FILE));
}

fn stat_bytes(stat: &heed::DatabaseStat) -> u64 {
    (stat.branch_pages + stat.leaf_pages + stat.overflow_pages) as u64 * u64::from(stat.page_size)
}

/// Opens the data file in `dir` with a map of `map_size` bytes, creating the tables it
/// lacks.
fn open_tables(dir: &Path, map_size: usize) -> Result<Tables, StoreError> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(map_size).max_dbs(16).max_readers(4096);
    // SAFETY: NO_READ_AHEAD is not one of the flags that weaken LMDB's guarantees.
    // Reads of a big index are random: the kernel's read-ahead of 32 pages around
    // each one fills the page cache with pages nobody asked for, which under a
    // memory limit evicts the ones that are needed.
    unsafe { options.flags(EnvFlags::NO_READ_AHEAD) };
    // SAFETY: the data file is only modified through LMDB while it is mapped; the
    // index directory belongs to this server alone.
    let env = unsafe { options.open(dir)? };
    let wtxn = env.write_txn()?;
    let dbs = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            let headers = opener.create_database::<Bytes, Bytes>(wtxn, Some("headers"))?;
            let tx_counts = opener.create_database::<Bytes, Bytes>(wtxn, Some("tx_counts"))?;
            let tx_heights = opener.create_database::<Bytes, Bytes>(wtxn, Some("tx_heights"))?;
            let txids = opener.create_database::<Bytes, Bytes>(wtxn, Some("txids"))?;
            let txid_index = opener.create_database::<Bytes, Bytes>(wtxn, Some("txid_index"))?;
            let history = opener.create_database::<Bytes, Bytes>(wtxn, Some("histories"))?;
            let utxo = opener.create_database::<Bytes, Bytes>(wtxn, Some("utxo"))?;
            let outpoints = opener.create_database::<Bytes, Bytes>(wtxn, Some("outpoints"))?;
            let undo = opener.create_database::<Bytes, Bytes>(wtxn, Some("undo"))?;
            let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
            let spends = opener.create_database::<Bytes, Bytes>(wtxn, Some("spends"))?;
            let spare = opener.create_database::<Bytes, Bytes>(wtxn, Some("spare"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((
                headers, tx_counts, tx_heights, txids, txid_index, history, utxo, outpoints, undo,
                meta, spends, spare,
            )))
        })?
        .unwrap_commit();
    // In the order created above.
    Ok(Tables {
        env,
        headers: dbs.0,
        tx_counts: dbs.1,
        tx_heights: dbs.2,
        txids: dbs.3,
        txid_index: dbs.4,
        history: dbs.5,
        utxo: dbs.6,
        outpoints: dbs.7,
        undo: dbs.8,
        meta: dbs.9,
        spends: dbs.10,
        spare: dbs.11,
    })
}

fn read_state(meta: &Db, rtxn: &RoTxn) -> Result<Option<DbState>, StoreError> {
    match meta.get(rtxn, STATE_KEY)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("unreadable state record: {e}"))),
    }
}

pub fn header_hash(header: &[u8]) -> BlockHash {
    BlockHash::from_raw_hash(sha256d::Hash::hash(header))
}

pub(crate) fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn genesis() -> BlockHash {
        BlockHash::from_str("530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9")
            .unwrap()
    }

    #[test]
    fn the_map_grows_ahead_of_writes_at_least_twofold() {
        const MB: usize = 1 << 20;
        // Room enough: no growth.
        assert_eq!(grown_map_size(64 * MB, 10 * MB as u64, 20 * MB), None);
        // Not enough: double, in whole granules.
        assert_eq!(
            grown_map_size(64 * MB, 40 * MB as u64, 30 * MB),
            Some(128 * MB)
        );
        // A big write: the file plus twice the write, rounded up.
        assert_eq!(
            grown_map_size(64 * MB, 40 * MB as u64, 200 * MB),
            Some(448 * MB)
        );
        assert_eq!(round_up_to_granule(1), MAP_GRANULE);
    }

    #[test]
    fn out_of_space_is_told_apart() {
        let full = StoreError::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull));
        assert!(full.is_out_of_space() && full.is_map_full());
        let disk = StoreError::Lmdb(heed::Error::Mdb(heed::MdbError::Other(28)));
        assert!(disk.is_out_of_space() && !disk.is_map_full());
        let io = StoreError::Lmdb(heed::Error::Io(std::io::Error::from_raw_os_error(27)));
        assert!(io.is_out_of_space());
        assert!(!StoreError::Corrupt("x".into()).is_out_of_space());
    }

    fn dump(store: &Store) -> Vec<u8> {
        let mut out = Vec::new();
        store.snapshot().unwrap().dump(&mut out).unwrap();
        out
    }

    #[test]
    fn compaction_gives_free_pages_back_and_keeps_every_record() {
        use crate::hashes::{HashX, TxNum};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        let key = |n: u64| {
            let mut hashx = [0u8; crate::hashes::HASHX_LEN];
            hashx[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            crate::schema::utxo_key(&HashX(hashx), TxNum(n), 0)
        };
        // Many rows, then most of them deleted: LMDB keeps the freed pages in the file.
        let mut rows: Vec<_> = (0..40_000u64).map(|n| (key(n), n)).collect();
        rows.sort_unstable();
        store.ensure_room(32 << 20).unwrap();
        let tables = store.tables().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        wtxn.put_utxos(&rows).unwrap();
        wtxn.commit().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        for (key, _) in rows.iter().filter(|(_, n)| n % 10 != 0) {
            wtxn.delete_utxo(key).unwrap();
        }
        wtxn.commit().unwrap();
        drop(tables);
        let records = dump(&store);
        let free = store.free_bytes().unwrap();
        let size = store.disk_size().unwrap();
        assert!(free > size / 2, "free {free} of {size}");

        // A copy left by a compaction cut short is removed before the next.
        leave_partial_copy(dir.path());
        let (before, after) = store.compact().unwrap();
        assert!(!dir.path().join(COMPACT_DIR).exists());
        assert_eq!(before, size);
        assert!(after < size / 2, "{after} of {size}");
        assert_eq!(store.disk_size().unwrap(), after);
        assert!(store.free_bytes().unwrap() < after / 4);
        assert_eq!(dump(&store), records, "every record kept");
        // The compacted index is written to, and opens again.
        let tables = store.tables().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        wtxn.put_utxos(&[(key(1), 1)]).unwrap();
        wtxn.commit().unwrap();
        drop(tables);
        let records = dump(&store);
        drop(store);
        leave_partial_copy(dir.path());
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        assert!(!dir.path().join(COMPACT_DIR).exists());
        assert!(!dir.path().join(OLD_COMPACT_FILE).exists());
        assert_eq!(dump(&store), records);
    }

    /// What a server stopped during a compaction leaves: a rebuilt environment half
    /// written (or, from older versions, LMDB's compacting copy).
    fn leave_partial_copy(dir: &Path) {
        std::fs::create_dir_all(dir.join(COMPACT_DIR)).unwrap();
        std::fs::write(dir.join(COMPACT_DIR).join("data.mdb"), b"partial").unwrap();
        std::fs::write(dir.join(OLD_COMPACT_FILE), b"partial").unwrap();
    }

    #[test]
    fn the_rebuild_fills_the_pages_that_random_inserts_left_half_empty() {
        use crate::hashes::{HASHX_LEN, HashX, TxNum};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        let scramble = |n: u64| n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        let hashx = |n: u64| {
            let mut hashx = [0u8; HASHX_LEN];
            hashx[..8].copy_from_slice(&scramble(n).to_be_bytes());
            HashX(hashx)
        };
        store.ensure_room(64 << 20).unwrap();
        let tables = store.tables().unwrap();
        // As a sync's flushes do: each batch sorted, but its keys land all over the
        // tables already written; scripts used again get further history entries.
        for batch in 0..40u64 {
            let mut wtxn = tables.write_txn().unwrap();
            let mut utxos: Vec<_> = (0..1_000)
                .map(|i| {
                    let n = batch * 1_000 + i;
                    (crate::schema::utxo_key(&hashx(n), TxNum(n), 0), n)
                })
                .collect();
            utxos.sort_unstable();
            wtxn.put_utxos(&utxos).unwrap();
            let mut history: Vec<_> = (0..1_500)
                .map(|i| {
                    (
                        hashx((batch * 1_500 + i) % 25_000),
                        TxNum(batch * 1_500 + i),
                    )
                })
                .collect();
            history.sort_unstable();
            wtxn.put_history(&history).unwrap();
            let mut spends: Vec<_> = (0..1_000)
                .map(|i| (TxNum(scramble(batch * 1_000 + i) >> 24), 1, TxNum(batch)))
                .collect();
            spends.sort_unstable();
            wtxn.put_spends(&spends).unwrap();
            wtxn.commit().unwrap();
        }
        let records = dump(&store);
        let lmdb_copy = dir.path().join("lmdb-copy.mdb");
        tables
            .env
            .copy_to_path(&lmdb_copy, heed::CompactionOption::Enabled)
            .unwrap();
        let lmdb_compacted = std::fs::metadata(&lmdb_copy).unwrap().len();
        drop(tables);

        // The half-empty pages are counted as slack, which the rebuild gives back.
        let slack = store.slack_bytes().unwrap();
        let (before, after) = store.compact().unwrap();
        assert_eq!(dump(&store), records, "every record identical");
        assert!(
            slack > 1 << 20,
            "slack {slack}: the random-key tables' half-empty pages"
        );
        assert!(
            store.slack_bytes().unwrap() * 20 < slack,
            "slack left after the rebuild"
        );
        assert!(
            after * 10 < lmdb_compacted * 8,
            "rebuilt {after} bytes, LMDB's compacting copy {lmdb_compacted}, before {before}"
        );
        // Written to afterwards, and opened again, it holds the same.
        let tables = store.tables().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        wtxn.put_history(&[(hashx(1), TxNum(1 << 30))]).unwrap();
        wtxn.commit().unwrap();
        drop(tables);
        let records = dump(&store);
        drop(store);
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        assert_eq!(dump(&store), records);
    }

    #[test]
    fn the_rebuild_commits_as_it_goes_and_keeps_every_record() {
        // A tiny commit interval: the copy spans many transactions of the new file.
        use crate::hashes::{HASHX_LEN, HashX, TxNum};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        let tables = store.tables().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        // A script each: one history row each.
        let rows: Vec<_> = (0..3_000u64)
            .map(|n| {
                let mut hashx = [0u8; HASHX_LEN];
                hashx[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
                (HashX(hashx), TxNum(n))
            })
            .collect();
        let mut rows = rows;
        rows.sort_unstable();
        wtxn.put_history(&rows).unwrap();
        wtxn.put_undo(Height::new(5), &[7u8; 10_000]).unwrap();
        wtxn.commit().unwrap();
        let copy_dir = dir.path().join("copy");
        std::fs::create_dir_all(&copy_dir).unwrap();
        let copy = open_tables(&copy_dir, 64 << 20).unwrap();
        let rtxn = tables.env.read_txn().unwrap();
        let records = repack::copy_tables(&tables, &rtxn, &copy, 1_000).unwrap();
        // The state, 3,000 history rows, one undo record.
        assert_eq!(records, 3_002);
        drop(rtxn);
        let every = |t: &Tables| {
            let rtxn = t.env.read_txn().unwrap();
            let mut out = Vec::new();
            for (name, _, db) in t.named().into_iter().chain([("meta", "meta", &t.meta)]) {
                for item in db.iter(&rtxn).unwrap() {
                    let (key, value) = item.unwrap();
                    out.push((name, key.to_vec(), value.to_vec()));
                }
            }
            out
        };
        let copied = every(&copy);
        assert_eq!(copied.len(), 3_002);
        assert_eq!(copied, every(&tables));
    }

    #[test]
    fn the_state_is_stored_as_it_always_was() {
        let state = DbState {
            schema_version: 3,
            coin: "Litecoin".into(),
            net: "regtest".into(),
            genesis: "00ff".into(),
            height: Some(Height::new(812_345)),
            tip: Some("abcd".into()),
            tx_count: 9,
            runs: Vec::new(),
            merge: None,
        };
        let json = r#"{"schema_version":3,"coin":"Litecoin","net":"regtest","genesis":"00ff","height":812345,"tip":"abcd","tx_count":9}"#;
        assert_eq!(serde_json::to_string(&state).unwrap(), json);
        assert_eq!(serde_json::from_str::<DbState>(json).unwrap(), state);
        let merging = DbState {
            runs: vec![5, 9],
            merge: Some(MergeProgress {
                stage: MergeStage::Spends,
                through: "00ff".into(),
            }),
            ..state
        };
        let json = r#"{"schema_version":3,"coin":"Litecoin","net":"regtest","genesis":"00ff","height":812345,"tip":"abcd","tx_count":9,"runs":[5,9],"merge":{"stage":"spends","through":"00ff"}}"#;
        assert_eq!(serde_json::to_string(&merging).unwrap(), json);
        assert_eq!(serde_json::from_str::<DbState>(json).unwrap(), merging);
        let empty = r#"{"schema_version":3,"coin":"c","net":"n","genesis":"g","height":null,"tip":null,"tx_count":0}"#;
        let decoded: DbState = serde_json::from_str(empty).unwrap();
        assert_eq!(decoded.height, None);
        assert_eq!(serde_json::to_string(&decoded).unwrap(), empty);
    }

    #[test]
    fn an_index_for_another_chain_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap());
        let err = Store::open(dir.path(), "Litecoin", "mainnet", &genesis())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::WrongChain { .. }), "{err}");
        assert!(err.to_string().contains("Litecoin regtest"), "{err}");
    }

    #[test]
    fn an_index_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "Litecoin", "regtest", &genesis()).unwrap();
        let mut state = store.state().unwrap().unwrap();
        state.schema_version = SCHEMA_VERSION + 1;
        let tables = store.tables().unwrap();
        let mut wtxn = tables.write_txn().unwrap();
        wtxn.put_state(&state).unwrap();
        wtxn.commit().unwrap();
        drop(tables);
        drop(store);
        let err = Store::open(dir.path(), "Litecoin", "regtest", &genesis())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::WrongSchema { .. }), "{err}");
    }
}
