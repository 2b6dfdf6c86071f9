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
//! A stream's Kafka sink waits for more: for the epochs of the events it
//! writes to be *checkpointed* (its outbox is saved with the checkpoint),
//! whether logged or not (`crate::sink::outbox`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The epochs not yet durable.
#[derive(Debug, Default)]
pub struct DurableEpochs {
    /// Epochs of unlogged writes since the last checkpoint.
    unlogged: Mutex<BTreeSet<u64>>,
    /// The newest epoch the last completed checkpoint holds.
    checkpointed: AtomicU64,
    /// Woken when a checkpoint makes epochs durable.
    advanced: Notify,
}

impl DurableEpochs {
    /// Notes that epoch `epoch` is not logged.
    pub fn hold(&self, epoch: u64) {
        self.unlogged.lock().insert(epoch);
    }

    /// A checkpoint holds every write up to epoch `through`.
    pub fn release_through(&self, through: u64) {
        self.unlogged.lock().retain(|&e| e > through);
        self.checkpointed.fetch_max(through, Ordering::Relaxed);
        self.advanced.notify_waiters();
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

impl DurableEpochs {
    /// Waits until a completed checkpoint holds every write up to `epoch`.
    pub async fn wait_checkpointed(&self, epoch: u64) {
        loop {
            let advanced = self.advanced.notified();
            if self.checkpointed() >= epoch {
                return;
            }
            advanced.await;
        }
    }

    /// The newest epoch the last completed checkpoint holds.
    pub fn checkpointed(&self) -> u64 {
        self.checkpointed.load(Ordering::Relaxed)
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
        epochs.release_through(6);
        waiter.await.unwrap();
        assert!(epochs.is_durable(100));
        assert_eq!(epochs.checkpointed(), 6);
        epochs.wait_checkpointed(6).await;
        let later = tokio::spawn({
            let epochs = epochs.clone();
            async move { epochs.wait_checkpointed(8).await }
        });
        tokio::task::yield_now().await;
        assert!(!later.is_finished(), "a logged epoch waits for a checkpoint too");
        epochs.release_through(8);
        later.await.unwrap();
    }
}
