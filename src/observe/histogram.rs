//! A histogram with fixed buckets, kept in atomics: observing is a few
//! relaxed adds and never takes a lock, so the hot paths (a view's apply, an
//! fsync) can afford it. `GET /metrics` reads a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets for latencies, in seconds: 50 µs to 10 s.
pub const LATENCY_SECONDS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for counts of things (records in a group commit): 1 to 1024.
pub const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Observations counted into buckets by upper bound, with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then one for the values above the last (`+Inf`).
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as the bits of an `f64`.
    sum: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// The sum of the observations.
    pub sum: f64,
    /// How many there were.
    pub count: u64,
    /// `(upper bound, observations at or below it)`, cumulative, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { bounds, counts, sum: AtomicU64::new(0f64.to_bits()) }
    }

    /// An empty latency histogram ([`LATENCY_SECONDS`]).
    pub fn latency() -> Self {
        Self::new(LATENCY_SECONDS)
    }

    /// Counts one observation of `value`.
    pub fn observe(&self, value: f64) {
        if !super::enabled() {
            return;
        }
        let bucket = self.bounds.partition_point(|b| *b < value);
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let mut current = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts one observation of `elapsed`, in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// The histogram now. Each field is read on its own, so a snapshot taken
    /// while others observe may be off by those few observations.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            total += count.load(Ordering::Relaxed);
            buckets.push((*bound, total));
        }
        let above = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        HistogramSnapshot { sum: f64::from_bits(self.sum.load(Ordering::Relaxed)), count: total + above, buckets }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::latency()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new(SIZES);
        for v in [1.0, 1.0, 3.0, 4.0, 5000.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum, 5009.0);
        assert_eq!(s.buckets[0], (1.0, 2));
        assert_eq!(s.buckets[1], (2.0, 2));
        assert_eq!(s.buckets[2], (4.0, 4));
        assert_eq!(s.buckets.last(), Some(&(1024.0, 4)));
    }

    #[test]
    fn durations_are_seconds() {
        let h = Histogram::latency();
        h.observe_duration(Duration::from_millis(3));
        let s = h.snapshot();
        assert!((s.sum - 0.003).abs() < 1e-12);
        assert_eq!(s.buckets.iter().find(|(b, _)| *b == 0.0025).map(|b| b.1), Some(0));
        assert_eq!(s.buckets.iter().find(|(b, _)| *b == 0.005).map(|b| b.1), Some(1));
    }

    #[test]
    fn concurrent_observations_all_count() {
        let h = std::sync::Arc::new(Histogram::new(SIZES));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| h.observe(2.0)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap_or(()));
        let s = h.snapshot();
        assert_eq!((s.count, s.sum), (4000, 8000.0));
    }
}
