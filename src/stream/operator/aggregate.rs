//! The incremental aggregate.
//!
//! Over an append-only input (a stream), a batch is partial-aggregated by
//! DataFusion and the partial states are merged into the view's groups.
//! Over an input that removes rows (a table), the added and the removed
//! rows are each evaluated up to the aggregate (keys and arguments) and
//! added to or taken from the groups (`crate::state::RetractInput`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, internal_err};
use futures::StreamExt;

use crate::planner::batch_source::BatchSlot;
use crate::planner::{IncrementalPlan, RetractPlan};
use crate::state::RetractInput;
use crate::stream::Work;
use crate::stream::change::ChangeBatch;

/// Partial rows merged per hold of the state lock.
const MERGE_CHUNK_ROWS: usize = 4096;

/// Maintains one view's state from the changes of its input.
#[derive(Debug, Clone)]
pub struct AggregateOperator {
    plan: Arc<IncrementalPlan>,
}

impl AggregateOperator {
    /// An operator for `plan`.
    pub fn new(plan: Arc<IncrementalPlan>) -> Self {
        Self { plan }
    }

    /// Prepares `changes` (of the view's first input) and merges the result.
    pub async fn process_batch(&self, changes: ChangeBatch) -> Result<()> {
        let work = self.prepare(changes, 0).await?;
        self.merge(&work)
    }

    /// Merges `work` and returns how the view's output rows changed (the
    /// rows of the touched groups before, removed, and after, added), for
    /// the views that read this one. `epoch` is the write's.
    pub async fn merge_emitting(&self, work: &Work, epoch: u64) -> Result<Option<ChangeBatch>> {
        if let Work::Rows(rows) = work {
            return super::transform::emitted(rows, &self.output_schema(), epoch);
        }
        let Some(emit) = &self.plan.emit else {
            self.merge(work)?;
            return Ok(None);
        };
        let keys = touched_keys(work, self.plan.layout.group_columns)?;
        if keys.is_empty() && self.plan.layout.group_columns > 0 {
            self.merge(work)?;
            return Ok(None); // no group touched
        }
        let schema = &self.plan.state_schema;
        let before = self.plan.state.lock().evaluate_keys(&keys, schema)?;
        self.merge(work)?;
        let after = self.plan.state.lock().evaluate_keys(&keys, schema)?;
        let out_schema = crate::catalog::types::all_nullable(&emit.plan.schema());
        let mut rows = Vec::with_capacity(2);
        for groups in [before, after] {
            let out = self.run(&emit.plan, &emit.slot, groups).await?;
            let out = datafusion::arrow::compute::concat_batches(&emit.plan.schema(), &out)?;
            rows.push(RecordBatch::try_new(out_schema.clone(), out.columns().to_vec())?);
        }
        Ok(Some(ChangeBatch::of(&rows[0], &rows[1], epoch)?))
    }

    /// The view's rows now, as its readers see them (without ORDER BY or
    /// LIMIT, which a followable view does not have).
    pub async fn snapshot(&self) -> Result<RecordBatch> {
        if self.plan.transform.is_some() {
            return Ok(RecordBatch::new_empty(self.output_schema())); // a stream holds no rows
        }
        let Some(emit) = &self.plan.emit else {
            return internal_err!("a snapshot of a view whose changes cannot be followed");
        };
        let groups = self.plan.state.lock().evaluate_all(&self.plan.state_schema)?;
        let out = self.run(&emit.plan, &emit.slot, groups).await?;
        let out = datafusion::arrow::compute::concat_batches(&emit.plan.schema(), &out)?;
        Ok(RecordBatch::try_new(self.output_schema(), out.columns().to_vec())?)
    }

