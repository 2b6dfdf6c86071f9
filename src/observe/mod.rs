//! What the server counts about itself: rows and bytes in, apply and query
//! latencies, connections. Each room keeps its own figures with these types
//! (a stream its [`Traffic`], a view its apply [`Histogram`]); the SQL
//! relations (`pipelinedb.streams`, `pipeline_kafka.consumers`) and
//! `GET /metrics` (`crate::http`) read the same atomics, so there is one
//! source of truth.
//!
//! This room depends on nothing else in Eddy, so that every room may use it.
//!
//! The figures only the HTTP side shows (bytes, last-change times and the
//! histograms) can be switched off process-wide ([`set_enabled`]): `eddy
//! --http off` does, and the ingest benchmark measures their cost that way.
//! Row counts are always kept; the SQL relations need them.

pub mod budget;
pub mod histogram;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;

pub use budget::{MemoryBudget, OverBudget};
pub use histogram::{Histogram, HistogramSnapshot};

/// Whether the HTTP-only figures are kept (see the module's comment).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Keeps (`true`, the default) or stops keeping the HTTP-only figures.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the HTTP-only figures are kept.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Microseconds since the Unix epoch, by the wall clock (not the server's
/// clock, which tests may stop).
pub fn wall_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The bytes of `batch`'s rows as Arrow holds them: the slices of its
/// columns' buffers, not the whole buffers a slice may share.
pub fn batch_bytes(batch: &RecordBatch) -> u64 {
    batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64).sum()
}

/// Rows and bytes through a relation, and when the last came.
#[derive(Debug, Default)]
pub struct Traffic {
    rows: AtomicU64,
    bytes: AtomicU64,
    /// [`wall_micros`] of the last count; 0 before the first.
    last: AtomicI64,
}

impl Traffic {
    /// Counts `rows` rows of `bytes` bytes, now.
    pub fn count(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        if enabled() {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.last.store(wall_micros(), Ordering::Relaxed);
        }
    }

    /// Counts the rows and bytes of `batch`.
    pub fn count_batch(&self, batch: &RecordBatch) {
        let bytes = if enabled() { batch_bytes(batch) } else { 0 };
        self.count(batch.num_rows() as u64, bytes);
    }

    /// Rows so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// When the last rows came ([`wall_micros`]), if any have.
    pub fn last(&self) -> Option<i64> {
        Some(self.last.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// The kinds of statement whose latency is kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `SELECT`, `SHOW`, `COPY ... TO`, `FETCH`.
    Read,
    /// `INSERT`, `UPDATE`, `DELETE`.
    Write,
    /// `COPY ... FROM`.
    Copy,
    /// `CREATE`, `DROP`, `TRUNCATE` and the other catalog changes.
    Ddl,
    /// Everything else: `SET`, `BEGIN`, `LISTEN`, ...
    Other,
}

impl QueryKind {
    /// Every kind, in the order [`Sessions::queries`] keeps them.
    pub const ALL: [QueryKind; 5] = [Self::Read, Self::Write, Self::Copy, Self::Ddl, Self::Other];

    /// The label value: `read`, `write`, `copy`, `ddl` or `other`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Copy => "copy",
            Self::Ddl => "ddl",
            Self::Other => "other",
        }
    }
}

/// Connections and statements, server-wide.
#[derive(Debug)]
pub struct Sessions {
    /// When the server started ([`wall_micros`]).
    pub started: i64,
    current: AtomicI64,
    refused: AtomicU64,
    queries: [Histogram; 5],
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            started: wall_micros(),
            current: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            queries: std::array::from_fn(|_| Histogram::latency()),
        }
    }
}

/// Counts a connection while it lives.
#[derive(Debug)]
pub struct ConnectionGuard<'a>(&'a Sessions);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Sessions {
    /// Counts a connection served until the guard drops.
    pub fn connected(&self) -> ConnectionGuard<'_> {
        self.current.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Counts a connection refused (too many).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections served now.
    pub fn current(&self) -> i64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Connections refused so far.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a statement of `kind` that took `elapsed`.
    pub fn query_done(&self, kind: QueryKind, elapsed: Duration) {
        self.queries[kind as usize].observe_duration(elapsed);
    }

    /// The latency histogram of `kind`.
    pub fn queries(&self, kind: QueryKind) -> &Histogram {
        &self.queries[kind as usize]
    }
}

/// The process's resident memory in bytes, from `/proc/self/status`
/// (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_counts_rows_bytes_and_time() {
        let t = Traffic::default();
        assert_eq!(t.last(), None);
        t.count(3, 24);
        t.count(2, 16);
        assert_eq!((t.rows(), t.bytes()), (5, 40));
        assert!(t.last().is_some_and(|at| at > 0));
    }

    #[test]
    fn connections_are_counted_while_they_live() {
        let s = Sessions::default();
        {
            let _a = s.connected();
            let _b = s.connected();
            assert_eq!(s.current(), 2);
        }
        assert_eq!(s.current(), 0);
        s.query_done(QueryKind::Ddl, Duration::from_millis(1));
        assert_eq!(s.queries(QueryKind::Ddl).snapshot().count, 1);
        assert_eq!(s.queries(QueryKind::Read).snapshot().count, 0);
    }
}
