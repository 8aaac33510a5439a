//! Reading the index while the runs of its catch-up are listed (written, not yet all
//! merged into their tables), as the server does when it serves during the merge:
//!
//! - the history and the spends come from the runs until their merge stage is done
//!   (the runs hold all of them until the merge's last commit);
//! - a script's UTXOs come from its history and the outpoints until the UTXO table is
//!   rebuilt (the outpoints are whole all along: the catch-up writes them directly);
//! - a repacked table is read from the spare while it is copied back into the table.
//!
//! Every choice follows the state that the snapshot's own transaction reads, so each
//! answer is computed against one committed state, like any other.

use super::run_lookup::RunLookup;
use super::runs::RunKind;
use super::{DbState, MergeStage, Store, StoreError, Tables, read_state};
use crate::hashes::{HashX, TxNum};
use crate::schema::{self, HISTORY_KEY_LEN, SPENDS_RECORD_LEN};
use heed::{RoTxn, WithoutTls};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The runs of one list of ids, opened once and shared by the snapshots that read them.
pub(super) struct RunSet {
    ids: Vec<u64>,
    history: RunLookup<HISTORY_KEY_LEN>,
    spends: RunLookup<SPENDS_RECORD_LEN>,
}

/// What a snapshot reads from the runs rather than from the tables.
pub(super) struct MergeReads {
    runs: Arc<RunSet>,
    history_in_runs: bool,
    spends_in_runs: bool,
}

impl MergeReads {
    /// The first `limit` (at most) tx_nums of the history of `hashx`, in chain order,
    /// when the runs hold it; `None` once the history is merged.
    pub(super) fn history(
        &self,
        hashx: &HashX,
        limit: usize,
    ) -> Option<Result<Vec<TxNum>, StoreError>> {
        if !self.history_in_runs {
            return None;
        }
        let mut out = Vec::new();
        let mut malformed = None;
        let read = self.runs.history.for_each(&hashx.0, |record| {
            match schema::decode_history_key(record) {
                Ok((_, tx_num)) => out.push(tx_num),
                Err(e) => malformed = Some(e),
            }
            malformed.is_none() && out.len() < limit
        });
        Some(match (read, malformed) {
            (Err(e), _) => Err(e.into()),
            (Ok(()), Some(e)) => Err(e.into()),
            (Ok(()), None) => Ok(out),
        })
    }

    /// Who spent the output whose outpoints key is `key`, when the runs hold the
    /// spends; `None` once they are merged.
    pub(super) fn spender(&self, key: &[u8]) -> Option<Result<Option<TxNum>, StoreError>> {
        if !self.spends_in_runs {
            return None;
        }
        let mut spender = None;
        let read = self.runs.spends.for_each(key, |record| {
            spender = Some(schema::decode_spends_record(record).2);
            false
        });
        Some(read.map(|()| spender).map_err(StoreError::from))
    }
}

/// The store's side: whether runs may be listed (so that a snapshot reads the state
/// only then), and the runs last opened.
#[derive(Default)]
pub(super) struct RunReads {
    listed: AtomicBool,
    opened: Mutex<Option<Arc<RunSet>>>,
}

impl Store {
    /// Said by the writer before the commit that lists the first run, and after the
    /// merge's last commit (which lists none): until then snapshots look for runs.
    pub fn note_runs_listed(&self, listed: bool) {
        self.run_reads.listed.store(listed, Ordering::SeqCst);
        if !listed {
            // Closes the merged runs (their files are removed) once no snapshot reads them.
            *self
                .run_reads
                .opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// The tables a snapshot in `txn` reads, and what it reads from the runs.
    pub(super) fn merge_reads(
        &self,
        tables: Arc<Tables>,
        txn: &RoTxn<WithoutTls>,
    ) -> Result<(Arc<Tables>, Option<MergeReads>), StoreError> {
        if !self.run_reads.listed.load(Ordering::SeqCst) {
            return Ok((tables, None));
        }
        let Some(state) = read_state(&tables.meta, txn)? else {
            return Ok((tables, None));
        };
        if state.runs.is_empty() {
            return Ok((tables, None));
        }
        let stage = state.merge.as_ref().map(|progress| progress.stage);
        let before = |done: MergeStage| stage.is_none_or(|stage| stage <= done);
        let runs = self.open_runs(&state)?;
        let tables = match stage {
            // The table is emptied and refilled from the spare, which holds all of it.
            Some(MergeStage::UnpackTxids) => Arc::new(Tables {
                txid_index: tables.spare,
                ..(*tables).clone()
            }),
            Some(MergeStage::UnpackOutpoints) => Arc::new(Tables {
                outpoints: tables.spare,
                ..(*tables).clone()
            }),
            _ => tables,
        };
        let reads = MergeReads {
            runs,
            history_in_runs: before(MergeStage::History),
            spends_in_runs: before(MergeStage::Spends),
        };
        Ok((tables, Some(reads)))
    }

    fn open_runs(&self, state: &DbState) -> Result<Arc<RunSet>, StoreError> {
        let mut opened = self
            .run_reads
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(runs) = opened.as_ref()
            && runs.ids == state.runs
        {
            return Ok(Arc::clone(runs));
        }
        let dir = Path::new(self.dir());
        let runs = Arc::new(RunSet {
            ids: state.runs.clone(),
            history: RunLookup::open(dir, RunKind::History, &state.runs)?,
            spends: RunLookup::open(dir, RunKind::Spends, &state.runs)?,
        });
        *opened = Some(Arc::clone(&runs));
        Ok(runs)
    }
}
