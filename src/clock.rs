//! The server's clock: the wall clock, or a manual one that tests set.
//!
//! Everything in Eddy that asks "what time is it" asks the engine's
//! [`Clock`]: stamping `arrival_timestamp`, `now()` and `clock_timestamp()`
//! in queries, sliding windows deciding which steps are still in the window,
//! watermarks advancing on idle streams, and TTL. A server started with a
//! manual clock (`--manual-clock`, or `Config::manual_clock`) stands still
//! until `eddy_set_clock(ts)` or `eddy_advance_clock(interval)` moves it, so
//! window tests are deterministic and never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Why the clock could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// Only a manual clock can be set.
    #[error("the server runs on the system clock; start eddy with --manual-clock to set the time (for tests)")]
    NotManual,
    /// Time only moves forward.
    #[error("the clock only moves forward: it is at {now} and cannot go to {to}")]
    Backwards {
        /// The clock's time.
        now: String,
        /// The time asked for.
        to: String,
    },
}

/// The time source of one engine.
#[derive(Debug)]
pub struct Clock {
    /// Microseconds since the epoch, when the clock is manual.
    manual: Option<AtomicI64>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Arc<Self> {
        Arc::new(Self { manual: None })
    }

    /// A clock that stands at `start_micros` until moved.
    pub fn manual(start_micros: i64) -> Arc<Self> {
        Arc::new(Self { manual: Some(AtomicI64::new(start_micros)) })
    }

    /// Whether tests move this clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Now, in microseconds since the epoch.
    pub fn now_micros(&self) -> i64 {
        match &self.manual {
            Some(at) => at.load(Ordering::Acquire),
            None => chrono::Utc::now().timestamp_micros(),
        }
    }

    /// Moves a manual clock to `micros`.
    pub fn set(&self, micros: i64) -> Result<i64, ClockError> {
        let at = self.manual.as_ref().ok_or(ClockError::NotManual)?;
        let now = at.load(Ordering::Acquire);
        if micros < now {
            return Err(ClockError::Backwards { now: format_micros(now), to: format_micros(micros) });
        }
        at.store(micros, Ordering::Release);
        Ok(micros)
    }

    /// Moves a manual clock forward by `micros`.
    pub fn advance(&self, micros: i64) -> Result<i64, ClockError> {
        let at = self.manual.as_ref().ok_or(ClockError::NotManual)?;
        let now = at.load(Ordering::Acquire);
        self.set(now.saturating_add(micros))
    }
}

/// A timestamp in microseconds as PostgreSQL prints it.
pub fn format_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string())
        .unwrap_or_else(|| format!("{micros} us"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward_and_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_micros(), 1_000);
        assert_eq!(clock.advance(500).unwrap(), 1_500);
        assert!(matches!(clock.set(10), Err(ClockError::Backwards { .. })));
        assert!(matches!(Clock::system().advance(1), Err(ClockError::NotManual)));
    }
}
