//! The LMDB index: its schema, its identity check, and consistent reads.
//!
//! One environment, named databases, one writer (the block processor, through
//! [`crate::index`]). Readers take a [`Snapshot`]: an LMDB read transaction, so every
//! answer is computed against one committed state even while blocks are applied.
//! The tables and their keys and values are described, encoded and decoded in
//! [`crate::schema`].

use crate::hashes::{HashX, Height, TxNum};
use crate::schema::{self, Malformed};
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Txid};
use heed::types::Bytes;
use heed::{
    CommitOrAbort, Database, DatabaseFlags, Env, EnvFlags, EnvOpenOptions, RoTxn, WithoutTls,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// Bumped whenever the layout ([`crate::schema`]) changes; an index of another version
/// is refused. 2: outpoints keyed by tx_num ‖ vout (appended in chain order). 3: the
/// spends table ([`crate::spends`]).
pub const SCHEMA_VERSION: u32 = 3;

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

pub type Db = Database<'static, Bytes, Bytes>;

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
}

/// The LMDB environment and its databases. Cheap to share behind an `Arc`.
pub struct Store {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) headers: Db,
    pub(crate) tx_counts: Db,
    pub(crate) tx_heights: Db,
    pub(crate) txids: Db,
    pub(crate) txid_index: Db,
    pub(crate) history: Db,
    pub(crate) utxo: Db,
    pub(crate) outpoints: Db,
    pub(crate) undo: Db,
    pub(crate) meta: Db,
    /// Who spent each confirmed output ([`crate::spends`]).
    pub(crate) spends: Db,
    dir: String,
    /// Readers hold it shared; growing the map takes it exclusively, since LMDB must not
    /// be remapped under an open transaction of this process.
    map_gate: RwLock<()>,
    map_size: AtomicUsize,
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
        let file_len = std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len());
        let map_size = initial_map_size(file_len);
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
                let tx_heights =
                    opener.create_database::<Bytes, Bytes>(wtxn, Some("tx_heights"))?;
                let txids = opener.create_database::<Bytes, Bytes>(wtxn, Some("txids"))?;
                let txid_index =
                    opener.create_database::<Bytes, Bytes>(wtxn, Some("txid_index"))?;
                let history = opener
                    .database_options()
                    .types::<Bytes, Bytes>()
                    .name("history")
                    .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
                    .create(wtxn)?;
                let utxo = opener.create_database::<Bytes, Bytes>(wtxn, Some("utxo"))?;
                let outpoints = opener.create_database::<Bytes, Bytes>(wtxn, Some("outpoints"))?;
                let undo = opener.create_database::<Bytes, Bytes>(wtxn, Some("undo"))?;
                let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
                let spends = opener.create_database::<Bytes, Bytes>(wtxn, Some("spends"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((
                    headers, tx_counts, tx_heights, txids, txid_index, history, utxo, outpoints,
                    undo, meta, spends,
                )))
            })?
            .unwrap_commit();
        let (
            headers,
            tx_counts,
            tx_heights,
            txids,
            txid_index,
            history,
            utxo,
            outpoints,
            undo,
            meta,
            spends,
        ) = dbs;
        let store = Store {
            env,
            headers,
            tx_counts,
            tx_heights,
            txids,
            txid_index,
            history,
            utxo,
            outpoints,
            undo,
            meta,
            spends,
            dir: dir.display().to_string(),
            map_gate: RwLock::new(()),
            map_size: AtomicUsize::new(map_size),
        };
        store.check_identity(coin, net, genesis)?;
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
                };
                let mut wtxn = self.env.write_txn()?;
                self.put_state(&mut wtxn, &state)?;
                wtxn.commit()?;
                Ok(())
            }
        }
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The committed state, or `None` for a brand-new environment.
    pub fn state(&self) -> Result<Option<DbState>, StoreError> {
        let _gate = self.map_gate.read().unwrap_or_else(PoisonError::into_inner);
        let rtxn = self.env.read_txn()?;
        read_state(&self.meta, &rtxn)
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
        let file_len = self.env.real_disk_size()?;
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
        let old_size = self.map_size();
        // SAFETY: no transaction of this process is open: readers are held off by the
        // gate, and the only writer is the caller, between transactions.
        unsafe { self.env.resize(new_size)? };
        self.map_size.store(new_size, Ordering::Release);
        log::info!(
            "LMDB map grown from {} KB to {} KB",
            old_size >> 10,
            new_size >> 10
        );
        Ok(())
    }

    pub(crate) fn put_state(
        &self,
        wtxn: &mut heed::RwTxn,
        state: &DbState,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.meta.put(wtxn, STATE_KEY, &json)?;
        Ok(())
    }

    /// A consistent read-only view of the index.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        let gate = self.map_gate.read().unwrap_or_else(PoisonError::into_inner);
        Ok(Snapshot {
            store: self,
            txn: self.env.read_txn()?,
            _gate: gate,
        })
    }

    /// Bytes the index occupies on disk.
    /// Every table but meta: its name in dumps, its name in LMDB, and its handle.
    fn tables(&self) -> [(&'static str, &'static str, &Db); 10] {
        [
            ("header", "headers", &self.headers),
            ("tx_count", "tx_counts", &self.tx_counts),
            ("tx_height", "tx_heights", &self.tx_heights),
            ("txid", "txids", &self.txids),
            ("txid_index", "txid_index", &self.txid_index),
            ("history", "history", &self.history),
            ("utxo", "utxo", &self.utxo),
            ("outpoint", "outpoints", &self.outpoints),
            ("undo", "undo", &self.undo),
            ("spend", "spends", &self.spends),
        ]
    }

    /// Each table's name, the bytes of its pages, and its entries.
    pub fn table_sizes(&self) -> Result<Vec<(&'static str, u64, u64)>, StoreError> {
        let _gate = self.map_gate.read().unwrap_or_else(PoisonError::into_inner);
        let rtxn = self.env.read_txn()?;
        let mut sizes = Vec::new();
        for (_, name, db) in self.tables() {
            let stat = db.stat(&rtxn)?;
            let pages = stat.branch_pages + stat.leaf_pages + stat.overflow_pages;
            sizes.push((
                name,
                pages as u64 * u64::from(stat.page_size),
                stat.entries as u64,
            ));
        }
        Ok(sizes)
    }

    pub fn disk_size(&self) -> Result<u64, StoreError> {
        Ok(self.env.real_disk_size()?)
    }
}

