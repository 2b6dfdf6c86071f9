//! A stream's sink's outbox: the events it has yet to write, numbered, and
//! saved with each checkpoint.
//!
//! A stream holds no rows, so its sink cannot compare a topic with
//! contents the way a view's sink does (`super::task`). Instead the outbox
//! follows the stream ([`crate::push::Follower`]): every event is added
//! inside the write that made it, and so inside the checkpoint gate. Events
//! are numbered in that order, and each message carries its number (a
//! Kafka header, [`SEQ_HEADER`]).
//!
//! - The sink writes an event only once a completed checkpoint saved the
//!   outbox with it: each event is tagged with the number of the checkpoint
//!   capture that took it (`crate::checkpoint::Durability::saved_capture`).
//!   So every event ever written is in the last checkpoint's outbox, or was
//!   trimmed from it after the topic had it.
//! - After a crash, the outbox comes back from the checkpoint, and events
//!   made since (replayed from the insert log, or consumed again from
//!   Kafka) are added after it, under new numbers: none of them was written.
//! - On each start, the sink reads the last number its topic holds
//!   (committed messages only) and drops the events up to it. The rest are
//!   written, each batch in one transaction: no gap and no duplicate.
//!   Without transactions a failed write may leave a later number in the
//!   topic than an earlier one, so nothing is dropped: at least once.
//!
//! A new sink's outbox is not yet *anchored*: its first start numbers its
//! events after the topic's last number, so that a topic written by an
//! earlier sink of the same name keeps going. Renumbered events wait for a
//! checkpoint to save their new numbers before they are written.
//!
//! **Bounded.** An outbox holds at most [`MAX_ROWS`] events. A sink that
//! falls further behind (its broker down for long) loses the newest events,
//! counts them, and says so in `pipelinedb.sinks`; writers never wait.

use std::collections::VecDeque;

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::push::Follower;
use crate::stream::change::ChangeBatch;

/// Events an outbox may hold.
pub const MAX_ROWS: usize = 1_000_000;
/// The Kafka header that carries an event's number.
pub const SEQ_HEADER: &str = "eddy-seq";

/// The events a stream's sink has yet to write.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// The number of the first event held.
    first: u64,
    /// Events held, oldest first, each with the number of the checkpoint
    /// capture that took it (`None`: none yet; 0: restored).
    batches: VecDeque<(Option<u64>, RecordBatch)>,
    /// Events held.
    rows: usize,
    /// Whether the numbers continue the topic's.
    anchored: bool,
    /// Events not kept for falling [`MAX_ROWS`] behind, since the start.
    dropped: u64,
    /// Changed since the last checkpoint took it.
    changed: bool,
}

/// Events taken to write: `rows` numbered from `first`.
#[derive(Debug)]
pub struct Taken {
    /// The number of the first.
    pub first: u64,
    /// The events.
    pub rows: Vec<RecordBatch>,
    /// How many.
    pub len: usize,
}

/// An outbox as a checkpoint saves it.
#[derive(Debug)]
pub struct Image {
    /// The number of its first event.
    pub first: u64,
    /// Whether its numbers continue the topic's.
    pub anchored: bool,
    /// Its events if they changed since the last checkpoint took them
    /// (`None`: unchanged).
    pub rows: Option<Vec<RecordBatch>>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An empty outbox, not anchored.
    pub fn new() -> Self {
        Self { inner: Mutex::new(Inner::default()), arrived: Notify::new() }
    }

    /// Takes back what a checkpoint saved.
    pub fn load(&self, first: u64, anchored: bool, rows: Vec<RecordBatch>) {
        let rows: Vec<RecordBatch> = rows.into_iter().filter(|r| r.num_rows() > 0).collect();
        *self.inner.lock() = Inner {
            first,
            rows: rows.iter().map(RecordBatch::num_rows).sum(),
            batches: rows.into_iter().map(|r| (Some(0), r)).collect(),
            anchored,
            ..Inner::default()
        };
    }

    /// Adds events (or counts them lost, past [`MAX_ROWS`]).
    pub fn push(&self, rows: RecordBatch) {
        let n = rows.num_rows();
        if n == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.rows + n > MAX_ROWS {
            inner.dropped += n as u64;
            return;
        }
        inner.rows += n;
        inner.batches.push_back((None, rows));
        inner.changed = true;
        drop(inner);
        self.arrived.notify_waiters();
    }

