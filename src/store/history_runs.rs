//! History written in sorted runs during a large catch-up, merged into the history
//! table once.
//!
//! Every flush of a catch-up adds history rows for scripts all over the key space. Put
//! straight into the history table, each flush touches (reads, copies and rewrites)
//! nearly every page of it: once the table is bigger than memory, most of a flush's time
//! goes there. Instead, each flush's rows, already sorted, are written to a file of their
//! own (a run) beside the index, and a single k-way merge at the end puts them into the
//! table in key order, touching each page once, by appending when the table is empty.
//!
//! A run is a file `history-<id>.run` of 16-byte records, `hashX (11) ‖ tx_num (5)`, in
//! ascending order; `<id>` is the transaction count of the flush that wrote it. The
//! index's state lists the runs its commits hold; a file it does not list was written by
//! a flush that never committed and is removed at start.

use crate::hashes::{HASHX_LEN, HashX, TXNUM_LEN, TxNum};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const RECORD_LEN: usize = HASHX_LEN + TXNUM_LEN;
const PREFIX: &str = "history-";
const SUFFIX: &str = ".run";

/// Memory the merge's read buffers may take together, split among the runs.
const MERGE_BUFFERS: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("history run {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "history run {path} is {len} bytes, not a whole number of {RECORD_LEN}-byte records: \
         the index is damaged; resync from scratch"
    )]
    Truncated { path: String, len: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
}

fn run_id(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// Writes `rows` (sorted) as the run `id`, on disk before the commit that lists it.
pub fn write_run(dir: &Path, id: u64, rows: &[(HashX, TxNum)]) -> Result<(), RunError> {
    let path = run_path(dir, id);
    let file = File::create(&path).map_err(io(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for (hashx, tx_num) in rows {
        out.write_all(&hashx.0).map_err(io(&path))?;
        out.write_all(&tx_num.to_bytes()).map_err(io(&path))?;
    }
    let file = out.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    file.sync_all().map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Removes the runs of `dir` that `kept` does not list (written by a flush that never
/// committed, or already merged); the ids of those listed that are missing.
pub fn remove_unlisted(dir: &Path, kept: &[u64]) -> Result<Vec<u64>, RunError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let Some(id) = entry.file_name().to_str().and_then(run_id) else {
            continue;
        };
        if kept.contains(&id) {
            found.push(id);
        } else {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(kept
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect())
}

/// The total size of the runs `ids`, in bytes.
pub fn runs_size(dir: &Path, ids: &[u64]) -> Result<u64, RunError> {
    ids.iter().try_fold(0, |total, id| {
        let path = run_path(dir, *id);
        let len = std::fs::metadata(&path).map_err(io(&path))?.len();
        Ok(total + len)
    })
}

struct Run {
    path: PathBuf,
    reader: BufReader<File>,
}

impl Run {
    fn open(path: PathBuf, buffer: usize) -> Result<Run, RunError> {
        let file = File::open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        if len % RECORD_LEN as u64 != 0 {
            return Err(RunError::Truncated {
                path: path.display().to_string(),
                len,
            });
        }
        Ok(Run {
            reader: BufReader::with_capacity(buffer, file),
            path,
        })
    }

    fn next(&mut self) -> Result<Option<(HashX, TxNum)>, RunError> {
        let mut record = [0u8; RECORD_LEN];
        match self.reader.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(&self.path)(e)),
        }
        let mut hashx = [0u8; HASHX_LEN];
        hashx.copy_from_slice(&record[..HASHX_LEN]);
        let mut tx_num = [0u8; TXNUM_LEN];
        tx_num.copy_from_slice(&record[HASHX_LEN..]);
        Ok(Some((HashX(hashx), TxNum::from_bytes(&tx_num))))
    }
}

/// The rows of several runs in one ascending order (by script, then tx_num).
pub struct Merge {
    runs: Vec<Run>,
    heads: BinaryHeap<Reverse<(HashX, TxNum, usize)>>,
}

impl Merge {
    pub fn open(dir: &Path, ids: &[u64]) -> Result<Merge, RunError> {
        let buffer = (MERGE_BUFFERS / ids.len().max(1)).clamp(4096, 1 << 20);
        let mut runs = ids
            .iter()
            .map(|id| Run::open(run_path(dir, *id), buffer))
            .collect::<Result<Vec<_>, _>>()?;
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some((hashx, tx_num)) = run.next()? {
                heads.push(Reverse((hashx, tx_num, index)));
            }
        }
        Ok(Merge { runs, heads })
    }
}

impl Iterator for Merge {
    type Item = Result<(HashX, TxNum), RunError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((hashx, tx_num, index)) = self.heads.pop()?;
        match self.runs[index].next() {
            Ok(Some((next_hashx, next_tx_num))) => {
                self.heads.push(Reverse((next_hashx, next_tx_num, index)));
            }
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok((hashx, tx_num)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(script: u8, tx_num: u64) -> (HashX, TxNum) {
        (HashX([script; HASHX_LEN]), TxNum(tx_num))
    }

    #[test]
    fn runs_merge_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), 10, &[row(1, 1), row(3, 2), row(3, 5)]).unwrap();
        write_run(dir.path(), 20, &[row(2, 11), row(3, 12)]).unwrap();
        write_run(dir.path(), 30, &[]).unwrap();
        let merged: Vec<_> = Merge::open(dir.path(), &[10, 20, 30])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            merged,
            vec![row(1, 1), row(2, 11), row(3, 2), row(3, 5), row(3, 12)]
        );
        assert_eq!(runs_size(dir.path(), &[10, 20]).unwrap(), 5 * 16);
    }

    #[test]
    fn unlisted_runs_are_removed_and_missing_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), 1, &[row(1, 1)]).unwrap();
        write_run(dir.path(), 2, &[row(1, 2)]).unwrap();
        std::fs::write(dir.path().join("data.mdb"), b"not a run").unwrap();
        assert_eq!(remove_unlisted(dir.path(), &[1, 7]).unwrap(), vec![7]);
        assert!(run_path(dir.path(), 1).exists());
        assert!(!run_path(dir.path(), 2).exists());
        assert!(dir.path().join("data.mdb").exists());
    }

    #[test]
    fn a_torn_run_is_an_error_not_a_short_history() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(run_path(dir.path(), 5), [0u8; 20]).unwrap();
        assert!(matches!(
            Merge::open(dir.path(), &[5]),
            Err(RunError::Truncated { len: 20, .. })
        ));
    }
}
