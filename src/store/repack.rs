//! The compaction's rebuild: every table copied, in key order, into a fresh environment.
//!
//! LMDB's own compacting copy drops the free pages but keeps each page as it was, and
//! pages filled by random-key inserts are split half-full and stay ~50-70% full (the
//! txid index, the history, the spends, the UTXOs by script). Appending keys in order
//! instead fills every page before starting the next one (LMDB splits an append at the
//! end), so the rebuilt file holds the same records in far fewer pages. The slack of
//! half-empty pages is counted here too: it decides the rebuild, and which tables the
//! merge of the runs repacks.

use super::{Db, Packed, Store, StoreError, Tables, stat_bytes};
use crate::hashes::TXNUM_LEN;
use crate::schema;
use heed::{PutFlags, RoTxn, RwTxn, WithoutTls};

/// The slack of a table whose keys and values have one size, and its size, in bytes.
pub(super) fn table_slack(
    db: &Db,
    rtxn: &RoTxn,
    key: usize,
    value: usize,
) -> Result<(u64, u64), StoreError> {
    let stat = db.stat(rtxn)?;
    // LMDB's node: an 8-byte header and the key and value, 2-byte aligned, and its 2-byte
    // pointer; 16 bytes of header a page.
    let node = (8 + key + value).next_multiple_of(2) + 2;
    let per_page = (stat.page_size as usize - 16) / node;
    let needed = stat.entries.div_ceil(per_page.max(1));
    let slack = (stat.leaf_pages as u64).saturating_sub(needed as u64) * u64::from(stat.page_size);
    Ok((slack, stat_bytes(&stat)))
}

impl Store {
    /// Bytes the leaf pages of the tables whose records have one size hold beyond what
    /// those records would take on full pages: what random-key inserts left half empty,
    /// which the rebuild after the initial sync gives back with the free pages.
    pub fn slack_bytes(&self) -> Result<u64, StoreError> {
        let snapshot = self.snapshot()?;
        let tables = &snapshot.tables;
        let mut slack = 0u64;
        for (db, key, value) in [
            (&tables.txids, TXNUM_LEN, 32),
            (&tables.txid_index, schema::TXID_INDEX_KEY_LEN, 0),
            (&tables.utxo, schema::UTXO_KEY_LEN, 8),
            (
                &tables.outpoints,
                schema::OUTPOINT_KEY_LEN,
                schema::OUTPOINT_VALUE_LEN,
            ),
            (&tables.spends, schema::OUTPOINT_KEY_LEN, TXNUM_LEN),
        ] {
            slack += table_slack(db, &snapshot.txn, key, value)?.0;
        }
        Ok(slack)
    }

    /// The slack of a table the merge may repack (as [`Store::slack_bytes`] counts it)
    /// and its size, in bytes.
    pub fn slack_of(&self, table: Packed) -> Result<(u64, u64), StoreError> {
        let snapshot = self.snapshot()?;
        let (key, value) = table.record();
        table_slack(table.db(&snapshot.tables), &snapshot.txn, key, value)
    }
}

/// Bytes of records (and their node headers) written between two commits of the new
/// environment: its dirty pages are held in memory until a commit writes and syncs them,
/// so this bounds the rebuild's memory (well under the 128 MB the memory budget gives an
/// LMDB write transaction), and each synced commit leaves the page cache clean pages the
/// kernel may drop under a memory limit.
pub(super) const COMMIT_EVERY: usize = 48 << 20;

/// LMDB's header of a leaf node and its pointer on the page.
const NODE_OVERHEAD: usize = 8 + 2;

/// Copies every record of `old` (read in the snapshot `rtxn`) into the empty tables of
/// `new`, committing every `commit_every` bytes. Returns the records copied.
pub(super) fn copy_tables(
    old: &Tables,
    rtxn: &RoTxn<WithoutTls>,
    new: &Tables,
    commit_every: usize,
) -> Result<u64, StoreError> {
    let mut copier = Copier {
        env: new,
        wtxn: Some(new.env.write_txn()?),
        pending: 0,
        commit_every,
        records: 0,
    };
    for ((_, _, from), (_, _, to)) in old.named().into_iter().zip(new.named()) {
        copier.copy(rtxn, from, to)?;
    }
    copier.copy(rtxn, &old.meta, &new.meta)?;
    copier.commit()?;
    Ok(copier.records)
}

struct Copier<'e> {
    env: &'e Tables,
    /// `None` only between a commit and the next transaction.
    wtxn: Option<RwTxn<'e>>,
    pending: usize,
    commit_every: usize,
    records: u64,
}

impl<'e> Copier<'e> {
    /// One table, in key order: each key appended after the last.
    fn copy(&mut self, rtxn: &RoTxn<WithoutTls>, from: &Db, to: &Db) -> Result<(), StoreError> {
        for item in from.iter(rtxn)? {
            let (key, value) = item?;
            let wtxn = self.txn()?;
            to.put_with_flags(wtxn, PutFlags::APPEND, key, value)?;
            self.records += 1;
            self.pending += key.len() + value.len() + NODE_OVERHEAD;
            if self.pending >= self.commit_every {
                self.commit()?;
            }
        }
        Ok(())
    }

    fn txn(&mut self) -> Result<&mut RwTxn<'e>, StoreError> {
        if self.wtxn.is_none() {
            self.wtxn = Some(self.env.env.write_txn()?);
        }
        // Just set if it was not.
        self.wtxn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("the rebuild lost its transaction".into()))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(wtxn) = self.wtxn.take() {
            wtxn.commit()?;
        }
        self.pending = 0;
        Ok(())
    }
}
