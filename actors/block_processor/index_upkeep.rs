//! The block processor's work on the index besides applying blocks: merging the runs of
//! a catch-up while the server answers from them, compacting the file after the initial
//! sync, and undoing blocks back to a fork point.

use super::{BlockProcessor, SyncError};
use ferrumx::hashes::Height;
use ferrumx::sync_progress::compacted_line;
use std::time::Instant;

/// Most runs the server answers from while they merge: a history lookup then reads a
/// block of each (64 KB).
const MAX_RUNS_SERVED: usize = 32;

impl BlockProcessor {
    /// Whether the server may answer from the runs listed while they merge: they are
    /// few enough that a lookup reading each of them stays cheap. On a chain that needed
    /// more flushes, they are merged before the server answers.
    pub(super) fn may_serve_from_runs(&self) -> bool {
        (1..=MAX_RUNS_SERVED).contains(&self.indexer.runs_listed())
    }

    /// Merges the runs listed, then compacts the index if the initial sync is due one.
    /// Called before the server answers, or after (it then answers from the runs, each
    /// snapshot reading them until their stage is merged); new blocks wait for it.
    pub(super) fn merge_listed_runs(&mut self) -> Result<(), SyncError> {
        if self.indexer.runs_listed() > 0 {
            if let Some(pause) = ferrumx::test_switches::merge_pause() {
                log::warn!(
                    "FERRUMX_TEST_MERGE_PAUSE_MS: the merge pauses {pause:?} before each commit"
                );
            }
            self.indexer.finish_runs()?;
        }
        if std::mem::take(&mut self.compact_after_merge) {
            self.compact();
        }
        Ok(())
    }

    /// After the initial sync and its merge, rebuilds the file without its
    /// free pages and with every page full: a failure that leaves the index as it was (no room on the disk for the
    /// copy) is only logged.
    pub(super) fn compact(&mut self) {
        let started = Instant::now();
        match self.indexer.compact_if_free(self.compact_min_free) {
            Ok(None) => {}
            Ok(Some(done)) => log::info!("{}", compacted_line(&done, started.elapsed())),
            Err(e) => log::warn!("the index was not compacted: {e}"),
        }
    }

    /// Undoes our blocks back to the last one the daemon's chain shares. Returns how
    /// many were undone.
    pub(super) fn reorg(&mut self) -> Result<u32, SyncError> {
        self.indexer.flush()?;
        let our_height = self.indexer.height().unwrap_or(Height::GENESIS);
        let daemon_height = self.client.get_block_count()?;
        let limit = self.indexer.reorg_limit();
        let lowest = our_height.saturating_sub(limit);
        let mut height = our_height.min(daemon_height);
        loop {
            let ours = self.indexer.block_hash_at(height)?;
            let theirs = self.client.get_block_hash(height)?;
            if ours == Some(theirs) {
                break;
            }
            match height.prev() {
                Some(prev) if height > lowest => height = prev,
                _ => {
                    return Err(SyncError::NoForkPoint {
                        height: our_height,
                        limit,
                    });
                }
            }
        }
        let depth = our_height.blocks_after(height);
        if depth > 0 {
            log::warn!("chain reorganisation: undoing {depth} blocks back to height {height}");
            self.indexer.rollback(depth)?;
        }
        Ok(depth)
    }
}
