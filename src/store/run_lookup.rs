//! Finding the records of one key in the runs of a catch-up, before the merge has put
//! them into their table: how the index answers while it serves and the merge goes on.
//!
//! Each run keeps in memory the first record of every block of [`BLOCK_RECORDS`]
//! records (for a history run, 16 bytes per 64 KB of file); a lookup finds the block in
//! memory and reads it, and the next ones while the key's records go on.

use super::runs::{RunError, RunKind, io, open_run, run_path};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Records read at once.
const BLOCK_RECORDS: u64 = 4096;

/// The runs of one kind, in the order given (the flushes' order: chain order).
pub struct RunLookup<const N: usize> {
    runs: Vec<IndexedRun<N>>,
}

struct IndexedRun<const N: usize> {
    path: PathBuf,
    /// Open for the lookup's lifetime: the merge removes the file when it is done, and
    /// readers of an older snapshot still read it.
    file: File,
    records: u64,
    /// The first record of each block.
    heads: Vec<[u8; N]>,
}

impl<const N: usize> RunLookup<N> {
    pub fn open(dir: &Path, kind: RunKind, ids: &[u64]) -> Result<RunLookup<N>, RunError> {
        let runs = ids
            .iter()
            .map(|id| IndexedRun::open(run_path(dir, kind, *id)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunLookup { runs })
    }

    /// Calls `each` with every record that starts with `prefix`: run by run, in key
    /// order within each, until it returns `false`.
    pub fn for_each(
        &self,
        prefix: &[u8],
        mut each: impl FnMut(&[u8; N]) -> bool,
    ) -> Result<(), RunError> {
        for run in &self.runs {
            if !run.for_each(prefix, &mut each)? {
                break;
            }
        }
        Ok(())
    }
}

impl<const N: usize> IndexedRun<N> {
    fn open(path: PathBuf) -> Result<IndexedRun<N>, RunError> {
        let (file, len) = open_run(&path, N)?;
        let records = len / N as u64;
        let mut heads = Vec::with_capacity(records.div_ceil(BLOCK_RECORDS) as usize);
        for block in 0..records.div_ceil(BLOCK_RECORDS) {
            let mut head = [0u8; N];
            file.read_exact_at(&mut head, block * BLOCK_RECORDS * N as u64)
                .map_err(io(&path))?;
            heads.push(head);
        }
        Ok(IndexedRun {
            path,
            file,
            records,
            heads,
        })
    }

    /// As [`RunLookup::for_each`] in this run; `false` once `each` said to stop.
    fn for_each(
        &self,
        prefix: &[u8],
        each: &mut impl FnMut(&[u8; N]) -> bool,
    ) -> Result<bool, RunError> {
        let prefix = &prefix[..prefix.len().min(N)];
        let p = prefix.len();
        // The key's first record is in the last block that starts before it, or in the
        // first block that starts with it.
        let mut block = self
            .heads
            .partition_point(|head| &head[..p] < prefix)
            .saturating_sub(1) as u64;
        let mut records: Vec<[u8; N]> = Vec::new();
        while block < self.heads.len() as u64 {
            let first = block * BLOCK_RECORDS;
            let count = BLOCK_RECORDS.min(self.records - first) as usize;
            records.clear();
            records.resize(count, [0u8; N]);
            self.file
                .read_exact_at(records.as_flattened_mut(), first * N as u64)
                .map_err(io(&self.path))?;
            let start = records.partition_point(|record| &record[..p] < prefix);
            for record in &records[start..] {
                if &record[..p] != prefix {
                    return Ok(true);
                }
                if !each(record) {
                    return Ok(false);
                }
            }
            block += 1;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::write_run;

    fn found(lookup: &RunLookup<3>, prefix: &[u8]) -> Vec<[u8; 3]> {
        let mut out = Vec::new();
        lookup
            .for_each(prefix, |record| {
                out.push(*record);
                true
            })
            .unwrap();
        out
    }

    #[test]
    fn a_key_is_found_across_blocks_and_runs_in_run_order() {
        let dir = tempfile::tempdir().unwrap();
        // Run 1: keys 0..=255 twice each except key 7, which fills more than two blocks.
        let mut first: Vec<[u8; 3]> = Vec::new();
        for key in 0u8..=255 {
            let copies = if key == 7 {
                2 * BLOCK_RECORDS as u16 + 5
            } else {
                2
            };
            first.extend((0..copies).map(|i| [key, (i >> 8) as u8, i as u8]));
        }
        write_run(dir.path(), RunKind::History, 1, first.iter().copied()).unwrap();
        write_run(
            dir.path(),
            RunKind::History,
            2,
            [[7, 0xff, 0xff], [9, 1, 1]].into_iter(),
        )
        .unwrap();
        write_run(
            dir.path(),
            RunKind::History,
            3,
            std::iter::empty::<[u8; 3]>(),
        )
        .unwrap();
        let lookup = RunLookup::<3>::open(dir.path(), RunKind::History, &[1, 2, 3]).unwrap();

        let sevens = found(&lookup, &[7]);
        assert_eq!(sevens.len(), 2 * BLOCK_RECORDS as usize + 5 + 1);
        assert!(sevens.iter().all(|r| r[0] == 7));
        assert_eq!(
            *sevens.last().unwrap(),
            [7, 0xff, 0xff],
            "run 2 after run 1"
        );
        assert!(sevens[..sevens.len() - 1].is_sorted());
        assert_eq!(found(&lookup, &[9]), vec![[9, 0, 0], [9, 0, 1], [9, 1, 1]]);
        assert_eq!(found(&lookup, &[255]), vec![[255, 0, 0], [255, 0, 1]]);
        assert_eq!(found(&lookup, &[0]), vec![[0, 0, 0], [0, 0, 1]]);
        assert_eq!(found(&lookup, &[8, 0, 1]), vec![[8, 0, 1]]);
        assert!(found(&lookup, &[8, 0, 2]).is_empty());

        let mut seen = 0;
        lookup
            .for_each(&[7], |_| {
                seen += 1;
                seen < 3
            })
            .unwrap();
        assert_eq!(seen, 3, "stops when asked");
    }

    #[test]
    fn a_torn_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(run_path(dir.path(), RunKind::Spends, 4), [0u8; 7]).unwrap();
        assert!(matches!(
            RunLookup::<3>::open(dir.path(), RunKind::Spends, &[4]),
            Err(RunError::Truncated { len: 7, .. })
        ));
    }
}