    /// The columns of the view's rows.
    pub fn output_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        if let Some(transform) = &self.plan.transform {
            return crate::catalog::types::all_nullable(&transform.schema());
        }
        match &self.plan.emit {
            Some(emit) => crate::catalog::types::all_nullable(&emit.plan.schema()),
            None => self.plan.state_schema.clone(),
        }
    }

    /// Evaluates `changes` up to the aggregate without touching the state.
    /// This is where a view's expressions fail on bad rows (a cast, a
    /// division by zero), so a write prepares every view before it merges
    /// into any.
    /// `input` says which of the view's inputs changed (0 but in a join of
    /// tables).
    pub async fn prepare(&self, changes: ChangeBatch, input: usize) -> Result<Work> {
        let Some(slot) = self.plan.slots.get(input) else {
            return internal_err!("a change of input {input} of a view with {} inputs", self.plan.slots.len());
        };
        if let Some(transform) = &self.plan.transform {
            return Ok(Work::Rows(self.run(transform, slot, changes.rows).await?));
        }
        let Some(retract) = &self.plan.retract else {
            debug_assert!(changes.append_only(), "a stream's view was sent removed rows");
            return Ok(Work::Partials(self.run(&self.plan.partial, slot, changes.rows).await?));
        };
        let Some(lower) = retract.lowers.get(input) else {
            return internal_err!("no plan for a change of input {input}");
        };
        let (added, removed) = changes.split()?;
        let mut inputs = Vec::new();
        for (rows, sign) in [(added, 1i8), (removed, -1i8)] {
            for batch in self.run(lower, slot, rows).await? {
                inputs.push(evaluate(retract, &batch, sign)?);
            }
        }
        Ok(Work::Changes(inputs))
    }

    /// Runs `plan` over `rows` put in the view's slot.
    async fn run(
        &self,
        plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        slot: &BatchSlot,
        rows: RecordBatch,
    ) -> Result<Vec<RecordBatch>> {
        if rows.num_rows() == 0 {
            return Ok(Vec::new());
        }
        slot.put(rows);
        let fresh;
        let plan = if self.plan.joins {
            // A hash join keeps the table it built; each run builds anew.
            fresh = datafusion::physical_plan::execution_plan::reset_plan_states(plan.clone())?;
            &fresh
        } else {
            plan
        };
        let mut stream = plan.execute(0, self.plan.task_ctx.clone())?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch?);
        }
        Ok(out)
    }

    /// Merges prepared work into the state.
    pub fn merge(&self, work: &Work) -> Result<()> {
        match work {
            Work::Partials(partials) => self.merge_partials(partials),
            Work::Rows(_) => Ok(()), // a transform keeps nothing
            Work::Changes(inputs) => {
                for input in inputs {
                    self.plan.state.lock().apply_changes(input)?;
                }
                Ok(())
            }
        }
    }

    fn merge_partials(&self, partials: &[RecordBatch]) -> Result<()> {
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

/// The distinct group keys `work` touches.
fn touched_keys(work: &Work, group_columns: usize) -> Result<Vec<ArrayRef>> {
    let columns: Vec<Vec<ArrayRef>> = match work {
        Work::Partials(partials) => partials.iter().map(|p| p.columns()[..group_columns].to_vec()).collect(),
        Work::Changes(inputs) => inputs.iter().map(|i| i.keys.clone()).collect(),
        Work::Rows(_) => return Ok(Vec::new()),
    };
    let Some(first) = columns.first() else {
        return Ok(Vec::new());
    };
    if first.is_empty() {
        return Ok(Vec::new());
    }
    let fields = first.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    let converter = RowConverter::new(fields)?;
    let mut seen = std::collections::HashSet::new();
    let mut distinct = converter.empty_rows(0, 0);
    for batch in &columns {
        for row in converter.convert_columns(batch)?.iter() {
            if seen.insert(row.owned()) {
                distinct.push(row);
            }
        }
    }
    Ok(converter.convert_rows(distinct.iter())?)
}

/// Evaluates the group keys, arguments and filters over `batch`.
fn evaluate(plan: &RetractPlan, batch: &RecordBatch, sign: i8) -> Result<RetractInput> {
    let rows = batch.num_rows();
    let column = |e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>| e.evaluate(batch)?.into_array(rows);
    let keys = plan.group_exprs.iter().map(column).collect::<Result<Vec<_>>>()?;
    let args =
        plan.arg_exprs.iter().map(|a| a.iter().map(column).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
    let mut filters = Vec::with_capacity(plan.filters.len());
    for filter in &plan.filters {
        filters.push(match filter {
            None => None,
            Some(f) => {
                let array = column(f)?;
                match array.as_any().downcast_ref::<BooleanArray>() {
                    Some(b) => Some(b.clone()),
                    None => return internal_err!("an aggregate's FILTER is not boolean"),
                }
            }
        });
    }
    Ok(RetractInput { sign, rows, keys, args, filters })
}
