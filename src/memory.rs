//! How much memory ferrumx may use, and how the sync shares it out.
//!
//! The limit is the process's cgroup memory limit (v1 `memory.limit_in_bytes`, v2
//! `memory.max`, the lowest along the cgroup's path), else the system's MemAvailable.
//! A cgroup's limit counts the page cache, so the budget leaves part of it to the LMDB
//! map's pages; the rest goes to fixed costs, LMDB's dirty pages in a write transaction
//! (bounded at compile time, see [`LMDB_DIRTY_BYTES`]), the catch-up cache (CACHE_MB)
//! and the blocks fetched ahead. The arithmetic and the parsing are pure and tested
//! here; [`MemoryLimit::detect`] reads the files.

use std::path::{Path, PathBuf};

const MB: u64 = 1 << 20;

/// Memory of the process apart from the sync: code, runtime, sessions, the mempool.
const BASE_BYTES: u64 = 96 * MB;
/// LMDB keeps at most 2^(MDB_IDL_LOGN+1) dirty pages in a write transaction before it
/// spills them to the file; the workspace builds heed with `mdb_idl_logn_14`, so
/// 32,768 pages of 4 KiB. The freed pages are kept for reuse, so this stays allocated.
pub const LMDB_DIRTY_BYTES: u64 = 32_768 * 4096;
/// Share of the limit left to the page cache (the map's hot pages, written pages
/// waiting for writeback): under a cgroup they count against the limit.
const PAGE_CACHE_SHARE: f64 = 0.35;
/// Floors, so that a tiny limit still syncs (slowly) rather than not at all.
const MIN_CACHE_BYTES: u64 = 16 * MB;
const MIN_PREFETCH_BYTES: u64 = 8 * MB;
/// The default catch-up cache stops growing here: past it, flushes are already rare and
/// a bigger cache only makes each one longer.
const DEFAULT_CACHE_CAP: u64 = 2048 * MB;
/// Blocks fetched ahead beyond this do not make the sync faster (32 mainnet blocks).
const PREFETCH_CAP: u64 = 64 * MB;
/// A cgroup "limit" at or above this is the kernel's way of saying "no limit".
const UNLIMITED: u64 = 1 << 60;

/// Where the memory limit came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitSource {
    Cgroup(PathBuf),
    MemAvailable,
    /// Neither could be read: an assumed limit.
    Assumed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    pub source: LimitSource,
}

/// The memory ferrumx gives each part of the sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: MemoryLimit,
    /// Unflushed blocks during catch-up (CACHE_MB).
    pub cache_bytes: u64,
    /// Set when CACHE_MB asked for more than the budget allows.
    pub cache_capped_from: Option<u64>,
    /// Parsed blocks waiting to be applied.
    pub prefetch_bytes: u64,
}

impl Budget {
    /// Shares `limit` out. `cache_mb` is CACHE_MB when set: it is honoured up to the
    /// cache's share of the limit.
    pub fn new(limit: MemoryLimit, cache_mb: Option<u64>) -> Budget {
        let bytes = limit.bytes;
        let reserved = BASE_BYTES + LMDB_DIRTY_BYTES + (bytes as f64 * PAGE_CACHE_SHARE) as u64;
        let spendable = bytes.saturating_sub(reserved);
        let cache_share = (spendable / 4 * 3).max(MIN_CACHE_BYTES);
        let (cache_bytes, cache_capped_from) = match cache_mb {
            None => (cache_share.min(DEFAULT_CACHE_CAP), None),
            Some(mb) => {
                let asked = mb.saturating_mul(MB);
                if asked > cache_share {
                    (cache_share, Some(asked))
                } else {
                    (asked, None)
                }
            }
        };
        Budget {
            limit,
            cache_bytes,
            cache_capped_from,
            prefetch_bytes: prefetch_bytes_for(cache_bytes),
        }
    }

