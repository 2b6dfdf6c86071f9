//! The dataflow: each continuous view is an operator task fed by a bounded
//! channel of messages.
//!
//! A write to a stream sends its batch to every view the stream feeds in two
//! steps, `Prepare` (pre-aggregate, state untouched) to all of them, then
//! `Merge` to all of them, and waits until each has merged it
//! (read-your-writes); rows one view cannot prepare change no view. A slow
//! view fills its channel and so slows its writers; it never buffers without
//! bound. Each view runs in its own named, tracked task, so one failing view
//! reports its error without stopping the others. Checkpoints do not travel
//! on these channels: they cut between writes with the checkpoint gate
//! (`crate::checkpoint`).

pub mod change;
pub mod operator;
pub mod view;

pub use view::{ViewDefinition, ViewRuntime};

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;

use crate::state::RetractInput;
use tokio::sync::oneshot;

/// The outcome an operator sends back.
pub type Ack<T> = oneshot::Sender<Result<T, Arc<DataFusionError>>>;

/// What flows to an operator. A write is two messages: `Prepare` runs the
/// view's pre-aggregation and hands back the partial aggregates without
/// changing the state; `Merge` merges them. A writer prepares every view of
/// its stream before it merges into any, so rows that one view cannot
/// apply change no view.
#[derive(Debug)]
pub enum Message {
    /// Rows to pre-aggregate; the sender waits on `ack` for the partials.
    Prepare {
        /// The changes, with the input relation's schema.
        changes: change::ChangeBatch,
        /// Receives what to merge, or the error.
        ack: Ack<Work>,
    },
    /// What `Prepare` made, to merge into the state.
    Merge {
        /// The prepared work.
        work: Work,
        /// Receives `Ok` once merged, or the error that stopped the merge.
        ack: Ack<()>,
    },
}

/// What preparing a change batch gives, ready to merge.
#[derive(Debug)]
pub enum Work {
    /// Over an append-only input: partial aggregates, one row per group.
    Partials(Vec<RecordBatch>),
    /// Over an input that removes rows: keys and arguments to add or remove.
    Changes(Vec<RetractInput>),
}

/// How many batches may wait for one view before writers wait.
pub const VIEW_QUEUE_BATCHES: usize = 16;
