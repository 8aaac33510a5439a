//! The history and the spends of a large catch-up, written in sorted runs beside the
//! index and merged into their tables once.
//!
//! Every flush of a catch-up adds history rows for scripts all over the key space, and
//! spends of outputs from all over the chain. Put straight into their tables, each flush
//! touches (reads, copies and rewrites) nearly every page of them: once the tables are
//! bigger than memory, most of a flush's time goes there. Instead, each flush's rows,
//! already sorted, are written to files of their own (runs) beside the index, and a
//! single k-way merge at the end puts them into the tables in key order, touching each
//! page once, by appending when a table is empty. Neither table is read by the sync
//! itself.
//!
//! A run is a file `<kind>-<id>.run` of fixed-size records in ascending byte order:
//! `history` records are `hashX (11) ‖ tx_num (5)`, `spends` records `spent tx_num (5) ‖
//! vout (4) ‖ spender's tx_num (5)`; `<id>` is the transaction count of the flush that
//! wrote them. The index's state lists the runs its commits hold; a file it does not
//! list was written by a flush that never committed and is removed at start.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".run";

/// What a run holds, and the length of its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    History,
    Spends,
    /// The unspent outputs sorted by script, in chunks, while the first catch-up's
    /// merge rebuilds the UTXO table: never listed, so removed at start if left.
    Utxo,
}

impl RunKind {
    const ALL: [RunKind; 3] = [RunKind::History, RunKind::Spends, RunKind::Utxo];
    /// The kinds every flush of the catch-up writes, and the state lists.
    const LISTED: [RunKind; 2] = [RunKind::History, RunKind::Spends];

    fn prefix(self) -> &'static str {
        match self {
            RunKind::History => "history-",
            RunKind::Spends => "spends-",
            RunKind::Utxo => "utxo-",
        }
    }
}

/// Memory the merge's read buffers may take together, split among the runs.
const MERGE_BUFFERS: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("run {path} of the catch-up: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "run {path} is {len} bytes, not a whole number of {record}-byte records: the index \
         is damaged; resync from scratch"
    )]
    Truncated {
        path: String,
        len: u64,
        record: usize,
    },
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub fn run_path(dir: &Path, kind: RunKind, id: u64) -> PathBuf {
    dir.join(format!("{}{id:020}{SUFFIX}", kind.prefix()))
}

fn run_id(name: &str) -> Option<(RunKind, u64)> {
    RunKind::ALL.iter().find_map(|kind| {
        let id = name.strip_prefix(kind.prefix())?.strip_suffix(SUFFIX)?;
        Some((*kind, id.parse().ok()?))
    })
}

