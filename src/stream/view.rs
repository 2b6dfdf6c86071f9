//! A running continuous view: its plan, its state, and its operator task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::view::ViewTable;
use datafusion::datasource::TableProvider;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use super::operator::aggregate::AggregateOperator;
use super::{Message, VIEW_QUEUE_BATCHES};
use crate::ingest::IngestError;
use crate::planner::IncrementalPlan;

/// One continuous view, running.
#[derive(Debug)]
pub struct ViewRuntime {
    id: u64,
    name: String,
    definition: String,
    plan: Arc<IncrementalPlan>,
    table: Arc<ViewTable>,
    sender: mpsc::Sender<Message>,
    stop: CancellationToken,
    rows_in: AtomicU64,
}

impl ViewRuntime {
    /// Starts the view's operator task on `tasks`; it ends when the view is
    /// dropped or `shutdown` fires.
    pub fn start(
        id: u64,
        name: &str,
        definition: String,
        plan: IncrementalPlan,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Arc<Self> {
        let plan = Arc::new(plan);
        let table = Arc::new(ViewTable::new(plan.upper.clone(), Some(definition.clone())));
        let (sender, receiver) = mpsc::channel(VIEW_QUEUE_BATCHES);
        let stop = shutdown.child_token();
        let operator = AggregateOperator::new(plan.clone());
        let span = info_span!("view", name = %name);
        tasks.spawn(run_operator(receiver, operator, stop.clone()).instrument(span));
        Arc::new(Self { id, name: name.to_string(), definition, plan, table, sender, stop, rows_in: AtomicU64::new(0) })
    }

    /// The view's number, which names its state on disk.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The view's groups.
    pub fn state(&self) -> &Arc<parking_lot::Mutex<crate::state::GroupedState>> {
        &self.plan.state
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream the view reads.
    pub fn stream_name(&self) -> &str {
        &self.plan.stream
    }

    /// The view's query, as SQL.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// The view as a DataFusion table: its query over its state.
    pub fn table(&self) -> Arc<dyn TableProvider> {
        self.table.clone()
    }

    /// Rows merged so far.
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }

    /// Groups held.
    pub fn groups(&self) -> usize {
        self.plan.state.lock().groups()
    }

    /// Bytes of state held, as the accumulators estimate them.
    pub fn state_bytes(&self) -> usize {
        self.plan.state.lock().size_bytes()
    }

    /// Merges `batch` and returns once readers can see it.
    pub async fn apply(&self, batch: RecordBatch) -> Result<(), IngestError> {
        let rows = batch.num_rows() as u64;
        let (ack, done) = oneshot::channel();
        let gone = || IngestError::ViewStopped(self.name.clone());
        self.sender.send(Message::Batch { batch, ack }).await.map_err(|_| gone())?;
        match done.await {
            Ok(Ok(())) => {
                self.rows_in.fetch_add(rows, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(source)) => Err(IngestError::ViewFailed { view: self.name.clone(), source }),
            Err(_) => Err(gone()),
        }
    }

    /// Forgets every group.
    pub fn truncate(&self) -> datafusion::common::Result<()> {
        self.plan.state.lock().clear()
    }

    /// Stops the operator; queued writes fail with "view stopped".
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn run_operator(mut receiver: mpsc::Receiver<Message>, operator: AggregateOperator, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            m = receiver.recv() => m,
        };
        let Some(Message::Batch { batch, ack }) = message else {
            break;
        };
        let outcome = operator.process_batch(batch).await.map_err(|e| {
            warn!(error = %e, "view failed to apply a batch");
            Arc::new(e)
        });
        let _ = ack.send(outcome);
    }
}