    /// The line logged at start.
    pub fn describe(&self) -> String {
        let source = match &self.limit.source {
            LimitSource::Cgroup(path) => format!("cgroup limit ({})", path.display()),
            LimitSource::MemAvailable => "MemAvailable".to_string(),
            LimitSource::Assumed => "assumed: no cgroup limit or /proc/meminfo".to_string(),
        };
        let capped = match self.cache_capped_from {
            Some(asked) => format!(" (CACHE_MB={} capped to fit)", asked / MB),
            None => String::new(),
        };
        format!(
            "memory: {} MB may be used ({source}); catch-up cache {} MB{capped}, blocks \
             ahead {} MB, LMDB write transaction {} MB",
            self.limit.bytes / MB,
            self.cache_bytes / MB,
            self.prefetch_bytes / MB,
            LMDB_DIRTY_BYTES / MB,
        )
    }
}

/// Blocks fetched ahead get a third of what the catch-up cache gets: a quarter of the
/// spendable memory when the cache has its default share.
pub fn prefetch_bytes_for(cache_bytes: u64) -> u64 {
    (cache_bytes / 3).clamp(MIN_PREFETCH_BYTES, PREFETCH_CAP)
}

impl MemoryLimit {
    /// The lower of this process's cgroup limit and MemAvailable.
    pub fn detect() -> MemoryLimit {
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_available(&text));
        let cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|text| cgroup_limit(&text, Path::new("/sys/fs/cgroup"), read_file));
        choose_limit(cgroup, available)
    }
}

fn read_file(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The cgroup limit wins when it is below MemAvailable (the machine may have room the
/// cgroup does not give); otherwise MemAvailable, as memory others use is not ours.
pub fn choose_limit(cgroup: Option<(u64, PathBuf)>, available: Option<u64>) -> MemoryLimit {
    match (cgroup, available) {
        (Some((limit, _)), Some(bytes)) if bytes < limit => MemoryLimit {
            bytes,
            source: LimitSource::MemAvailable,
        },
        (Some((bytes, path)), _) => MemoryLimit {
            bytes,
            source: LimitSource::Cgroup(path),
        },
        (None, Some(bytes)) => MemoryLimit {
            bytes,
            source: LimitSource::MemAvailable,
        },
        (None, None) => MemoryLimit {
            bytes: 1024 * MB,
            source: LimitSource::Assumed,
        },
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemAvailable:")?;
        let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb.saturating_mul(1024))
    })
}

/// A cgroup limit file's value: bytes, or `None` for "max" or the v1 "unlimited" figure.
pub fn parse_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < UNLIMITED).then_some(bytes)
}

