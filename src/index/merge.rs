//! Merging the runs of a catch-up into the index: the txid index and the outpoints
//! repacked first, then the history, the spends and the UTXO table rebuilt, each a
//! bounded slice per commit, resumable after a crash.

use super::flush::Phases;
use super::{IndexError, Indexer};
use crate::hashes::{HASHX_LEN, from_hex, to_hex};
use crate::schema;
use crate::store::runs::{self, RunKind};
use crate::store::{MergeProgress, MergeStage, Packed, Store, StoreError, WriteTxn, corrupt};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

impl Indexer {
    /// Flushes, and writes no more runs: those listed wait for [`Self::finish_runs`],
    /// which any block written after this calls first.
    pub fn end_runs(&mut self) -> Result<(), IndexError> {
        self.flush()?;
        self.write_runs = false;
        Ok(())
    }

    /// How many flushes' runs are listed, not yet merged.
    pub fn runs_listed(&self) -> usize {
        self.state.runs.len()
    }

    /// Flushes, then merges the runs into the history and spends tables and rebuilds
    /// the UTXO table from the outpoints, in key order (each page of the tables written
    /// once), a bounded slice per commit; then goes back to writing rows straight into
    /// the tables. A merge cut short (crash, kill) resumes where its last commit ended.
    /// Returns how many rows were merged, `None` if no run was pending.
    pub fn finish_runs(&mut self) -> Result<Option<u64>, IndexError> {
        self.end_runs()?;
        if self.state.runs.is_empty() {
            return Ok(None);
        }
        let started = Instant::now();
        let store = Arc::clone(&self.store);
        let dir = Path::new(store.dir()).to_path_buf();
        let ids = self.state.runs.clone();
        let run_error = |e| IndexError::from(StoreError::from(e));
        let bytes = runs::runs_size(&dir, RunKind::History, &ids).map_err(run_error)?
            + runs::runs_size(&dir, RunKind::Spends, &ids).map_err(run_error)?;
        // A row takes about as many bytes in its table as in its run, and the UTXO table
        // about as many as the outpoints: room twice over.
        let outpoints = store
            .table_sizes()?
            .iter()
            .find(|(name, _, _)| *name == "outpoints")
            .map_or(0, |(_, bytes, _)| *bytes);
        let needed = bytes.saturating_add(outpoints).saturating_mul(2);
        store.ensure_room(usize::try_from(needed).unwrap_or(usize::MAX / 4))?;
        if let Some(progress) = &self.state.merge {
            log::info!(
                "resuming the merge of the catch-up's runs in its {:?} stage",
                progress.stage
            );
        }

        // Tables part empty are repacked first: the pages they give back then take the
        // merged rows. Decided up front; a merge cut short finishes a repack it began.
        let resumed = self.state.merge.as_ref().map(|progress| progress.stage);
        for table in [Packed::TxidIndex, Packed::Outpoints] {
            let (pack, unpack) = table.stages();
            let worth = match resumed {
                Some(stage) => stage == pack || stage == unpack,
                None => {
                    let (slack, size) = store.slack_of(table)?;
                    #[cfg(test)]
                    let slack = if self.always_pack {
                        u64::MAX / 8
                    } else {
                        slack
                    };
                    slack >= PACK_MIN_SLACK && slack.saturating_mul(5) >= size
                }
            };
            if worth {
                self.pack(table)?;
            }
        }

        // The UTXO table, left alone while the runs were written, is rebuilt from the
        // outpoints (which the merge does not change): sorted by script in chunks of
        // bounded memory, on another thread while the history and spends merge, then
        // merged. The chunks are never listed: a restart sorts again.
        let utxo_sort = (!self.merge_stage_done(MergeStage::Utxo)).then(|| {
            let (store, dir) = (Arc::clone(&store), dir.clone());
            std::thread::Builder::new()
                .name("utxo-sort".into())
                .spawn(move || sort_unspent_in_chunks(&store, &dir, UTXO_CHUNK))
        });
        let utxo_sort = utxo_sort.transpose().map_err(|e| {
            IndexError::from(StoreError::from(runs::RunError::Io {
                path: "the UTXO sort's thread".into(),
                source: e,
            }))
        })?;
        let mut phases = Phases::start();
        let merged = self.merge_history_and_spends(&dir, &ids, &mut phases);
        // Joined whatever the merge did, so that no thread writes chunks past this call.
        let chunks = utxo_sort
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(corrupt("the UTXO sort panicked".into())))
            })
            .transpose()?;
        let (history_rows, spends_rows) = merged?;
        let utxo_rows = match chunks {
            None => 0,
            Some(chunks) => {
                let utxos =
                    runs::Merge::<{ schema::UTXO_RECORD_LEN }>::open(&dir, RunKind::Utxo, &chunks)
                        .map_err(run_error)?;
                self.merge_in_commits(
                    MergeStage::Utxo,
                    utxos,
                    |_, _| false,
                    |wtxn, batch| {
                        wtxn.put_utxos_sorted(
                            batch.iter().map(|record| {
                                Ok::<_, StoreError>(schema::decode_utxo_record(record))
                            }),
                        )
                    },
                )?
            }
        };

        self.state.runs.clear();
        self.state.merge = None;
        let tables = store.tables()?;
        let mut wtxn = tables.write_txn()?;
        wtxn.put_state(&self.state)?;
        wtxn.commit()?;
        store.note_runs_listed(false);
        // Merged and no longer listed: any file left behind is removed at the next start.
        runs::remove_unlisted(&dir, &[]).map_err(run_error)?;
        phases.end("UTXOs");
        log::info!(
            "history and spends of {} flushes merged into the index, UTXOs rebuilt: \
             {history_rows} history, {spends_rows} spends and {utxo_rows} UTXO rows in {:.1}s ({})",
            ids.len(),
            started.elapsed().as_secs_f64(),
            phases.parts()
        );
        Ok(Some(history_rows + spends_rows + utxo_rows))
    }

    /// The history and spends stages of the merge; their row counts.
    fn merge_history_and_spends(
        &mut self,
        dir: &Path,
        ids: &[u64],
        phases: &mut Phases,
    ) -> Result<(u64, u64), IndexError> {
        let run_error = |e| IndexError::from(StoreError::from(e));
        let history = runs::Merge::<{ schema::HISTORY_KEY_LEN }>::open(dir, RunKind::History, ids)
            .map_err(run_error)?;
        // A script's history goes in whole: its last row is filled before new ones start.
        let same_script = |a: &[u8; schema::HISTORY_KEY_LEN], b: &[u8; schema::HISTORY_KEY_LEN]| {
            a[..HASHX_LEN] == b[..HASHX_LEN]
        };
        let history_rows =
            self.merge_in_commits(MergeStage::History, history, same_script, |wtxn, batch| {
                wtxn.put_history_sorted(
                    batch
                        .iter()
                        .map(|record| Ok::<_, StoreError>(schema::decode_history_key(record)?)),
                )
            })?;
        phases.end("history");
        let spends = runs::Merge::<{ schema::SPENDS_RECORD_LEN }>::open(dir, RunKind::Spends, ids)
            .map_err(run_error)?;
        let spends_rows = self.merge_in_commits(
            MergeStage::Spends,
            spends,
            |_, _| false,
            |wtxn, batch| {
                wtxn.put_spends_sorted(
                    batch
                        .iter()
                        .map(|record| Ok::<_, StoreError>(schema::decode_spends_record(record))),
                )
            },
        )?;
        phases.end("spends");
        Ok((history_rows, spends_rows))
    }

    /// Repacks `table`: the catch-up's flushes inserted keys all over the txid index
    /// and deleted spent outpoints all over theirs, so their pages are part empty.
    /// Copied in key order to the spare table, then back into the emptied table, it
    /// takes far fewer pages, and those it gave back take the merged rows that would
    /// have grown the file. Commits as the merge does; the last key of the table being
    /// filled says how far a cut-short repack got.
    fn pack(&mut self, table: Packed) -> Result<(), IndexError> {
        let started = Instant::now();
        let (_, before) = self.store.slack_of(table)?;
        let (pack, unpack) = table.stages();
        let unpacking = self
            .state
            .merge
            .as_ref()
            .is_some_and(|progress| progress.stage == unpack);
        for stage in [pack, unpack] {
            if stage == pack && unpacking {
                continue;
            }
            let to_spare = stage == pack;
            // Emptied in the stage's first commit: the spare (empty already but for a
            // repack cut short before its first commit), then the table, all of it in
            // the spare by then.
            let mut first = self
                .state
                .merge
                .as_ref()
                .is_none_or(|progress| progress.stage != stage);
            loop {
                self.before_merge_commit()?;
                let tables = self.store.tables()?;
                let mut wtxn = tables.write_txn()?;
                if std::mem::take(&mut first) {
                    wtxn.clear_packed(table, to_spare)?;
                }
                let done = wtxn.pack_step(table, to_spare, self.merge_commit_bytes)?;
                let next = if done && !to_spare {
                    wtxn.clear_packed(table, true)?;
                    MergeStage::History
                } else {
                    stage
                };
                self.state.merge = Some(MergeProgress {
                    stage: next,
                    through: String::new(),
                });
                wtxn.put_state(&self.state)?;
                wtxn.commit()?;
                if done {
                    break;
                }
            }
        }
        let (_, after) = self.store.slack_of(table)?;
        log::info!(
            "{table:?} repacked from {} to {} MiB in {:.1}s",
            before >> 20,
            after >> 20,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Before each commit of a merge: a stopping server ends it there (it resumes at the
    /// next start); tests cut it short once their count of commits runs out.
    fn before_merge_commit(&mut self) -> Result<(), IndexError> {
        if self
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst))
        {
            return Err(IndexError::MergeInterrupted);
        }
        if let Some(pause) = crate::test_switches::merge_pause() {
            std::thread::sleep(pause);
        }
        #[cfg(test)]
        if let Some(left) = self.merge_commits_left.as_mut() {
            if *left == 0 {
                return Err(corrupt("the test cut the merge short".into()).into());
            }
            *left -= 1;
        }
        Ok(())
    }

    /// Whether a merge that was cut short had finished `stage`.
    fn merge_stage_done(&self, stage: MergeStage) -> bool {
        self.state
            .merge
            .as_ref()
            .is_some_and(|progress| progress.stage > stage)
    }

    /// Writes `records` (ascending) with `write`, a commit every [`MERGE_COMMIT_BYTES`]
    /// or so, each recording the last record written in the state. Records up to where
    /// a merge cut short got are skipped; a commit never falls between two records that
    /// `together` holds together. The UTXO stage's first commit empties the table.
    fn merge_in_commits<const N: usize>(
        &mut self,
        stage: MergeStage,
        records: runs::Merge<N>,
        together: impl Fn(&[u8; N], &[u8; N]) -> bool,
        mut write: impl FnMut(&mut WriteTxn, &[[u8; N]]) -> Result<u64, StoreError>,
    ) -> Result<u64, IndexError> {
        if self.merge_stage_done(stage) {
            return Ok(0);
        }
        let mut through: Option<[u8; N]> = None;
        let mut resumed = false;
        if let Some(progress) = self.state.merge.as_ref().filter(|p| p.stage == stage) {
            resumed = true;
            through = match progress.through.as_str() {
                "" => None,
                hex => Some(
                    from_hex(hex)
                        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
                        .ok_or_else(|| {
                            corrupt(format!("the merge's progress {hex:?} is not a record"))
                        })?,
                ),
            };
        }
        let per_commit = (self.merge_commit_bytes / N).max(1);
        let mut batch: Vec<[u8; N]> = Vec::with_capacity(per_commit + 1);
        let mut written = 0;
        let mut first = !resumed;
        let mut commit =
            |indexer: &mut Indexer, batch: &mut Vec<[u8; N]>, through: &mut Option<[u8; N]>| {
                indexer.before_merge_commit()?;
                let tables = indexer.store.tables()?;
                let mut wtxn = tables.write_txn()?;
                if std::mem::take(&mut first) && stage == MergeStage::Utxo {
                    wtxn.clear_utxos()?;
                }
                written += write(&mut wtxn, batch)?;
                if let Some(last) = batch.last() {
                    *through = Some(*last);
                }
                indexer.state.merge = Some(MergeProgress {
                    stage,
                    through: through
                        .as_ref()
                        .map_or_else(String::new, |last| to_hex(last)),
                });
                wtxn.put_state(&indexer.state)?;
                wtxn.commit()?;
                batch.clear();
                Ok::<_, IndexError>(())
            };
        // The k-way merge of the runs (reading them, the heap) goes on another thread,
        // handing over chunks, while this one writes: the daemon is idle by now.
        std::thread::scope(|scope| {
            let (chunks_tx, chunks) = std::sync::mpsc::sync_channel(2);
            scope.spawn(move || {
                let mut chunk = Vec::with_capacity(MERGE_CHUNK);
                for record in records {
                    let failed = record.is_err();
                    match record {
                        Ok(record) => chunk.push(record),
                        Err(e) => {
                            // The receiver may be gone already; then nobody needs it.
                            let _ = chunks_tx.send(Err(e));
                        }
                    }
                    if failed {
                        return;
                    }
                    if chunk.len() == MERGE_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(MERGE_CHUNK));
                        if chunks_tx.send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                let _ = chunks_tx.send(Ok(chunk));
            });
            // Returning early drops `chunks`, which ends the producer at its next send.
            for chunk in chunks {
                for record in chunk.map_err(StoreError::from)? {
                    if through.is_some_and(|through| record <= through) {
                        continue;
                    }
                    if batch.len() >= per_commit
                        && batch.last().is_some_and(|last| !together(last, &record))
                    {
                        commit(self, &mut batch, &mut through)?;
                    }
                    batch.push(record);
                }
            }
            commit(self, &mut batch, &mut through)
        })?;
        Ok(written)
    }
}

