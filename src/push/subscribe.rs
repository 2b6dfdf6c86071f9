//! SUBSCRIBE, Materialize's shape: a relation's changes, epoch by epoch.
//!
//! A running view keeps its [`Subscribers`]. Its operator task publishes
//! each epoch's changes to them right after merging (so a subscription
//! sees epochs in the order the view applied them), and registers a new
//! subscriber between two merges, with the view's contents then as its
//! first epoch (the snapshot). A [`Subscription`] is the receiving end,
//! which the wire layer drains (`crate::pgwire::subscribe`) or a cursor
//! FETCHes from.
//!
//! **Bounded.** A subscriber may fall [`BUFFER_ROWS`] changed rows behind
//! (the snapshot not counted). Past that it is cut off, and its next read
//! fails with 53200: a slow reader never slows the writers and never
//! grows memory without bound.
//!
//! **Followers.** A [`Follower`] (a Kafka sink's outbox of a stream) gets
//! every change too, synchronously, inside the write that made it, and
//! decides itself what to keep: it is never cut off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::PushError;
use crate::stream::change::ChangeBatch;

/// Changed rows a subscriber may have waiting before it is cut off.
pub const BUFFER_ROWS: usize = 100_000;
/// Epochs a subscriber may have waiting (each holds at least one row).
const BUFFER_EPOCHS: usize = 4096;

/// The sending end kept for one subscriber.
#[derive(Debug)]
struct Subscriber {
    sender: mpsc::Sender<ChangeBatch>,
    shared: Arc<Shared>,
}

/// What the two ends of a subscription both see.
#[derive(Debug, Default)]
struct Shared {
    /// Changed rows sent and not yet received.
    buffered: AtomicUsize,
    /// Set when the subscriber was cut off for falling behind.
    overflowed: AtomicBool,
}

/// What follows a relation's changes inside the writes that make them
/// (and so inside the checkpoint gate): it must not wait.
pub trait Follower: Send + Sync + std::fmt::Debug {
    /// One epoch's changes, in the order the relation published them.
    fn receive(&self, changes: &ChangeBatch);
}

/// A relation's subscribers.
#[derive(Debug, Default)]
pub struct Subscribers {
    list: Mutex<Vec<Subscriber>>,
    /// Followers, by the number [`Subscribers::follow`] gave them.
    followers: Mutex<Vec<(u64, Arc<dyn Follower>)>>,
    next_follower: AtomicU64,
    /// The last epoch published: epochs never go backwards in a
    /// subscription, even when two writes merge out of their order.
    last_epoch: AtomicU64,
    /// Set once the relation was dropped: a subscriber added after that
    /// (it raced the DROP) ends at once instead of waiting forever.
    closed: AtomicBool,
}

impl Subscribers {
    /// Whether nobody subscribes or follows.
    pub fn is_empty(&self) -> bool {
        self.list.lock().is_empty() && self.followers.lock().is_empty()
    }

    /// Adds a follower; the number is for [`Subscribers::unfollow`].
    pub fn follow(&self, follower: Arc<dyn Follower>) -> u64 {
        let id = self.next_follower.fetch_add(1, Ordering::Relaxed);
        let mut followers = self.followers.lock();
        // A relation dropped already has nothing more to follow.
        if !self.closed.load(Ordering::Relaxed) {
            followers.push((id, follower));
        }
        id
    }

    /// Removes follower `id`.
    pub fn unfollow(&self, id: u64) {
        self.followers.lock().retain(|(i, _)| *i != id);
    }

    /// Registers a subscriber of `relation` (whose rows have `schema`),
    /// with `snapshot` as its first epoch. `epoch` is the newest epoch
    /// given out; the snapshot holds everything up to it.
    pub fn add(&self, relation: &str, schema: SchemaRef, snapshot: Option<RecordBatch>, epoch: u64) -> Subscription {
        let (sender, receiver) = mpsc::channel(BUFFER_EPOCHS);
        let shared = Arc::new(Shared::default());
        let epoch = self.last_epoch.fetch_max(epoch, Ordering::Relaxed).max(epoch);
        if let Some(rows) = snapshot.filter(|r| r.num_rows() > 0) {
            // The channel is new and empty: this cannot fail.
            let _ = sender.try_send(ChangeBatch::inserts(rows, epoch));
        }
        let has_snapshot = sender.capacity() < BUFFER_EPOCHS;
        let mut list = self.list.lock();
        if !self.closed.load(Ordering::Relaxed) {
            list.push(Subscriber { sender, shared: shared.clone() });
        }
        drop(list);
        Subscription { relation: relation.to_string(), schema, receiver, shared, has_snapshot }
    }

