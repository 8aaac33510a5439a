//! When peers are tried: ElectrumX's timers, and the pause before the next try of a
//! peer that failed (exponential backoff) or was just verified (shortly before stale).

use std::time::Duration;

/// ElectrumX's peer timers: a peer verified within `stale` is good; failures are retried
/// after `wakeup * 2^tries`; a good peer is checked again shortly before it turns stale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerTimers {
    pub wakeup: Duration,
    pub stale: Duration,
}

impl PeerTimers {
    /// ElectrumX's: 300 s and 3 hours.
    pub const ELECTRUMX: PeerTimers = PeerTimers {
        wakeup: Duration::from_secs(300),
        stale: Duration::from_secs(3 * 3600),
    };

    /// The same timers `divisor` times faster (tests only).
    pub fn faster(divisor: u32) -> PeerTimers {
        let divisor = divisor.max(1);
        PeerTimers {
            wakeup: Self::ELECTRUMX.wakeup / divisor,
            stale: Self::ELECTRUMX.stale / divisor,
        }
    }

    /// How long to wait before the next try of a peer that has failed `try_count` times
    /// in a row (0: it was just verified, so check it again before it turns stale).
    pub fn retry_pause(&self, try_count: u32) -> Duration {
        if try_count == 0 {
            self.stale.saturating_sub(self.wakeup * 2)
        } else {
            self.wakeup.saturating_mul(1u32 << try_count.min(20))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::fixtures::*;

    #[test]
    fn retry_pauses_back_off_and_good_peers_are_checked_before_stale() {
        assert_eq!(TIMERS.retry_pause(0), Duration::from_secs(3 * 3600 - 600));
        assert_eq!(TIMERS.retry_pause(1), Duration::from_secs(600));
        assert_eq!(TIMERS.retry_pause(2), Duration::from_secs(1200));
        assert_eq!(TIMERS.retry_pause(3), Duration::from_secs(2400));
        let fast = PeerTimers::faster(1000);
        assert_eq!(fast.retry_pause(1), Duration::from_millis(600));
        assert_eq!(fast.stale, Duration::from_millis(10_800));
    }
}