/// Run bytes merged into the index per commit (at most one script's history more): each commit's changed pages stay within
/// what LMDB keeps in memory before spilling them to the file, and a merge cut short
/// loses at most this much work.
pub(super) const MERGE_COMMIT_BYTES: usize = 32 << 20;

/// Records the merge's reading thread hands over at a time.
const MERGE_CHUNK: usize = 1 << 16;

/// The txid index or the outpoints are repacked before a merge when their slack is at
/// least this, and at least a fifth of their size.
const PACK_MIN_SLACK: u64 = 16 << 20;

/// UTXO records sorted in memory at a time while the table is rebuilt (28 bytes each).
const UTXO_CHUNK: usize = 2 << 20;

/// Writes the index's unspent outputs as UTXO records to runs of their own, each chunk of
/// `chunk_len` sorted by key; returns the chunks' ids.
pub(super) fn sort_unspent_in_chunks(
    store: &Store,
    dir: &Path,
    chunk_len: usize,
) -> Result<Vec<u64>, StoreError> {
    fn write(
        dir: &Path,
        chunk: &mut Vec<[u8; schema::UTXO_RECORD_LEN]>,
        chunks: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        chunk.sort_unstable();
        let id = chunks.len() as u64;
        runs::write_run(dir, RunKind::Utxo, id, chunk.drain(..))?;
        chunks.push(id);
        Ok(())
    }
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    store.snapshot()?.for_each_unspent(|key, value| {
        chunk.push(schema::utxo_record(&key, value));
        if chunk.len() >= chunk_len {
            write(dir, &mut chunk, &mut chunks)?;
        }
        Ok(())
    })?;
    if !chunk.is_empty() {
        write(dir, &mut chunk, &mut chunks)?;
    }
    Ok(chunks)
}