    /// Woken when events are added: make it before [`Outbox::take`] finds
    /// nothing, then wait on it.
    pub fn arrived(&self) -> tokio::sync::futures::Notified<'_> {
        self.arrived.notified()
    }

    /// The oldest events a completed checkpoint saved (`saved` is the
    /// newest capture one saved; `None`: nothing is saved, all may go), at
    /// most `max` of them; left in the outbox until [`Outbox::trim`].
    pub fn take(&self, saved: Option<u64>, max: usize) -> Option<Taken> {
        let inner = self.inner.lock();
        let mut taken = Taken { first: inner.first, rows: Vec::new(), len: 0 };
        for (capture, rows) in &inner.batches {
            let held = saved.is_none_or(|saved| capture.is_some_and(|c| c <= saved));
            if taken.len >= max || !held {
                break;
            }
            let n = rows.num_rows().min(max - taken.len);
            taken.rows.push(rows.slice(0, n));
            taken.len += n;
        }
        (taken.len > 0).then_some(taken)
    }

    /// Forgets the events numbered below `next` (the topic has them).
    pub fn trim(&self, next: u64) {
        let mut inner = self.inner.lock();
        while next > inner.first {
            let Some((capture, rows)) = inner.batches.pop_front() else {
                inner.first = next;
                break;
            };
            let n = rows.num_rows();
            let gone = usize::try_from(next - inner.first).unwrap_or(usize::MAX).min(n);
            if gone < n {
                inner.batches.push_front((capture, rows.slice(gone, n - gone)));
            }
            inner.rows -= gone;
            inner.first = inner.first.saturating_add(gone as u64);
        }
        inner.changed = true;
    }

    /// Aligns the numbers with the topic, whose last number is `last`. The
    /// first start numbers the events after it (they then wait for a
    /// checkpoint to save their numbers); later starts drop the events the
    /// topic already has, when its numbers can be trusted (`trim`: written
    /// in transactions).
    pub fn anchor(&self, last: Option<u64>, trim: bool) {
        let next = last.map_or(0, |l| l.saturating_add(1));
        {
            let mut inner = self.inner.lock();
            if !inner.anchored {
                inner.first = next;
                inner.anchored = true;
                inner.changed = true;
                inner.batches.iter_mut().for_each(|(capture, _)| *capture = None);
                return;
            }
        }
        if trim {
            self.trim(next);
        }
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.inner.lock().rows
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events lost for falling too far behind, since the start.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().dropped
    }

    /// What checkpoint capture `capture` saves (at the barrier): its events,
    /// if they changed since the last one took them or `force` (the last
    /// one failed). The events are tagged with `capture`.
    pub fn image(&self, capture: u64, force: bool) -> Image {
        let mut inner = self.inner.lock();
        let rows = (inner.changed || force).then(|| {
            inner.batches.iter_mut().filter(|(c, _)| c.is_none()).for_each(|(c, _)| *c = Some(capture));
            inner.batches.iter().map(|(_, r)| r.clone()).collect()
        });
        inner.changed = false;
        Image { first: inner.first, anchored: inner.anchored, rows }
    }
}

impl Follower for Outbox {
    fn receive(&self, changes: &ChangeBatch) {
        // A stream's events, and a derived stream's rows, are all inserts.
        self.push(changes.rows.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn rows(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
    }

    fn values(taken: &Taken) -> Vec<i64> {
        let ints = |b: &RecordBatch| {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
            (0..a.len()).map(move |i| a.value(i))
        };
        taken.rows.iter().flat_map(ints).collect()
    }

    #[test]
    fn only_saved_events_are_taken_and_the_topic_trims() {
        let outbox = Outbox::new();
        outbox.push(rows(0..4));
        let _ = outbox.image(1, false);
        outbox.push(rows(4..6));
        // Anchored after a topic whose last number is 9: events are 10...,
        // and wait for a capture to save those numbers.
        outbox.anchor(Some(9), true);
        assert!(outbox.take(Some(1), 100).is_none(), "renumbered events wait for a checkpoint");
        let image = outbox.image(2, false);
        assert_eq!((image.first, image.anchored, image.rows.map(|r| r.len())), (10, true, Some(2)));
        outbox.push(rows(6..7));
        assert!(outbox.take(Some(1), 100).is_none(), "capture 2 is not saved yet");
        let taken = outbox.take(Some(2), 100).unwrap();
        assert_eq!((taken.first, values(&taken)), (10, vec![0, 1, 2, 3, 4, 5]), "event 6 is not saved");
        let taken = outbox.take(Some(2), 3).unwrap();
        assert_eq!((taken.first, values(&taken)), (10, vec![0, 1, 2]));
        outbox.trim(13);
        let taken = outbox.take(Some(2), 100).unwrap();
        assert_eq!((taken.first, values(&taken)), (13, vec![3, 4, 5]));
        // A restart finds the topic at 14: event 3 was written.
        outbox.anchor(Some(13), true);
        assert_eq!(values(&outbox.take(None, 100).unwrap()), vec![4, 5, 6], "no data directory: all may go");
        // Without transactions the topic's numbers do not trim.
        outbox.anchor(Some(15), false);
        assert_eq!(outbox.len(), 3);
        outbox.trim(17);
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn a_saved_outbox_comes_back_with_its_numbers_and_past_the_limit_events_are_counted() {
        let outbox = Outbox::new();
        outbox.anchor(None, true);
        outbox.push(rows(0..3));
        outbox.trim(1);
        let image = outbox.image(1, false);
        assert!(outbox.image(2, false).rows.is_none(), "unchanged since");
        let back = Outbox::new();
        back.load(image.first, image.anchored, image.rows.unwrap());
        let taken = back.take(Some(0), 100).unwrap();
        assert_eq!((taken.first, values(&taken)), (1, vec![1, 2]), "restored events need no new checkpoint");
        back.push(rows(0..(MAX_ROWS as i64)));
        assert_eq!((back.len(), back.dropped()), (2, MAX_ROWS as u64));
        // Restored but not anchored (the sink never started): renumbered.
        let fresh = Outbox::new();
        fresh.load(0, false, vec![rows(0..2)]);
        fresh.anchor(Some(4), true);
        assert!(fresh.take(Some(7), 100).is_none());
    }

    #[tokio::test]
    async fn a_waiting_sink_wakes_on_an_event() {
        let outbox = Arc::new(Outbox::new());
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                loop {
                    let arrived = outbox.arrived();
                    if let Some(taken) = outbox.take(None, 10) {
                        return taken.len;
                    }
                    arrived.await;
                }
            }
        });
        tokio::task::yield_now().await;
        outbox.push(rows(0..1));
        assert_eq!(waiter.await.unwrap(), 1);
    }
}
