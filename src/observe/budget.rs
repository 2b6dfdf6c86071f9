//! The state memory budget (`--max-state-memory-mb`): how much the views'
//! and tables' state may hold before writes are refused.
//!
//! The engine sums every view's and table's state estimate once per
//! [`MEASURE_EVERY`] and records it here; a write that adds rows (INSERT,
//! COPY, UPDATE, a Kafka batch) checks it first. Past the limit, INSERT,
//! COPY and UPDATE fail with 53200 and Kafka consumers pause, keeping their
//! offsets, until the state shrinks (a view dropped, window steps expired,
//! rows deleted) or the limit is raised. Reads, DELETE, TRUNCATE and DDL
//! are never refused, so that an operator can always make room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the engine measures the state.
pub const MEASURE_EVERY: Duration = Duration::from_millis(500);

/// The budget and the last measurement.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    /// The limit in bytes; 0 is none.
    limit: AtomicU64,
    /// The state's bytes at the last measurement.
    used: AtomicU64,
}

/// A write refused because the state is over its budget (SQLSTATE 53200).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "out of state memory: the views and tables hold about {} MiB, over --max-state-memory-mb ({} MiB); drop views or give them a TTL, delete table rows, or raise the limit",
    .used / MIB,
    .limit / MIB
)]
pub struct OverBudget {
    /// Bytes held at the last measurement.
    pub used: u64,
    /// The limit.
    pub limit: u64,
}

const MIB: u64 = 1024 * 1024;

impl MemoryBudget {
    /// Sets the limit in bytes (`None`: no limit).
    pub fn set_limit(&self, bytes: Option<u64>) {
        self.limit.store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// The limit in bytes, if any.
    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|l| *l > 0)
    }

    /// Records a measurement of the state's bytes.
    pub fn record(&self, used: u64) {
        self.used.store(used, Ordering::Relaxed);
    }

    /// The state's bytes at the last measurement.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether a write that adds state may go ahead.
    pub fn check(&self) -> Result<(), OverBudget> {
        let used = self.used();
        match self.limit() {
            Some(limit) if used > limit => Err(OverBudget { used, limit }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_past_a_limit() {
        let budget = MemoryBudget::default();
        budget.record(10 * MIB);
        assert!(budget.check().is_ok(), "no limit");
        budget.set_limit(Some(8 * MIB));
        let refused = budget.check().expect_err("over");
        assert_eq!((refused.used, refused.limit), (10 * MIB, 8 * MIB));
        assert!(refused.to_string().contains("about 10 MiB, over --max-state-memory-mb (8 MiB)"), "{refused}");
        budget.record(8 * MIB);
        assert!(budget.check().is_ok(), "at the limit");
        budget.set_limit(None);
        budget.record(100 * MIB);
        assert!(budget.check().is_ok(), "limit lifted");
    }
}