/// Writes `records` (ascending) as the run `id` of `kind`, on disk before the commit
/// that lists it.
pub fn write_run<const N: usize>(
    dir: &Path,
    kind: RunKind,
    id: u64,
    records: impl Iterator<Item = [u8; N]>,
) -> Result<(), RunError> {
    let path = run_path(dir, kind, id);
    let file = File::create(&path).map_err(io(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for record in records {
        out.write_all(&record).map_err(io(&path))?;
    }
    let file = out.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    file.sync_all().map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Removes the runs of `dir` that `kept` does not list (written by a flush that never
/// committed, or already merged); the ids of those listed that are missing (a listed id
/// has a run of every kind).
pub fn remove_unlisted(dir: &Path, kept: &[u64]) -> Result<Vec<u64>, RunError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let Some((kind, id)) = entry.file_name().to_str().and_then(run_id) else {
            continue;
        };
        if kept.contains(&id) && RunKind::LISTED.contains(&kind) {
            found.push(id);
        } else {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(kept
        .iter()
        .copied()
        .filter(|id| found.iter().filter(|f| *f == id).count() < RunKind::LISTED.len())
        .collect())
}

/// The total size of the runs `ids` of `kind`, in bytes.
pub fn runs_size(dir: &Path, kind: RunKind, ids: &[u64]) -> Result<u64, RunError> {
    ids.iter().try_fold(0, |total, id| {
        let path = run_path(dir, kind, *id);
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        Ok(total + len)
    })
}

struct Run<const N: usize> {
    path: PathBuf,
    reader: BufReader<File>,
}

/// Opens a run of `record`-byte records, and says how many bytes it holds.
pub(super) fn open_run(path: &Path, record: usize) -> Result<(File, u64), RunError> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len % record as u64 != 0 {
        return Err(RunError::Truncated {
            path: path.display().to_string(),
            len,
            record,
        });
    }
    Ok((file, len))
}

impl<const N: usize> Run<N> {
    fn open(path: PathBuf, buffer: usize) -> Result<Run<N>, RunError> {
        let (file, _) = open_run(&path, N)?;
        Ok(Run {
            reader: BufReader::with_capacity(buffer, file),
            path,
        })
    }

    fn next(&mut self) -> Result<Option<[u8; N]>, RunError> {
        let mut record = [0u8; N];
        match self.reader.read_exact(&mut record) {
            Ok(()) => Ok(Some(record)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io(&self.path)(e)),
        }
    }
}

/// The records of several runs of one kind in one ascending order.
pub struct Merge<const N: usize> {
    runs: Vec<Run<N>>,
    heads: BinaryHeap<Reverse<([u8; N], usize)>>,
}

impl<const N: usize> Merge<N> {
    pub fn open(dir: &Path, kind: RunKind, ids: &[u64]) -> Result<Merge<N>, RunError> {
        let buffer = (MERGE_BUFFERS / ids.len().max(1)).clamp(4096, 1 << 20);
        let mut runs = ids
            .iter()
            .map(|id| Run::open(run_path(dir, kind, *id), buffer))
            .collect::<Result<Vec<_>, _>>()?;
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some(record) = run.next()? {
                heads.push(Reverse((record, index)));
            }
        }
        Ok(Merge { runs, heads })
    }
}

impl<const N: usize> Iterator for Merge<N> {
    type Item = Result<[u8; N], RunError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((record, index)) = self.heads.pop()?;
        match self.runs[index].next() {
            Ok(Some(next)) => self.heads.push(Reverse((next, index))),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, kind: RunKind, id: u64, records: &[[u8; 2]]) {
        write_run(dir, kind, id, records.iter().copied()).unwrap();
    }

    #[test]
    fn runs_merge_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), RunKind::History, 10, &[[1, 1], [3, 2], [3, 5]]);
        write(dir.path(), RunKind::History, 20, &[[2, 11], [3, 12]]);
        write(dir.path(), RunKind::History, 30, &[]);
        write(dir.path(), RunKind::Spends, 10, &[[0, 0]]);
        let merged: Vec<[u8; 2]> = Merge::open(dir.path(), RunKind::History, &[10, 20, 30])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(merged, vec![[1, 1], [2, 11], [3, 2], [3, 5], [3, 12]]);
        assert_eq!(
            runs_size(dir.path(), RunKind::History, &[10, 20]).unwrap(),
            5 * 2
        );
    }

    #[test]
    fn unlisted_runs_are_removed_and_missing_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        for kind in RunKind::LISTED {
            write(dir.path(), kind, 1, &[[1, 1]]);
            write(dir.path(), kind, 2, &[[1, 2]]);
        }
        write(dir.path(), RunKind::History, 3, &[]);
        write(dir.path(), RunKind::Utxo, 1, &[]);
        std::fs::write(dir.path().join("data.mdb"), b"not a run").unwrap();
        assert_eq!(
            remove_unlisted(dir.path(), &[1, 3, 7]).unwrap(),
            vec![3, 7],
            "3 has no spends run, 7 nothing"
        );
        assert!(run_path(dir.path(), RunKind::Spends, 1).exists());
        assert!(
            !run_path(dir.path(), RunKind::Utxo, 1).exists(),
            "a UTXO chunk is never listed"
        );
        assert!(!run_path(dir.path(), RunKind::History, 2).exists());
        assert!(!run_path(dir.path(), RunKind::Spends, 2).exists());
        assert!(dir.path().join("data.mdb").exists());
    }

    #[test]
    fn a_torn_run_is_an_error_not_a_short_history() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(run_path(dir.path(), RunKind::History, 5), [0u8; 20]).unwrap();
        assert!(matches!(
            Merge::<16>::open(dir.path(), RunKind::History, &[5]),
            Err(RunError::Truncated { len: 20, .. })
        ));
    }
}
