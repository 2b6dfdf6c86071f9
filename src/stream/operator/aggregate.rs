//! The incremental aggregate: partial-aggregate a micro-batch with
//! DataFusion, then merge the partial states into the view's groups.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use futures::StreamExt;

use crate::planner::IncrementalPlan;

/// Partial rows merged per hold of the state lock.
const MERGE_CHUNK_ROWS: usize = 4096;

/// Maintains one view's state from the batches of its stream.
#[derive(Debug, Clone)]
pub struct AggregateOperator {
    plan: Arc<IncrementalPlan>,
}

impl AggregateOperator {
    /// An operator for `plan`.
    pub fn new(plan: Arc<IncrementalPlan>) -> Self {
        Self { plan }
    }

    /// Runs the pre-aggregation over `batch` and merges its output.
    pub async fn process_batch(&self, batch: RecordBatch) -> Result<()> {
        let partials = self.prepare(batch).await?;
        self.merge(&partials)
    }

    /// Runs the pre-aggregation over `batch` without touching the state:
    /// the partial aggregates, one row per touched group. This is where a
    /// view's expressions fail on bad rows (a cast, a division by zero), so
    /// a write prepares every view before it merges into any.
    pub async fn prepare(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        self.plan.slot.put(batch);
        let mut stream = self.plan.partial.execute(0, self.plan.task_ctx.clone())?;
        let mut partials = Vec::new();
        while let Some(partial) = stream.next().await {
            partials.push(partial?);
        }
        Ok(partials)
    }

    /// Merges prepared partial aggregates into the state.
    pub fn merge(&self, partials: &[RecordBatch]) -> Result<()> {
        for partial in partials {
            // Short, await-free critical sections: a reader waits for at most
            // one chunk, not a whole batch (a batch of 64k new groups takes
            // tens of milliseconds to merge).
            let mut offset = 0;
            while offset < partial.num_rows() {
                let length = MERGE_CHUNK_ROWS.min(partial.num_rows() - offset);
                let chunk = partial.slice(offset, length);
                self.plan.state.lock().merge_sessions(&chunk, &self.plan.layout)?;
                offset += length;
            }
        }
        Ok(())
    }
}
