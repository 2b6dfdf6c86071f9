//! One client connection's state: its settings, a COPY in progress, and
//! whether it has started and is busy (for the connection's timeouts).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::engine::Engine;
use crate::error::Result;
use crate::ingest::Commit;
use crate::ingest::copy::CopyIn;
use crate::ingest::transaction::Transaction;
use crate::query::functions::SERVER_VERSION;
use crate::sql::SqlError;
use crate::sql::statement::prepare::Kept;

/// Settings every session starts with, as `(name, display name, value)`.
const DEFAULT_SETTINGS: &[(&str, &str, &str)] = &[
    ("application_name", "application_name", ""),
    ("client_encoding", "client_encoding", "UTF8"),
    ("datestyle", "DateStyle", "ISO, MDY"),
    ("default_table_access_method", "default_table_access_method", "heap"),
    ("default_transaction_isolation", "default_transaction_isolation", "read committed"),
    ("extra_float_digits", "extra_float_digits", "1"),
    ("integer_datetimes", "integer_datetimes", "on"),
    ("intervalstyle", "IntervalStyle", "postgres"),
    ("is_superuser", "is_superuser", "on"),
    ("max_identifier_length", "max_identifier_length", "63"),
    ("search_path", "search_path", "\"$user\", public"),
    ("server_encoding", "server_encoding", "UTF8"),
    ("server_version", "server_version", SERVER_VERSION),
    ("server_version_num", "server_version_num", "150000"),
    ("standard_conforming_strings", "standard_conforming_strings", "on"),
    ("statement_timeout", "statement_timeout", "0"),
    ("synchronous_commit", "synchronous_commit", "on"),
    ("timezone", "TimeZone", "UTC"),
    ("transaction_isolation", "transaction_isolation", "read committed"),
];

/// A NOTICE or WARNING for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `NOTICE` or `WARNING`.
    pub severity: &'static str,
    /// Its SQLSTATE.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// PostgreSQL's DETAIL line, if any.
    pub detail: Option<String>,
}

/// A client's session.
#[derive(Debug)]
pub struct Session {
    engine: Arc<Engine>,
    settings: Mutex<BTreeMap<String, String>>,
    /// The COPY FROM STDIN being received, if any.
    pub copy: Mutex<Option<CopyIn>>,
    /// Notices and warnings for the client, sent with the statement's result.
    notices: Mutex<Vec<Notice>>,
    /// The user who connected, and whether they may only read.
    user: Mutex<(String, bool)>,
    /// Statements kept by SQL `PREPARE`, by name.
    prepared: Mutex<HashMap<String, Kept>>,
    /// Names of the statements Parse messages prepared (kept by pgwire), so
    /// that `DEALLOCATE ALL` and `DISCARD ALL` can free them.
    parsed: Mutex<std::collections::BTreeSet<String>>,
    /// The savepoints of the transaction block, oldest first, with the
    /// position in its writes each marks.
    savepoints: Mutex<Vec<(String, u64)>>,
    /// The transaction block's uncommitted writes, while one is open.
    transaction: Mutex<Option<Arc<Transaction>>>,
    /// Whether startup (authentication included) has finished.
    started: AtomicBool,
    /// The key given to the client for CancelRequests.
    cancel_key: Mutex<Option<super::cancel::CancelKey>>,
    /// Statements running now, and when the last one ended (for the idle
    /// session timeout).
    running: AtomicU32,
    idle_since: Mutex<Instant>,
    /// Cancels the running statement (see `cancel.rs`).
    pub(super) running_token: Mutex<tokio_util::sync::CancellationToken>,
    /// The process id the client was given at startup.
    pid: AtomicI32,
    /// Notifications for this session's LISTENs.
    mailbox: Arc<crate::push::Mailbox>,
    /// Cursors open on SUBSCRIBE or a query, by name.
    pub cursors: Mutex<HashMap<String, crate::sql::statement::subscribe::Cursor>>,
}

/// A statement in progress; the session is busy until it is dropped. A
/// result that streams to the client carries one until its last row.
#[derive(Debug)]
pub struct Busy(Arc<Session>);