    /// Hands `changes` to every subscriber; cuts off those that fell behind
    /// and forgets those that left.
    pub fn publish(&self, changes: &ChangeBatch) {
        if changes.is_empty() {
            return;
        }
        let epoch = self.last_epoch.fetch_max(changes.epoch, Ordering::Relaxed).max(changes.epoch);
        let mut changes = changes.clone();
        changes.epoch = epoch;
        let rows = changes.len();
        // Cloned out: a follower's work is not done under the list's lock.
        let followers: Vec<Arc<dyn Follower>> = self.followers.lock().iter().map(|(_, f)| f.clone()).collect();
        for follower in followers {
            follower.receive(&changes);
        }
        self.list.lock().retain(|s| {
            if s.shared.buffered.load(Ordering::Relaxed) + rows > BUFFER_ROWS {
                s.shared.overflowed.store(true, Ordering::Relaxed);
                return false;
            }
            match s.sender.try_send(changes.clone()) {
                Ok(()) => {
                    s.shared.buffered.fetch_add(rows, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.shared.overflowed.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Ends every subscription (the relation was dropped).
    pub fn close_all(&self) {
        let mut list = self.list.lock();
        self.closed.store(true, Ordering::Relaxed);
        list.clear();
        drop(list);
        self.followers.lock().clear();
    }
}

/// The receiving end of a subscription.
#[derive(Debug)]
pub struct Subscription {
    relation: String,
    schema: SchemaRef,
    receiver: mpsc::Receiver<ChangeBatch>,
    shared: Arc<Shared>,
    /// Whether the first epoch waiting is the snapshot (a snapshot of
    /// nothing is not sent).
    has_snapshot: bool,
}

impl Subscription {
    /// The rows a subscription gives: `epoch` (bigint), `diff` (int, +1 or
    /// −1), then the relation's columns.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = vec![
            Arc::new(Field::new("epoch", DataType::Int64, false)),
            Arc::new(Field::new("diff", DataType::Int32, false)),
        ];
        fields.extend(self.schema.fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// Whether the first epoch waiting is the relation's contents; false
    /// when they were empty (or no snapshot was asked for).
    pub fn has_snapshot(&self) -> bool {
        self.has_snapshot
    }

    /// Changed rows sent and not yet received.
    pub fn pending_rows(&self) -> usize {
        self.shared.buffered.load(Ordering::Relaxed)
    }

    /// The next epoch's changes, as rows of [`Self::schema`]; waits for one.
    pub async fn next(&mut self) -> Result<RecordBatch, PushError> {
        match self.receiver.recv().await {
            Some(changes) => self.received(changes),
            None => Err(self.ended()),
        }
    }

    /// The next epoch's changes if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Result<RecordBatch, PushError>> {
        match self.receiver.try_recv() {
            Ok(changes) => Some(self.received(changes)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(self.ended())),
        }
    }

    fn received(&self, changes: ChangeBatch) -> Result<RecordBatch, PushError> {
        let rows = changes.len();
        // The snapshot was never counted: never go below zero.
        let _ =
            self.shared.buffered.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(rows)));
        with_epoch_and_diff(&self.schema(), &changes).map_err(|e| PushError::Internal(e.to_string()))
    }

    fn ended(&self) -> PushError {
        match self.shared.overflowed.load(Ordering::Relaxed) {
            true => PushError::Overflow { relation: self.relation.clone(), rows: BUFFER_ROWS },
            false => PushError::Ended(self.relation.clone()),
        }
    }
}

/// `changes` as rows of `schema`: the epoch and the weight first.
fn with_epoch_and_diff(schema: &SchemaRef, changes: &ChangeBatch) -> Result<RecordBatch, ArrowError> {
    let n = changes.len();
    let epoch = i64::try_from(changes.epoch).unwrap_or(i64::MAX);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![epoch; n])),
        Arc::new(Int32Array::from_iter_values(changes.weights.values().iter().map(|&w| i32::from(w)))),
    ];
    columns.extend(changes.rows.columns().iter().cloned());
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    fn rows(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn diffs(batch: &RecordBatch) -> Vec<(i64, i32, i64)> {
        let col = |i: usize| batch.column(i).clone();
        let (e, d, v) = (col(0), col(1), col(2));
        let e = e.as_any().downcast_ref::<Int64Array>().unwrap();
        let d = d.as_any().downcast_ref::<Int32Array>().unwrap();
        let v = v.as_any().downcast_ref::<Int64Array>().unwrap();
        (0..batch.num_rows()).map(|i| (e.value(i), d.value(i), v.value(i))).collect()
    }

    #[tokio::test]
    async fn snapshot_then_changes_in_epoch_order() {
        let subscribers = Subscribers::default();
        let mut sub = subscribers.add("v", rows(&[]).schema(), Some(rows(&[1])), 5);
        subscribers.publish(&ChangeBatch::of(&rows(&[1]), &rows(&[2]), 7).unwrap());
        // A write that took an older epoch but merged later stays in order.
        subscribers.publish(&ChangeBatch::inserts(rows(&[3]), 6));
        assert_eq!(diffs(&sub.next().await.unwrap()), vec![(5, 1, 1)]);
        assert_eq!(diffs(&sub.next().await.unwrap()), vec![(7, -1, 1), (7, 1, 2)]);
        assert_eq!(diffs(&sub.next().await.unwrap()), vec![(7, 1, 3)]);
        assert!(sub.try_next().is_none());
        subscribers.close_all();
        assert!(matches!(sub.next().await, Err(PushError::Ended(_))));
        // A subscriber that raced the drop ends at once, after its snapshot.
        let mut late = subscribers.add("v", rows(&[]).schema(), Some(rows(&[4])), 8);
        assert_eq!(diffs(&late.next().await.unwrap()), vec![(8, 1, 4)]);
        assert!(matches!(late.next().await, Err(PushError::Ended(_))));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_cut_off() {
        let subscribers = Subscribers::default();
        let mut slow = subscribers.add("v", rows(&[]).schema(), None, 0);
        let big: Vec<i64> = (0..(BUFFER_ROWS as i64 / 2 + 1)).collect();
        subscribers.publish(&ChangeBatch::inserts(rows(&big), 1));
        subscribers.publish(&ChangeBatch::inserts(rows(&big), 2));
        assert!(subscribers.is_empty(), "the slow subscriber is forgotten");
        assert_eq!(slow.next().await.unwrap().column(0).len(), big.len());
        assert!(matches!(slow.next().await, Err(PushError::Overflow { .. })));
    }
}
