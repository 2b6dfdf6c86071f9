//! The last minute of each relation's rows per second, sampled once a
//! second while the HTTP side runs, so that the status page draws its
//! sparklines as soon as it opens.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::server::Engine;

/// Samples kept per relation: a minute of rates needs one more.
const KEEP: usize = 61;
/// How often the counters are sampled.
const EVERY: Duration = Duration::from_secs(1);

/// A relation: its kind (`stream`, `table` or `view`) and name.
type Key = (&'static str, String);

/// Each relation's `(wall micros, rows)` samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<HashMap<Key, VecDeque<(i64, u64)>>>,
}

impl History {
    /// Samples every stream, table and view now; forgets dropped ones.
    pub fn sample(&self, engine: &Engine) {
        let now = crate::observe::wall_micros();
        let mut current: Vec<(Key, u64)> = Vec::new();
        current.extend(engine.catalog.streams().iter().map(|s| (("stream", s.def.name.clone()), s.traffic().rows())));
        current.extend(engine.catalog.tables().iter().map(|t| (("table", t.def.name.clone()), t.traffic().rows())));
        current.extend(engine.catalog.views().iter().map(|v| (("view", v.name().to_string()), v.rows_in())));
        let mut samples = self.samples.lock();
        samples.retain(|key, _| current.iter().any(|(k, _)| k == key));
        for (key, rows) in current {
            let series = samples.entry(key).or_default();
            series.push_back((now, rows));
            while series.len() > KEEP {
                series.pop_front();
            }
        }
    }

    /// Rows per second between consecutive samples of `kind` `name`, oldest
    /// first (empty until two samples).
    pub fn rates(&self, kind: &'static str, name: &str) -> Vec<f64> {
        let samples = self.samples.lock();
        let Some(series) = samples.get(&(kind, name.to_string())) else {
            return Vec::new();
        };
        let pairs = series.iter().zip(series.iter().skip(1));
        pairs
            .map(|((t0, r0), (t1, r1))| {
                let seconds = (t1 - t0) as f64 / 1e6;
                if seconds > 0.0 { r1.saturating_sub(*r0) as f64 / seconds } else { 0.0 }
            })
            .collect()
    }

    /// Samples every second until `stop`.
    pub async fn run(self: Arc<Self>, engine: Arc<Engine>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => self.sample(&engine),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_consecutive_samples() {
        let history = History::default();
        let key = ("stream", "s".to_string());
        history.samples.lock().insert(key, VecDeque::from(vec![(0, 0), (1_000_000, 500), (3_000_000, 1500)]));
        assert_eq!(history.rates("stream", "s"), vec![500.0, 500.0]);
        assert!(history.rates("stream", "other").is_empty());
    }
}
