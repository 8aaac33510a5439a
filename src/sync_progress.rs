//! What the block processor logs while it catches up: the progress line every few
//! seconds (rate, ETA, cache use), the summary at the end, with where the time went
//! (waiting for the daemon's blocks, applying them, writing them), and what compacting
//! the index after the initial sync gave back.

use crate::hashes::Height;
use crate::index::Compacted;
use crate::python::formatted_time;
use std::time::Duration;

/// Where catch-up time goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CatchUpTimes {
    /// Waiting for the daemon to serve blocks.
    pub waiting: Duration,
    pub applying: Duration,
    /// Writing them to the index (flushes and their commits).
    pub flushing: Duration,
}

/// The blocks from `from` to `to` being caught up with, and the figures of the last
/// interval.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub from: Height,
    pub to: Height,
    /// The block just applied.
    pub height: Height,
    /// Blocks and transactions applied in the interval, and how long it lasted.
    pub blocks: u64,
    pub txs: u64,
    pub interval: Duration,
    /// Since the catch-up began.
    pub elapsed: Duration,
    /// The catch-up cache: in use and its size, in bytes.
    pub pending_bytes: usize,
    pub cache_bytes: usize,
}

impl Progress {
    /// `height 120/500 (24.0%), 40 blocks/s, 9000 txs/s, ETA 9s, cache 12 MB / 1200 MB`.
    pub fn line(&self) -> String {
        let secs = self.interval.as_secs_f64().max(1e-3);
        let done = f64::from(self.height.blocks_after(self.from) + 1);
        let remaining = f64::from(self.to.blocks_after(self.height));
        let eta = self.elapsed.as_secs_f64() / done * remaining;
        format!(
            "height {}/{} ({:.1}%), {:.0} blocks/s, {:.0} txs/s, ETA {}, cache {} MB / {} MB",
            self.height,
            self.to,
            f64::from(self.height.to_u32()) * 100.0 / f64::from(self.to.to_u32().max(1)),
            self.blocks as f64 / secs,
            self.txs as f64 / secs,
            // ElectrumX's sync log writes its ETA with `formatted_time` too.
            formatted_time(eta.max(0.0) as u64, " "),
            self.pending_bytes >> 20,
            self.cache_bytes >> 20,
        )
    }
}

/// The line that ends a catch-up of `blocks` blocks and `txs` transactions.
pub fn summary_line(
    to: Height,
    blocks: u32,
    txs: u64,
    elapsed: Duration,
    times: CatchUpTimes,
    index_bytes: u64,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!(
        "caught up to height {to}: {blocks} blocks, {txs} txs in {secs:.1}s ({:.0} txs/s; \
         waiting for blocks {:.1}s, applying {:.1}s, writing {:.1}s), index {} MB",
        txs as f64 / secs,
        times.waiting.as_secs_f64(),
        times.applying.as_secs_f64(),
        times.flushing.as_secs_f64(),
        index_bytes >> 20
    )
}

/// The debug line for a few blocks applied once caught up.
pub fn blocks_line(to: Height, blocks: u32, elapsed: Duration, times: CatchUpTimes) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "height {to}: {blocks} block(s) in {:.1} ms (fetching {:.1}, applying {:.1}, writing {:.1})",
        ms(elapsed),
        ms(times.waiting),
        ms(times.applying),
        ms(times.flushing)
    )
}

/// The line that says what compacting the index after the initial sync gave back.
pub fn compacted_line(done: &Compacted, elapsed: Duration) -> String {
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    format!(
        "index compacted from {:.1} MB to {:.1} MB ({:.1} MB were free pages) in {:.1}s",
        mb(done.before),
        mb(done.after),
        mb(done.free),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_rate_eta_and_cache() {
        let progress = Progress {
            from: Height::new(101),
            to: Height::new(500),
            height: Height::new(200),
            blocks: 50,
            txs: 20_000,
            interval: Duration::from_secs(5),
            elapsed: Duration::from_secs(20),
            pending_bytes: 300 << 20,
            cache_bytes: 1200 << 20,
        };
        // 100 blocks done in 20 s, 300 left: 60 s.
        assert_eq!(
            progress.line(),
            "height 200/500 (40.0%), 10 blocks/s, 4000 txs/s, ETA 01m 00s, cache 300 MB / 1200 MB"
        );
    }

    #[test]
    fn a_zero_interval_does_not_divide_by_zero() {
        let progress = Progress {
            from: Height::GENESIS,
            to: Height::GENESIS,
            height: Height::GENESIS,
            blocks: 1,
            txs: 1,
            interval: Duration::ZERO,
            elapsed: Duration::ZERO,
            pending_bytes: 0,
            cache_bytes: 0,
        };
        assert!(
            progress
                .line()
                .starts_with("height 0/0 (0.0%), 1000 blocks/s")
        );
    }

    #[test]
    fn the_summary_says_where_the_time_went() {
        let times = CatchUpTimes {
            waiting: Duration::from_millis(1500),
            applying: Duration::from_millis(2500),
            flushing: Duration::from_millis(1000),
        };
        assert_eq!(
            summary_line(
                Height::new(2206),
                2206,
                5_000_000,
                Duration::from_secs(50),
                times,
                2 << 30
            ),
            "caught up to height 2206: 2206 blocks, 5000000 txs in 50.0s (100000 txs/s; \
             waiting for blocks 1.5s, applying 2.5s, writing 1.0s), index 2048 MB"
        );
        let done = Compacted {
            free: 2142 << 20,
            before: 4085 << 20,
            after: 1962 << 20,
        };
        // bench/scale/scale.py reads this line.
        assert_eq!(
            compacted_line(&done, Duration::from_millis(37_000)),
            "index compacted from 4085.0 MB to 1962.0 MB (2142.0 MB were free pages) in 37.0s"
        );
        assert_eq!(
            blocks_line(Height::new(7), 1, Duration::from_millis(5), times),
            "height 7: 1 block(s) in 5.0 ms (fetching 1500.0, applying 2500.0, writing 1000.0)"
        );
    }
}