fn read_state(meta: &Db, rtxn: &RoTxn) -> Result<Option<DbState>, StoreError> {
    match meta.get(rtxn, STATE_KEY)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("unreadable state record: {e}"))),
    }
}

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

/// The history of a script was longer than the caller's limit.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryTooLong;

/// A read transaction over the index: every method sees the same committed state.
pub struct Snapshot<'s> {
    store: &'s Store,
    txn: RoTxn<'s, WithoutTls>,
    /// Declared after `txn`, so released after it: the map is not resized under it.
    _gate: RwLockReadGuard<'s, ()>,
}

impl Snapshot<'_> {
    /// The store and the read transaction, for the modules that read their own tables.
    pub(crate) fn parts(&self) -> (&Store, &RoTxn<'_, WithoutTls>) {
        (self.store, &self.txn)
    }

    pub fn state(&self) -> Result<Option<DbState>, StoreError> {
        read_state(&self.store.meta, &self.txn)
    }

    /// Height and hash of the last indexed block.
    pub fn tip(&self) -> Result<Option<(Height, BlockHash)>, StoreError> {
        match self.store.headers.last(&self.txn)? {
            None => Ok(None),
            Some((key, header)) => Ok(Some((schema::decode_height(key)?, header_hash(header)))),
        }
    }

    pub fn header(&self, height: Height) -> Result<Option<[u8; 80]>, StoreError> {
        match self
            .store
            .headers
            .get(&self.txn, &schema::height_key(height))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(schema::decode_header(bytes)?)),
        }
    }

    /// Cumulative number of transactions after the block at `height`.
    pub fn tx_count_after(&self, height: Height) -> Result<Option<u64>, StoreError> {
        match self
            .store
            .tx_counts
            .get(&self.txn, &schema::height_key(height))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(schema::decode_count(bytes)?)),
        }
    }

    pub fn txid(&self, tx_num: TxNum) -> Result<Txid, StoreError> {
        let bytes = self
            .store
            .txids
            .get(&self.txn, &schema::tx_num_key(tx_num))?
            .ok_or_else(|| corrupt(format!("no txid for tx_num {}", tx_num.0)))?;
        Ok(schema::decode_txid(bytes)?)
    }

    /// Where a confirmed transaction is: its tx_num and the height of its block.
    pub fn tx_position(&self, txid: &Txid) -> Result<Option<(TxNum, Height)>, StoreError> {
        match self.tx_nums_of(txid)?.first() {
            Some(tx_num) => Ok(Some((*tx_num, self.height_of(*tx_num)?.0))),
            None => Ok(None),
        }
    }

    /// The tx_nums of the confirmed transactions with this txid, in chain order (more
    /// than one only for Bitcoin's two duplicated coinbases).
    fn tx_nums_of(&self, txid: &Txid) -> Result<Vec<TxNum>, StoreError> {
        tx_nums_of(self.store, &self.txn, txid, TxidIs::Unknown)
    }

    /// The height of the block holding `tx_num`: the first block whose cumulative count
    /// exceeds it.
    pub fn height_of(&self, tx_num: TxNum) -> Result<(Height, u64), StoreError> {
        let (count, height) = self
            .store
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
        let Some(iter) = self.store.history.get_duplicates(&self.txn, &hashx.0)? else {
            return Ok(Some(0));
        };
        let mut len = 0;
        for item in iter {
            item?;
            len += 1;
            if len > at_most {
                return Ok(None);
            }
        }
        Ok(Some(len))
    }

    /// The tx_nums of the history of `hashx`, bounded by `limit` as in [`Self::history`].
    pub fn history_tx_nums(
        &self,
        hashx: &HashX,
        limit: usize,
    ) -> Result<Result<Vec<TxNum>, HistoryTooLong>, StoreError> {
        let mut out = Vec::new();
        if let Some(iter) = self.store.history.get_duplicates(&self.txn, &hashx.0)? {
            for item in iter {
                let (_, value) = item?;
                out.push(schema::decode_tx_num(value)?);
                if out.len() >= limit {
                    return Ok(Err(HistoryTooLong));
                }
            }
        }
        Ok(Ok(out))
    }

    /// The confirmed unspent output `txid:vout`, if there is one: its script's hashX,
    /// the tx_num of `txid`, and its value.
    pub fn utxo_of(
        &self,
        txid: &Txid,
        vout: u32,
    ) -> Result<Option<(HashX, TxNum, u64)>, StoreError> {
        unspent_output(self.store, &self.txn, txid, vout, TxidIs::Unknown)
    }

    /// Confirmed unspent outputs of `hashx` in chain order (tx_num, then vout).
    pub fn utxos(&self, hashx: &HashX) -> Result<Vec<Utxo>, StoreError> {
        let mut heights = HeightCursor::default();
        let mut out = Vec::new();
        for item in self.store.utxo.prefix_iter(&self.txn, &hashx.0)? {
            let (key, value) = item?;
            let (tx_num, vout) = schema::decode_utxo_key(key)?;
            let height = heights.height_of(self, tx_num)?;
            out.push(Utxo {
                tx_num,
                txid: self.txid(tx_num)?,
                vout,
                height,
                value: schema::decode_value(value)?,
            });
        }
        Ok(out)
    }

    /// Sum of the confirmed unspent outputs of `hashx`, and how many there are.
    pub fn balance(&self, hashx: &HashX) -> Result<(u64, usize), StoreError> {
        let mut total = 0u64;
        let mut count = 0usize;
        for item in self.store.utxo.prefix_iter(&self.txn, &hashx.0)? {
            let (_, value) = item?;
            total = total.saturating_add(schema::decode_value(value)?);
            count += 1;
        }
        Ok((total, count))
    }

    /// Writes every record of the index as text, in key order, one per line: two
    /// indexes hold the same data exactly when their dumps are equal.
    pub fn dump(&self, out: &mut dyn std::io::Write) -> Result<(), DumpError> {
        use crate::hashes::to_hex;
        if let Some(state) = self.state()? {
            writeln!(
                out,
                "state coin={} net={} genesis={} height={:?} tip={:?} tx_count={}",
                state.coin, state.net, state.genesis, state.height, state.tip, state.tx_count
            )?;
        }
        for (name, _, db) in self.store.tables() {
            for item in db.iter(&self.txn)? {
                let (key, value) = item.map_err(StoreError::from)?;
                writeln!(out, "{name} {} {}", to_hex(key), to_hex(value))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the dump: {0}")]
    Io(#[from] std::io::Error),
}

impl From<heed::Error> for DumpError {
    fn from(e: heed::Error) -> Self {
        DumpError::Store(StoreError::Lmdb(e))
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

pub fn header_hash(header: &[u8]) -> BlockHash {
    BlockHash::from_raw_hash(sha256d::Hash::hash(header))
}

/// What the caller knows of a txid it looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxidIs {
    /// It may be anywhere or nowhere (a client's or the mempool's).
    Unknown,
    /// A block the daemon accepted spends it and it is not pending: the index holds it.
    /// A single txid-index row with its prefix is then it, with no read of `txids`.
    Indexed,
}

/// The tx_nums whose txid is `txid`, from the txid index, in chain order.
pub(crate) fn tx_nums_of(
    store: &Store,
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
pub(crate) fn unspent_output(
    store: &Store,
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
        let mut wtxn = store.env.write_txn().unwrap();
        store.put_state(&mut wtxn, &state).unwrap();
        wtxn.commit().unwrap();
        drop(store);
        let err = Store::open(dir.path(), "Litecoin", "regtest", &genesis())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::WrongSchema { .. }), "{err}");
    }
}