/// The lowest memory limit along this process's cgroup path, from /proc/self/cgroup's
/// text: the v1 memory controller's line (`N:memory:/path`, or with other controllers
/// `N:cpu,memory:/path`) under `root/memory`, or the v2 line (`0::/path`) under `root`.
/// `read` reads a file (a parameter so that tests need no cgroup).
pub fn cgroup_limit(
    proc_self_cgroup: &str,
    root: &Path,
    read: impl Fn(&Path) -> Option<String>,
) -> Option<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (base, file) = if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else {
            continue;
        };
        // The cgroup itself, then each parent up to the root: the lowest limit applies.
        let mut dir = PathBuf::from(path.trim_start_matches('/'));
        loop {
            let candidate = base.join(&dir).join(file);
            if let Some(limit) = read(&candidate).as_deref().and_then(parse_limit)
                && best.as_ref().is_none_or(|(b, _)| limit < *b)
            {
                best = Some((limit, candidate));
            }
            if !dir.pop() {
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = entries
            .iter()
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        move |path| map.get(path).cloned()
    }

    #[test]
    fn cgroup_v1_limits_are_read_along_the_path() {
        let proc = "12:cpuset:/\n5:memory:/bench/ferrumx\n1:name=systemd:/x\n";
        let read = files(&[
            (
                "/sys/fs/cgroup/memory/bench/ferrumx/memory.limit_in_bytes",
                "1073741824\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
        ]);
        let (limit, path) = cgroup_limit(proc, Path::new("/sys/fs/cgroup"), read).unwrap();
        assert_eq!(limit, 1 << 30);
        assert!(path.ends_with("bench/ferrumx/memory.limit_in_bytes"));
        // A parent's lower limit applies to its children.
        let read = files(&[
            (
                "/sys/fs/cgroup/memory/bench/ferrumx/memory.limit_in_bytes",
                "9223372036854771712",
            ),
            (
                "/sys/fs/cgroup/memory/bench/memory.limit_in_bytes",
                "500000000",
            ),
        ]);
        assert_eq!(
            cgroup_limit(proc, Path::new("/sys/fs/cgroup"), read).map(|(l, _)| l),
            Some(500_000_000)
        );
    }

    #[test]
    fn cgroup_v2_limits_and_no_limit() {
        let proc = "0::/system.slice/ferrumx.service\n";
        let read = files(&[
            (
                "/sys/fs/cgroup/system.slice/ferrumx.service/memory.max",
                "2147483648\n",
            ),
            ("/sys/fs/cgroup/system.slice/memory.max", "max\n"),
        ]);
        assert_eq!(
            cgroup_limit(proc, Path::new("/sys/fs/cgroup"), read).map(|(l, _)| l),
            Some(2 << 30)
        );
        let read = files(&[("/sys/fs/cgroup/memory.max", "max")]);
        assert_eq!(cgroup_limit(proc, Path::new("/sys/fs/cgroup"), read), None);
        assert_eq!(cgroup_limit("garbage", Path::new("/"), files(&[])), None);
        assert_eq!(parse_limit("not a number"), None);
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn the_lower_of_cgroup_and_available_wins() {
        let cg = Some((1 << 30, PathBuf::from("/cg")));
        assert_eq!(choose_limit(cg.clone(), Some(20 << 30)).bytes, 1 << 30);
        let free = choose_limit(Some((64 << 30, PathBuf::from("/cg"))), Some(20 << 30));
        assert_eq!(
            (free.bytes, free.source),
            (20 << 30, LimitSource::MemAvailable)
        );
        assert_eq!(choose_limit(cg, None).bytes, 1 << 30);
        assert_eq!(choose_limit(None, None).source, LimitSource::Assumed);
    }

    fn limit(bytes: u64) -> MemoryLimit {
        MemoryLimit {
            bytes,
            source: LimitSource::MemAvailable,
        }
    }

    #[test]
    fn one_gigabyte_leaves_room_for_everything() {
        let budget = Budget::new(limit(1024 * MB), None);
        let total = BASE_BYTES + LMDB_DIRTY_BYTES + budget.cache_bytes + budget.prefetch_bytes;
        assert!(total <= 1024 * MB * 13 / 20, "{budget:?}");
        assert!(budget.cache_bytes >= 256 * MB, "{budget:?}");
        // CACHE_MB is honoured below the share, capped above it.
        let small = Budget::new(limit(1024 * MB), Some(100));
        assert_eq!(
            (small.cache_bytes, small.cache_capped_from),
            (100 * MB, None)
        );
        let big = Budget::new(limit(1024 * MB), Some(1200));
        assert_eq!(big.cache_bytes, budget.cache_bytes);
        assert_eq!(big.cache_capped_from, Some(1200 * MB));
        assert!(
            big.describe().contains("CACHE_MB=1200 capped"),
            "{}",
            big.describe()
        );
    }

    #[test]
    fn large_and_tiny_limits() {
        let large = Budget::new(limit(24 << 30), None);
        assert_eq!(large.cache_bytes, DEFAULT_CACHE_CAP);
        assert_eq!(large.prefetch_bytes, PREFETCH_CAP);
        assert_eq!(
            Budget::new(limit(24 << 30), Some(5000)).cache_bytes,
            5000 * MB
        );
        let tiny = Budget::new(limit(128 * MB), None);
        assert_eq!(
            (tiny.cache_bytes, tiny.prefetch_bytes),
            (MIN_CACHE_BYTES, MIN_PREFETCH_BYTES)
        );
    }
}
