//! PostgreSQL's LISTEN and NOTIFY: channels, and a mailbox per session.
//!
//! A NOTIFY puts its notification in the [`Mailbox`] of every session that
//! LISTENs on the channel, and wakes it. The mailbox is drained by the wire
//! layer: at the end of each statement of its own session, and, while the
//! session is idle, as soon as something arrives (`crate::pgwire::serve`).
//! So psql prints it after its next command, and PDO's `pgsqlGetNotify`
//! gets it while it waits.
//!
//! A NOTIFY never waits for a listener: a mailbox holds at most
//! [`MAILBOX_MAX`] notifications, and one that is full loses the new ones
//! (counted in [`Mailbox::lost`]) instead of slowing the sender or growing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::PushError;
use crate::stream::change::ChangeBatch;

/// PostgreSQL's limit: a payload must be shorter than 8000 bytes.
pub const PAYLOAD_MAX_BYTES: usize = 8000;
/// Notifications a session may have waiting before new ones are lost.
pub const MAILBOX_MAX: usize = 10_000;
/// PostgreSQL truncates identifiers to 63 bytes; a channel is one.
const CHANNEL_MAX_BYTES: usize = 63;

/// One notification, as a NotificationResponse carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The sending session's process id (0 for a view's notification).
    pub pid: i32,
    /// The channel.
    pub channel: String,
    /// The payload (may be empty).
    pub payload: String,
}

/// A session's waiting notifications.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Notification>>,
    arrived: tokio::sync::Notify,
    lost: AtomicU64,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Leaves `n` for the session, unless the mailbox is full.
    fn deliver(&self, n: Notification) {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= MAILBOX_MAX {
                self.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.push_back(n);
        }
        self.arrived.notify_one();
    }

    /// Every waiting notification, oldest first.
    pub fn take(&self) -> Vec<Notification> {
        self.queue.lock().drain(..).collect()
    }

    /// Resolves once a notification has arrived since the last wake-up.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// How many notifications were lost because the mailbox was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Who listens on which channel.
#[derive(Debug, Default)]
pub struct Notifier {
    channels: Mutex<HashMap<String, Vec<Arc<Mailbox>>>>,
}

impl Notifier {
    /// Starts delivering `channel`'s notifications to `mailbox` (again is a no-op).
    pub fn listen(&self, channel: &str, mailbox: &Arc<Mailbox>) -> Result<(), PushError> {
        let channel = channel_name(channel)?;
        let mut channels = self.channels.lock();
        let listeners = channels.entry(channel).or_default();
        if !listeners.iter().any(|m| Arc::ptr_eq(m, mailbox)) {
            listeners.push(mailbox.clone());
        }
        Ok(())
    }

    /// Stops delivering `channel` (every channel, with `None`) to `mailbox`.
    pub fn unlisten(&self, channel: Option<&str>, mailbox: &Arc<Mailbox>) {
        let mut channels = self.channels.lock();
        channels.retain(|name, listeners| {
            if channel.is_none_or(|c| c == name) {
                listeners.retain(|m| !Arc::ptr_eq(m, mailbox));
            }
            !listeners.is_empty()
        });
    }

