//! A lock-free latency histogram with fixed buckets, as Prometheus expects one: every
//! session records into the same histogram without a lock or a message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last bucket, +Inf, is implicit).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A consistent-enough reading of the histogram (each counter read once).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    /// (upper bound in seconds, observations at or below it), cumulative, ending with
    /// +Inf.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let mut total = 0;
        let mut cumulative = Vec::with_capacity(BUCKETS.len() + 1);
        let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
        for (bound, count) in bounds.zip(&self.counts) {
            total += count.load(Ordering::Relaxed);
            cumulative.push((bound, total));
        }
        LatencySnapshot {
            cumulative,
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: total,
        }
    }
}

impl LatencySnapshot {
    /// The bucket bound at or below which `quantile` (0-1) of the observations fall: an
    /// upper estimate, as precise as the buckets. `None` with no observations.
    pub fn quantile_bound(&self, quantile: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (quantile * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative
            .iter()
            .find(|(_, n)| *n >= rank)
            .map(|(bound, _)| *bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.snapshot().quantile_bound(0.5), None);
        histogram.observe(Duration::from_micros(200)); // <= 0.5 ms
        histogram.observe(Duration::from_micros(500)); // on the bound: <= 0.5 ms
        histogram.observe(Duration::from_millis(30)); // <= 50 ms
        histogram.observe(Duration::from_secs(60)); // +Inf
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.cumulative[0], (0.0005, 2));
        assert_eq!(snapshot.cumulative[5], (0.025, 2));
        assert_eq!(snapshot.cumulative[6], (0.05, 3));
        assert_eq!(snapshot.cumulative.last(), Some(&(f64::INFINITY, 4)));
        assert!((snapshot.sum_secs - 60.0307).abs() < 1e-9);
        assert_eq!(snapshot.quantile_bound(0.5), Some(0.0005));
        assert_eq!(snapshot.quantile_bound(0.75), Some(0.05));
        assert_eq!(snapshot.quantile_bound(0.99), Some(f64::INFINITY));
    }
}