impl Busy {
    /// The busy session.
    pub fn session(&self) -> &Arc<Session> {
        &self.0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = Instant::now();
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Session {
    /// A new session on `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        let mut settings: BTreeMap<String, String> =
            DEFAULT_SETTINGS.iter().map(|(k, _, v)| (k.to_string(), v.to_string())).collect();
        if let Some(t) = engine.config.statement_timeout {
            settings.insert("statement_timeout".into(), t.as_millis().to_string());
        }
        Self {
            engine,
            settings: Mutex::new(settings),
            copy: Mutex::new(None),
            notices: Mutex::new(Vec::new()),
            user: Mutex::new((String::new(), false)),
            prepared: Mutex::new(HashMap::new()),
            parsed: Mutex::new(std::collections::BTreeSet::new()),
            savepoints: Mutex::new(Vec::new()),
            transaction: Mutex::new(None),
            started: AtomicBool::new(false),
            cancel_key: Mutex::new(None),
            running: AtomicU32::new(0),
            idle_since: Mutex::new(Instant::now()),
            running_token: Mutex::new(tokio_util::sync::CancellationToken::new()),
            pid: AtomicI32::new(0),
            mailbox: crate::push::Mailbox::new(),
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// Records that startup finished: the client is authenticated, and may
    /// cancel its statements with `pid` and `secret`.
    pub fn mark_started(self: &Arc<Self>, pid: i32, secret: Vec<u8>) {
        self.started.store(true, Ordering::Relaxed);
        self.pid.store(pid, Ordering::Relaxed);
        self.engine.cancels.register((pid, secret.clone()), self);
        *self.cancel_key.lock() = Some((pid, secret));
    }

    /// The process id the client was given (0 before startup ends).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Where this session's notifications wait.
    pub fn mailbox(&self) -> &Arc<crate::push::Mailbox> {
        &self.mailbox
    }

    /// Forgets the session's cancel key, LISTENs and cursors (its connection ended).
    pub fn end(&self) {
        // An open transaction block is rolled back: its claims go.
        self.end_transaction();
        self.engine.notifier.unlisten(None, &self.mailbox);
        self.cursors.lock().clear();
        if let Some(key) = self.cancel_key.lock().take() {
            self.engine.cancels.forget(&key);
        }
    }

    /// `DISCARD ALL`: closes the cursors, stops the LISTENs, forgets the
    /// SQL-prepared statements, and puts back the settings that change what
    /// the next user of a pooled connection gets: `synchronous_commit` and
    /// `statement_timeout`. Other settings (those the client sent at
    /// startup among them) stay.
    pub fn discard_all(&self) {
        self.engine.notifier.unlisten(None, &self.mailbox);
        self.cursors.lock().clear();
        self.prepared.lock().clear();
        let mut settings = self.settings.lock();
        for key in ["synchronous_commit", "statement_timeout"] {
            if let Some((_, _, default)) = DEFAULT_SETTINGS.iter().find(|(k, _, _)| *k == key) {
                settings.insert(key.to_string(), default.to_string());
            }
        }
        if let Some(t) = self.engine.config.statement_timeout {
            settings.insert("statement_timeout".into(), t.as_millis().to_string());
        }
    }

    /// Whether startup has finished.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Marks the session busy with a statement until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.running.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// How long the session has waited for its client with no statement
    /// running; `None` while one runs.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        match self.running.load(Ordering::Relaxed) {
            0 => Some(self.idle_since.lock().elapsed()),
            _ => None,
        }
    }

    /// Keeps a `PREPARE`d statement; its name must be free.
    pub fn keep_prepared(&self, name: String, kept: Kept) -> Result<(), SqlError> {
        let mut prepared = self.prepared.lock();
        if prepared.contains_key(&name) {
            return Err(SqlError::DuplicatePrepared(name));
        }
        prepared.insert(name, kept);
        Ok(())
    }

    /// A `PREPARE`d statement.
    pub fn prepared(&self, name: &str) -> Option<Kept> {
        self.prepared.lock().get(name).cloned()
    }

    /// Forgets one `PREPARE`d statement, or all of them with `None`; the
    /// error is the unknown name.
    pub fn forget_prepared(&self, name: Option<&str>) -> Result<(), String> {
        let mut prepared = self.prepared.lock();
        match name {
            None => prepared.clear(),
            Some(n) if prepared.remove(n).is_none() => return Err(n.to_string()),
            Some(_) => {}
        }
        Ok(())
    }

    /// Notes a statement a Parse message prepared under `name`.
    pub fn note_parsed(&self, name: &str) {
        if !name.is_empty() {
            self.parsed.lock().insert(name.to_string());
        }
    }

    /// Forgets a statement a Parse message prepared (closed or deallocated).
    pub fn forget_parsed(&self, name: &str) {
        self.parsed.lock().remove(name);
    }

    /// Forgets every statement Parse messages prepared; their names.
    pub fn take_parsed(&self) -> Vec<String> {
        std::mem::take(&mut *self.parsed.lock()).into_iter().collect()
    }

    /// `BEGIN`: opens a transaction block, whose writes wait for `COMMIT`
    /// (one already open stays open, as in PostgreSQL).
    pub fn begin_transaction(&self) {
        let mut transaction = self.transaction.lock();
        if transaction.is_none() {
            self.savepoints.lock().clear();
            *transaction = Some(Arc::new(Transaction::new()));
        }
    }

    /// The open transaction block, if any.
    pub fn transaction(&self) -> Option<Arc<Transaction>> {
        self.transaction.lock().clone()
    }

    /// Ends the transaction block (`COMMIT` applies what this returns;
    /// `ROLLBACK` drops it), forgetting its savepoints.
    pub fn end_transaction(&self) -> Option<Arc<Transaction>> {
        self.savepoints.lock().clear();
        self.transaction.lock().take()
    }

    /// `SAVEPOINT name` (a name may repeat; the newest is the one found).
    pub fn set_savepoint(&self, name: String) {
        let mark = self.transaction().map_or(0, |t| t.mark());
        self.savepoints.lock().push((name, mark));
    }

    /// `RELEASE name` forgets the newest savepoint `name` and those after
    /// it; `ROLLBACK TO name` (`keep`) forgets those after it. Returns the
    /// position the savepoint marks; the error is the unknown name.
    pub fn release_savepoint(&self, name: &str, keep: bool) -> Result<u64, String> {
        let mut savepoints = self.savepoints.lock();
        let at = savepoints.iter().rposition(|(s, _)| s == name).ok_or_else(|| name.to_string())?;
        let mark = savepoints[at].1;
        savepoints.truncate(if keep { at + 1 } else { at });
        Ok(mark)
    }

    /// Records who connected (at startup).
    pub fn set_user(&self, name: String, read_only: bool) {
        *self.user.lock() = (name, read_only);
    }

    /// Fails with 42501 if the user may only read; `action` says what was refused.
    pub fn check_writable(&self, action: &'static str) -> Result<(), crate::auth::AuthError> {
        let user = self.user.lock();
        match user.1 {
            true => Err(crate::auth::AuthError::ReadOnly { user: user.0.clone(), action }),
            false => Ok(()),
        }
    }

    /// The shared engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Queues a warning for the client.
    pub fn warn(&self, message: String) {
        self.notices.lock().push(Notice { severity: "WARNING", code: "01000", message, detail: None });
    }

    /// Queues a NOTICE for the client, as PostgreSQL sends one
    /// (`drop cascades to view v`, `... already exists, skipping`).
    pub fn notice(&self, code: &'static str, message: String, detail: Option<String>) {
        self.notices.lock().push(Notice { severity: "NOTICE", code, message, detail });
    }

    /// The notices and warnings queued since the last call.
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut *self.notices.lock())
    }

    /// A setting's display name and value.
    pub fn setting(&self, name: &str) -> Option<(String, String)> {
        let key = name.to_lowercase();
        let value = self.settings.lock().get(&key).cloned()?;
        let display =
            DEFAULT_SETTINGS.iter().find(|(k, _, _)| *k == key).map_or(key.clone(), |(_, d, _)| d.to_string());
        Some((display, value))
    }

    /// How this session's inserts wait for the disk (`synchronous_commit`).
    pub fn commit_mode(&self) -> Commit {
        let value = self.settings.lock().get("synchronous_commit").map(|v| v.to_lowercase());
        match value.as_deref() {
            Some("off" | "false" | "no" | "0") => Commit::Async,
            _ => Commit::Sync,
        }
    }

    /// Every setting, in name order.
    pub fn settings(&self) -> Vec<(String, String)> {
        self.settings.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Sets (or with `None`, resets) a setting. Unknown names are kept, as
    /// PostgreSQL keeps custom `a.b` settings: clients set many on connect.
    pub fn set_setting(&self, name: &str, value: Option<String>) -> Result<()> {
        let key = name.to_lowercase();
        if key == "statement_timeout"
            && let Some(v) = &value
            && super::cancel::parse_timeout(v).is_none()
        {
            return Err(crate::sql::SqlError::InvalidParameter(format!(
                "invalid value for parameter \"statement_timeout\": \"{v}\"; use milliseconds or a unit, as in '2s'"
            ))
            .into());
        }
        if key == "synchronous_commit"
            && let Some(v) = &value
        {
            let v = v.to_lowercase();
            if !["on", "off", "local", "remote_write", "remote_apply", "true", "false", "yes", "no", "1", "0"]
                .contains(&v.as_str())
            {
                return Err(crate::sql::SqlError::InvalidParameter(format!(
                    "invalid value for parameter \"synchronous_commit\": \"{v}\"; use on or off"
                ))
                .into());
            }
        }
        let mut settings = self.settings.lock();
        match value {
            Some(v) => {
                settings.insert(key, v);
            }
            None if key == "all" => {
                *settings = DEFAULT_SETTINGS.iter().map(|(k, _, v)| (k.to_string(), v.to_string())).collect();
            }
            None => match DEFAULT_SETTINGS.iter().find(|(k, _, _)| *k == key) {
                Some((_, _, v)) => {
                    settings.insert(key, v.to_string());
                }
                None => {
                    settings.remove(&key);
                }
            },
        }
        Ok(())
    }
}
