//! Which epochs a crash can no longer undo.
//!
//! A write that goes through the insert log (INSERT, COPY, a table's
//! change) is durable once logged: recovery replays it. A Kafka batch is
//! not logged: recovery rebuilds it by consuming again from the offsets of
//! the last checkpoint, so until a checkpoint holds it, a crash undoes it
//! (and the consumer applies it again later). Kafka sinks wait for an
//! epoch to be durable before writing it, so that a change a crash undoes
//! never reaches a topic (`crate::sink::task`).
//!
//! Captures are numbered too: a stream's sink writes an event only once a
//! completed checkpoint saved the capture that took its outbox with it
//! (`crate::sink::outbox`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The epochs not yet durable.
#[derive(Debug, Default)]
pub struct DurableEpochs {
    /// Epochs of unlogged writes since the last checkpoint.
    unlogged: Mutex<BTreeSet<u64>>,
    /// Woken when a checkpoint makes epochs durable.
    advanced: Notify,
    /// Checkpoint captures taken (each numbered, from 1).
    captures: AtomicU64,
    /// The newest capture a completed checkpoint saved.
    saved: AtomicU64,
}

impl DurableEpochs {
    /// Notes that epoch `epoch` is not logged.
    pub fn hold(&self, epoch: u64) {
        self.unlogged.lock().insert(epoch);
    }

    /// A checkpoint holds every write up to epoch `through`, and what its
    /// capture `capture` took.
    pub fn release_through(&self, through: u64, capture: u64) {
        self.unlogged.lock().retain(|&e| e > through);
        self.saved.fetch_max(capture, Ordering::Relaxed);
        self.advanced.notify_waiters();
    }

    /// Numbers a new capture (at the barrier).
    pub fn next_capture(&self) -> u64 {
        self.captures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The number of the capture being taken, or of the last one.
    pub fn capture(&self) -> u64 {
        self.captures.load(Ordering::Relaxed)
    }

    /// The newest capture a completed checkpoint saved.
    pub fn saved(&self) -> u64 {
        self.saved.load(Ordering::Relaxed)
    }

    /// Woken at the end of each completed checkpoint.
    pub fn completed(&self) -> tokio::sync::futures::Notified<'_> {
        self.advanced.notified()
    }

    /// Whether every epoch up to `epoch` is durable.
    pub fn is_durable(&self, epoch: u64) -> bool {
        self.unlogged.lock().first().is_none_or(|&first| first > epoch)
    }

    /// Waits until every epoch up to `epoch` is durable.
    pub async fn wait(&self, epoch: u64) {
        loop {
            let advanced = self.advanced.notified();
            if self.is_durable(epoch) {
                return;
            }
            advanced.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unlogged_epoch_is_durable_once_a_checkpoint_holds_it() {
        let epochs = std::sync::Arc::new(DurableEpochs::default());
        assert!(epochs.is_durable(10));
        epochs.hold(4);
        assert!(epochs.is_durable(3) && !epochs.is_durable(4) && !epochs.is_durable(9));
        let waiter = tokio::spawn({
            let epochs = epochs.clone();
            async move { epochs.wait(5).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        epochs.release_through(6, 1);
        waiter.await.unwrap();
        assert!(epochs.is_durable(100));
    }
}
