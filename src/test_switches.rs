//! The environment variables that exist only for ferrumx's own tests, all read here so
//! that a reader sees every test-only behaviour in one place. None is ElectrumX's and
//! none belongs in production; each is read once and logged where it takes effect.

use std::sync::OnceLock;

/// `FERRUMX_TEST_FAULTS=1`: the admin `inject_panic` command makes a supervised actor
/// panic, to test supervision.
pub fn faults() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| flag("FERRUMX_TEST_FAULTS"))
}

/// `FERRUMX_TEST_GROUP_LOOPBACK=1`: loopback clients are grouped by subnet like public
/// ones (tests only have loopback addresses).
pub fn group_loopback() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| flag("FERRUMX_TEST_GROUP_LOOPBACK"))
}

/// `FERRUMX_TEST_PEERS=1`: loopback addresses count as public peers and the peer timers
/// run 1,000 times faster, so that several servers on one machine discover each other.
pub fn peers() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| flag("FERRUMX_TEST_PEERS"))
}

/// `FERRUMX_TEST_CAP_LOOPBACK=1`: loopback clients count against MAX_SESSIONS_PER_IP and
/// MAX_SESSIONS_PER_SUBNET like any address (tests only have loopback addresses).
pub fn cap_loopback() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| flag("FERRUMX_TEST_CAP_LOOPBACK"))
}

/// `FERRUMX_TEST_MAP_SIZE=BYTES`: the LMDB map starts this small and grows in small
/// steps, so that a small chain makes it grow many times. `None` when unset or not a
/// number.
pub fn map_size() -> Option<usize> {
    static SIZE: OnceLock<Option<usize>> = OnceLock::new();
    *SIZE.get_or_init(|| parse_size(std::env::var("FERRUMX_TEST_MAP_SIZE").ok()))
}

/// `FERRUMX_TEST_BLOCK_PAUSE_MS=MS`: catch-up pauses this long after each block it
/// applies, so that a test's kill -9 can land between the blocks of a short reorg (on a
/// fast machine the 30 blocks of a test reorg are applied within a few milliseconds).
pub fn block_pause() -> Option<std::time::Duration> {
    static PAUSE: OnceLock<Option<u64>> = OnceLock::new();
    millis(&PAUSE, "FERRUMX_TEST_BLOCK_PAUSE_MS")
}

/// `FERRUMX_TEST_MERGE_PAUSE_MS=MS`: the merge of the catch-up's runs pauses this long
/// before each commit, so that a test can query the server while it answers from the
/// runs (on a test chain the whole merge takes milliseconds).
pub fn merge_pause() -> Option<std::time::Duration> {
    static PAUSE: OnceLock<Option<u64>> = OnceLock::new();
    millis(&PAUSE, "FERRUMX_TEST_MERGE_PAUSE_MS")
}

/// A duration in milliseconds from `name`, read once into `cell`.
fn millis(cell: &OnceLock<Option<u64>>, name: &str) -> Option<std::time::Duration> {
    cell.get_or_init(|| std::env::var(name).ok().and_then(|ms| ms.parse().ok()))
        .map(std::time::Duration::from_millis)
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| value == "1")
}

fn parse_size(value: Option<String>) -> Option<usize> {
    value?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_numbers_or_nothing() {
        assert_eq!(parse_size(Some("65536".into())), Some(65536));
        assert_eq!(parse_size(Some("64k".into())), None);
        assert_eq!(parse_size(None), None);
    }
}
