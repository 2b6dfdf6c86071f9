//! Stopping a running statement: a CancelRequest (psql's Ctrl-C, PDO's
//! cancel), or `statement_timeout`. Both end the statement with 57014
//! `query_canceled`, as in PostgreSQL, and the session goes on.
//!
//! A statement runs under [`Session::guard`] (or [`Session::arm`]'s
//! [`Stop`], which a result streaming to the client keeps until its last
//! row), racing it against the session's cancel token and its timeout; dropping the statement's future
//! stops DataFusion's work, which yields between batches. A write already
//! admitted to the views runs to the end in its own task (see
//! `crate::ingest::write_batches`), so a cancel never applies half a write.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::error::{EddyError, Result};

/// A backend process id and its secret key, as the client was told them.
pub type CancelKey = (i32, Vec<u8>);

/// The sessions a CancelRequest may name, by their key.
#[derive(Debug, Default)]
pub struct Cancels {
    sessions: Mutex<HashMap<CancelKey, Weak<Session>>>,
}

impl Cancels {
    /// Records that `key` names `session`.
    pub fn register(&self, key: CancelKey, session: &Arc<Session>) {
        self.sessions.lock().insert(key, Arc::downgrade(session));
    }

    /// Forgets `key` (its connection ended).
    pub fn forget(&self, key: &CancelKey) {
        self.sessions.lock().remove(key);
    }

    /// Cancels the statement the session of `key` is running; false if no
    /// session has that key (a wrong secret, or one that ended).
    pub fn cancel(&self, key: &CancelKey) -> bool {
        let session = self.sessions.lock().get(key).and_then(Weak::upgrade);
        session.map(|s| s.cancel_running()).is_some()
    }
}

/// PostgreSQL's spelling of a `statement_timeout`: milliseconds, or a
/// number with a unit (`us`, `ms`, `s`, `min`, `h`, `d`); `0` is none.
pub fn parse_timeout(text: &str) -> Option<Option<Duration>> {
    let text = text.trim().trim_matches('\'');
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit.trim().to_lowercase().as_str() {
        "" | "ms" => number,
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return None,
    };
    Some((millis > 0.0).then(|| Duration::from_micros((millis * 1000.0) as u64)))
}

/// What stops a statement: the session's cancel token (a CancelRequest)
/// and its `statement_timeout` deadline. A result that streams to the
/// client after its statement returned keeps watching it until its last
/// row.
#[derive(Debug, Clone)]
pub struct Stop {
    token: CancellationToken,
    deadline: Option<tokio::time::Instant>,
}

impl Stop {
    /// Runs `statement` until it ends, or the statement is cancelled or
    /// times out.
    pub async fn run<T>(&self, statement: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            outcome = statement => outcome,
            stopped = self.stopped() => Err(stopped),
        }
    }

    /// Waits for a cancel or the deadline, and says which came.
    pub async fn stopped(&self) -> EddyError {
        let expired = async {
            match self.deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.token.cancelled() => EddyError::Canceled("canceling statement due to user request".into()),
            _ = expired => EddyError::Canceled("canceling statement due to statement timeout".into()),
        }
    }
}

impl Session {
    /// Runs a statement until it ends, is cancelled, or passes the
    /// session's `statement_timeout`.
    pub async fn guard<T>(&self, statement: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.arm().run(statement).await
    }

    /// Starts watching a new statement: a CancelRequest from now on cancels
    /// it, and its `statement_timeout` runs from now.
    pub fn arm(&self) -> Stop {
        let token = CancellationToken::new();
        *self.running_token.lock() = token.clone();
        let timeout = self.setting("statement_timeout").and_then(|(_, v)| parse_timeout(&v)).flatten();
        Stop { token, deadline: timeout.map(|t| tokio::time::Instant::now() + t) }
    }

    /// Cancels the running statement, if any (a CancelRequest).
    pub fn cancel_running(&self) {
        self.running_token.lock().cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_postgresql_reads_them() {
        assert_eq!(parse_timeout("0"), Some(None));
        assert_eq!(parse_timeout("2000"), Some(Some(Duration::from_secs(2))));
        assert_eq!(parse_timeout("2s"), Some(Some(Duration::from_secs(2))));
        assert_eq!(parse_timeout("'1.5 s'"), Some(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout("1min"), Some(Some(Duration::from_secs(60))));
        assert_eq!(parse_timeout("soon"), None);
    }
}
