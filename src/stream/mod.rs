//! The dataflow: each continuous view is an operator task fed by a bounded
//! channel of messages.
//!
//! A write to a stream sends its batch to every view the stream feeds in two
//! steps, `Prepare` (pre-aggregate, state untouched) to all of them, then
//! `Merge` to all of them, and waits until each has merged it
//! (read-your-writes); rows one view cannot prepare change no view. A slow
//! view fills its channel and so slows its writers; it never buffers without
//! bound. [`prepare_views`] and [`merge_views`] are how every source (a
//! stream's writes, a table's) routes one change to all its views. Each
//! view runs in its own named, tracked task, so one failing view
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

use futures::future::join_all;
use tokio::sync::oneshot;

use crate::ingest::IngestError;
use crate::state::RetractInput;
use change::ChangeBatch;

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
        /// Which of the view's inputs changed (0 but in a join of tables).
        input: usize,
        /// Receives what to merge, or the error.
        ack: Ack<Work>,
    },
    /// What `Prepare` made, to merge into the state.
    Merge {
        /// The prepared work.
        work: Work,
        /// With the write's epoch: also say how the view's rows changed,
        /// for the views that read this one.
        emit: Option<u64>,
        /// Receives the view's output changes (with `emit`) once merged,
        /// or the error that stopped the merge.
        ack: Ack<Option<ChangeBatch>>,
    },
    /// A new subscriber, added between two merges.
    Subscribe {
        /// Whether its first epoch holds the view's contents.
        snapshot: bool,
        /// The newest epoch given out, which the snapshot is stamped with.
        epoch: u64,
        /// Receives the subscription.
        ack: Ack<crate::push::Subscription>,
    },
}

/// What preparing a change batch gives, ready to merge.
#[derive(Debug)]
pub enum Work {
    /// Over an append-only input: partial aggregates, one row per group.
    Partials(Vec<RecordBatch>),
    /// Over an input that removes rows: keys and arguments to add or remove.
    Changes(Vec<RetractInput>),
    /// A transform's output rows, passed on to its readers and not kept.
    Rows(Vec<RecordBatch>),
}

/// How many batches may wait for one view before writers wait.
pub const VIEW_QUEUE_BATCHES: usize = 16;

/// A view's input and what it made of it.
pub type PreparedView = (Arc<ViewRuntime>, view::Prepared);

/// Has every view in `views` prepare its changes (`changes_for(view)`) of
/// relation `source`, all
/// at once; fails with the first error of a view that is still there
/// (`still_there`: views dropped meanwhile are skipped).
pub async fn prepare_views(
    views: &[Arc<ViewRuntime>],
    source: &str,
    changes_for: impl Fn(&Arc<ViewRuntime>) -> ChangeBatch,
    still_there: &(dyn Fn(&Arc<ViewRuntime>) -> bool + Sync),
) -> Result<Vec<PreparedView>, IngestError> {
    let outcomes = join_all(views.iter().map(|v| v.prepare(source, changes_for(v)))).await;
    let mut ready = Vec::with_capacity(views.len());
    for (view, outcome) in views.iter().zip(outcomes) {
        match outcome {
            Ok(p) => ready.push((view.clone(), p)),
            Err(e) if dropped_meanwhile(view, &e, still_there) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ready)
}

/// Merges what [`prepare_views`] made into every view. A view that was
/// dropped meanwhile (`still_there` says no) is skipped.
pub async fn merge_views(
    prepared: Vec<PreparedView>,
    still_there: &(dyn Fn(&Arc<ViewRuntime>) -> bool + Sync),
) -> Result<(), IngestError> {
    let merged = join_all(prepared.into_iter().map(|(v, p)| async move { (v.clone(), v.merge(p).await) })).await;
    let mut downstream = Vec::new();
    for (view, outcome) in merged {
        match outcome {
            Ok(Some(changes)) if !changes.is_empty() => downstream.push((view, changes)),
            Ok(_) => {}
            Err(e) if dropped_meanwhile(&view, &e, still_there) => {}
            Err(e) => return Err(e),
        }
    }
    // The views over these views take the change in the same epoch,
    // level by level, before the write returns.
    for (view, changes) in downstream {
        let readers = view.readers();
        let still_reading = |r: &Arc<ViewRuntime>| view.readers().iter().any(|w| Arc::ptr_eq(r, w));
        // Views that read `output_of(view)` get its changes as (old, new) rows.
        let output = match readers.iter().any(|r| r.reads_output_of()) {
            true => view.output_stream(&changes)?,
            false => None,
        };
        let readers: Vec<_> = readers.into_iter().filter(|r| !r.reads_output_of() || output.is_some()).collect();
        let changes_for = |r: &Arc<ViewRuntime>| match (&output, r.reads_output_of()) {
            (Some(output), true) => output.clone(),
            _ => changes.clone(),
        };
        let prepared = prepare_views(&readers, view.name(), changes_for, &still_reading).await?;
        Box::pin(merge_views(prepared, &still_reading)).await?;
    }
    Ok(())
}

/// A view dropped while a write was on its way to it has nothing to apply
/// the rows to: that is not the write's failure. Any other error is.
fn dropped_meanwhile(
    view: &Arc<ViewRuntime>,
    e: &IngestError,
    still_there: &(dyn Fn(&Arc<ViewRuntime>) -> bool + Sync),
) -> bool {
    matches!(e, IngestError::ViewStopped(_)) && !still_there(view)
}