    /// The channels `mailbox` listens on, sorted.
    pub fn listening(&self, mailbox: &Arc<Mailbox>) -> Vec<String> {
        let channels = self.channels.lock();
        let mut names: Vec<String> = channels
            .iter()
            .filter(|(_, listeners)| listeners.iter().any(|m| Arc::ptr_eq(m, mailbox)))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Whether anyone listens on `channel`.
    pub fn has_listeners(&self, channel: &str) -> bool {
        self.channels.lock().contains_key(channel)
    }

    /// Sends `payload` on `channel` from the session `pid`; returns how many
    /// sessions it reached.
    pub fn notify(&self, pid: i32, channel: &str, payload: &str) -> Result<usize, PushError> {
        let channel = channel_name(channel)?;
        if payload.len() >= PAYLOAD_MAX_BYTES {
            return Err(PushError::PayloadTooLong { max: PAYLOAD_MAX_BYTES });
        }
        let listeners = self.channels.lock().get(&channel).cloned().unwrap_or_default();
        let n = Notification { pid, channel, payload: payload.to_string() };
        for mailbox in &listeners {
            mailbox.deliver(n.clone());
        }
        Ok(listeners.len())
    }
}

/// A view's notification for one epoch's `changes`: the changed rows as
/// JSON, `{"view": ..., "epoch": ..., "changes": [{"diff": -1, ...}, ...]}`;
/// when that would not fit a payload, only their count,
/// `{"view": ..., "epoch": ..., "changed": n}`.
pub fn changes_payload(view: &str, changes: &ChangeBatch) -> String {
    let view = serde_json::Value::from(view);
    let rows = json_rows(changes);
    let text = format!(r#"{{"view":{view},"epoch":{},"changes":[{}]}}"#, changes.epoch, rows.join(","));
    if text.len() < PAYLOAD_MAX_BYTES {
        return text;
    }
    format!(r#"{{"view":{view},"epoch":{},"changed":{}}}"#, changes.epoch, changes.len())
}

/// Each changed row as a JSON object: `diff`, then the columns in order.
fn json_rows(changes: &ChangeBatch) -> Vec<String> {
    let rows = super::json::JsonRows::new(&changes.rows);
    let columns: Vec<usize> = (0..changes.rows.num_columns()).collect();
    (0..changes.rows.num_rows())
        .map(|i| rows.object(i, &columns, &format!(r#""diff":{}"#, changes.weights.value(i))))
        .collect()
}

/// A channel's name as PostgreSQL keeps it: not empty, at most 63 bytes.
fn channel_name(channel: &str) -> Result<String, PushError> {
    if channel.is_empty() {
        return Err(PushError::EmptyChannel);
    }
    let mut end = channel.len().min(CHANNEL_MAX_BYTES);
    while !channel.is_char_boundary(end) {
        end -= 1;
    }
    Ok(channel[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_to_listeners_only_until_they_unlisten() {
        let notifier = Notifier::default();
        let (a, b) = (Mailbox::new(), Mailbox::new());
        notifier.listen("orders", &a).unwrap();
        notifier.listen("orders", &a).unwrap();
        notifier.listen("other", &b).unwrap();
        assert_eq!(notifier.notify(7, "orders", "hi").unwrap(), 1);
        assert_eq!(a.take(), vec![Notification { pid: 7, channel: "orders".into(), payload: "hi".into() }]);
        assert!(b.take().is_empty());
        assert_eq!(notifier.listening(&a), vec!["orders".to_string()]);
        notifier.unlisten(None, &a);
        assert_eq!(notifier.notify(7, "orders", "again").unwrap(), 0);
        assert!(a.take().is_empty());
        assert!(!notifier.has_listeners("orders"));
    }

    #[test]
    fn a_views_changes_as_json_or_as_a_count() {
        use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Utf8, true),
            Field::new("total", DataType::Int64, true),
        ]));
        let batch = |c: &str, t: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec![c])), Arc::new(Int64Array::from(vec![t]))],
            )
            .unwrap()
        };
        let changes = ChangeBatch::of(&batch("ann", 10), &batch("ann", 25), 3).unwrap();
        assert_eq!(
            changes_payload("totals", &changes),
            r#"{"view":"totals","epoch":3,"changes":[{"diff":-1,"customer":"ann","total":10},{"diff":1,"customer":"ann","total":25}]}"#
        );
        let many = ChangeBatch::inserts(
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec!["x"; 500])), Arc::new(Int64Array::from(vec![1; 500]))],
            )
            .unwrap(),
            4,
        );
        assert_eq!(changes_payload("totals", &many), r#"{"view":"totals","epoch":4,"changed":500}"#);
    }

    #[test]
    fn refuses_long_payloads_and_bounds_the_mailbox() {
        let notifier = Notifier::default();
        let a = Mailbox::new();
        notifier.listen("c", &a).unwrap();
        let long = "x".repeat(PAYLOAD_MAX_BYTES);
        assert!(matches!(notifier.notify(1, "c", &long), Err(PushError::PayloadTooLong { .. })));
        assert!(matches!(notifier.notify(1, "", "p"), Err(PushError::EmptyChannel)));
        for _ in 0..MAILBOX_MAX + 5 {
            notifier.notify(1, "c", "p").unwrap();
        }
        assert_eq!(a.take().len(), MAILBOX_MAX);
        assert_eq!(a.lost(), 5);
    }
}
