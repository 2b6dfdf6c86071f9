//! What the data directory's writers count about themselves: each
//! checkpoint's duration, pause and bytes, the last success and failure,
//! and the insert log's fsync latency and group-commit sizes. `GET /metrics`
//! and the status page read it (`crate::http`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::CheckpointStats;
use crate::observe::{Histogram, histogram::SIZES, wall_micros};

/// Checkpoint and insert-log figures.
#[derive(Debug)]
pub struct Telemetry {
    /// Whole checkpoints, in seconds.
    pub duration: Histogram,
    /// How long writes waited at each checkpoint's barrier, in seconds.
    pub paused: Histogram,
    bytes: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    /// [`wall_micros`] of the last success; 0 before the first.
    last_success: AtomicI64,
    last_error: Mutex<Option<(i64, String)>>,
    /// Each `fdatasync` of the insert log, in seconds.
    pub fsync: Histogram,
    /// Records made durable by each group commit.
    pub group_commit: Histogram,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            duration: Histogram::latency(),
            paused: Histogram::latency(),
            bytes: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_success: AtomicI64::new(0),
            last_error: Mutex::new(None),
            fsync: Histogram::latency(),
            group_commit: Histogram::new(SIZES),
        }
    }
}

impl Telemetry {
    /// Counts a checkpoint that completed.
    pub fn succeeded(&self, stats: &CheckpointStats) {
        self.duration.observe_duration(stats.total);
        self.paused.observe_duration(stats.paused);
        self.bytes.fetch_add(stats.bytes_written, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.last_success.store(wall_micros(), Ordering::Relaxed);
    }

    /// Counts a checkpoint that failed, and why.
    pub fn failed(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some((wall_micros(), why));
    }

    /// Bytes of state written by checkpoints so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Checkpoints completed so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Checkpoints failed so far.
    pub fn failed_total(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// When the last checkpoint completed ([`wall_micros`]).
    pub fn last_success(&self) -> Option<i64> {
        Some(self.last_success.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// When the last checkpoint failed, and why.
    pub fn last_error(&self) -> Option<(i64, String)> {
        self.last_error.lock().clone()
    }
}
