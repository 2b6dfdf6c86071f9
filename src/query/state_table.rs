//! A view's state, as a table DataFusion can scan.
//!
//! A continuous view is a DataFusion view whose plan reads a [`StateTable`]:
//! one row per group, with the aggregates finalized at read time. Equality
//! filters on the group keys reach the scan through DataFusion's filter
//! pushdown and become point lookups, so `WHERE k = 42` costs one hash
//! probe however many groups the view holds.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::state::GroupedState;
use crate::window::Sliding;

/// A point lookup in a sliding window probes each live step; past this many
/// steps, a scan is cheaper.
const MAX_LOOKUP_STEPS: usize = 4_096;

/// A sliding window's steps and the clock that says which are live.
type SlidingRead = Option<(Sliding, Arc<Clock>)>;

/// The groups of one view, readable as a table.
#[derive(Debug)]
pub struct StateTable {
    schema: SchemaRef,
    key_columns: usize,
    state: Arc<Mutex<GroupedState>>,
    sliding: SlidingRead,
}

impl StateTable {
    /// A table over `state`, whose first `key_columns` columns are the group
    /// key; with `sliding`, the last key is a sliding window's step, and a
    /// scan merges the live steps of each key.
    pub fn new(schema: SchemaRef, key_columns: usize, state: Arc<Mutex<GroupedState>>, sliding: SlidingRead) -> Self {
        Self { schema, key_columns, state, sliding }
    }

    /// The key column a filter constrains to literal values, if it does.
    fn key_equality(&self, filter: &Expr) -> Option<(usize, Vec<ScalarValue>)> {
        let key_index = |e: &Expr| match e {
            Expr::Column(c) => self.schema.index_of(&c.name).ok().filter(|&i| i < self.key_columns),
            _ => None,
        };
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
                (col, Expr::Literal(v, _)) | (Expr::Literal(v, _), col) => key_index(col).map(|i| (i, vec![v.clone()])),
                _ => None,
            },
            Expr::InList(list) if !list.negated => {
                let i = key_index(&list.expr)?;
                let values = list
                    .list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal(v, _) => Some(v.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((i, values))
            }
            _ => None,
        }
    }

    /// The keys to look up, when filters pin every key column (but a
    /// sliding window's step); `None` means a full scan.
    fn lookup_keys(&self, filters: &[Expr]) -> Option<Vec<ArrayRef>> {
        let columns = self.key_columns - usize::from(self.sliding.is_some());
        if columns == 0 {
            return None;
        }
        let mut pinned: Vec<Option<Vec<ScalarValue>>> = vec![None; columns];
        for f in filters {
            if let Some((i, values)) = self.key_equality(f).filter(|(i, _)| *i < columns) {
                pinned[i] = Some(values);
            }
        }
        let pinned: Vec<Vec<ScalarValue>> = pinned.into_iter().collect::<Option<_>>()?;
        // With several key columns, only single values per column make one key.
        if pinned.len() > 1 && pinned.iter().any(|v| v.len() != 1) {
            return None;
        }
        pinned
            .into_iter()
            .enumerate()
            .map(|(i, values)| {
                let target = self.schema.field(i).data_type();
                let cast: Option<Vec<ScalarValue>> = values.iter().map(|v| v.cast_to(target).ok()).collect();
                ScalarValue::iter_to_array(cast?).ok()
            })
            .collect()
    }
}

#[async_trait]
impl TableProvider for StateTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.key_equality(f) {
                // Inexact: DataFusion still applies the filter, so a lookup
                // that falls back to a scan stays correct.
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let lookup = self.lookup_keys(filters);
        let exec = StateScanExec::try_new(self.schema.clone(), self.state.clone(), lookup, projection.cloned())?;
        Ok(Arc::new(StateScanExec { sliding: self.sliding.clone(), ..exec }))
    }
}

/// Finalizes a view's groups (all of them, or the looked-up keys) when run.
#[derive(Debug)]
pub struct StateScanExec {
    schema: SchemaRef,
    state: Arc<Mutex<GroupedState>>,
    lookup: Option<Vec<ArrayRef>>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    sliding: SlidingRead,
}

impl StateScanExec {
    fn try_new(
        schema: SchemaRef,
        state: Arc<Mutex<GroupedState>>,
        lookup: Option<Vec<ArrayRef>>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let projected = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self { schema, state, lookup, projection, properties, sliding: None })
    }
}

impl DisplayAs for StateScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.lookup {
            Some(keys) => write!(f, "StateScanExec: lookup of {} key(s)", keys.first().map_or(0, |k| k.len())),
            None => write!(f, "StateScanExec: all groups"),
        }
    }
}

impl ExecutionPlan for StateScanExec {
    fn name(&self) -> &str {
        "StateScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.properties.eq_properties.schema().clone();
        if self.lookup.is_none() && self.sliding.is_none() {
            // A full read: off the async workers, a chunk of groups per hold
            // of the lock, so that writers to the view are not held up.
            let (state, full, projection) = (self.state.clone(), self.schema.clone(), self.projection.clone());
            let read = async move {
                let batch = tokio::task::spawn_blocking(move || read_in_chunks(&state, &full))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
                match &projection {
                    Some(p) => Ok(batch.project(p)?),
                    None => Ok(batch),
                }
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::once(read))));
        }
        let batch = {
            let live = self.sliding.as_ref().map(|(window, clock)| (window, window.live_steps(clock.now_micros())));
            let mut state = self.state.lock();
            match (&self.lookup, live) {
                (Some(keys), Some((window, live))) if (1..=MAX_LOOKUP_STEPS).contains(&window.step_count(&live)) => {
                    let candidates = state.sliding_lookup(keys, &window.step_starts(&live))?;
                    state.evaluate_sliding(&self.schema, live, Some(candidates))?
                }
                (_, Some((_, live))) => state.evaluate_sliding(&self.schema, live, None)?,
                (Some(keys), None) => state.evaluate_keys(keys, &self.schema)?,
                (None, None) => state.evaluate_all(&self.schema)?,
            }
        };
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
    }
}

/// Groups evaluated per hold of the state lock in a full read.
const READ_CHUNK_GROUPS: usize = 16_384;
/// Times a full read starts over because groups were renumbered under it
/// (window expiry) before it takes the lock for the whole read.
const READ_ATTEMPTS: usize = 3;

/// Every group of `state`, evaluated a chunk at a time. Writes may land
/// between chunks (each group is read as it is at its chunk); if groups are
/// renumbered meanwhile, the read starts over.
fn read_in_chunks(state: &Mutex<GroupedState>, schema: &SchemaRef) -> Result<RecordBatch> {
    'attempt: for _ in 0..READ_ATTEMPTS {
        let generation = state.lock().generation();
        let mut batches = Vec::new();
        let mut start = 0;
        loop {
            let mut locked = state.lock();
            if locked.generation() != generation {
                continue 'attempt;
            }
            match locked.evaluate_range(start, READ_CHUNK_GROUPS, schema)? {
                Some(batch) => batches.push(batch),
                None => break,
            }
            if locked.groups() <= start + READ_CHUNK_GROUPS {
                break;
            }
            start += READ_CHUNK_GROUPS;
        }
        return Ok(datafusion::arrow::compute::concat_batches(schema, &batches)?);
    }
    state.lock().evaluate_all(schema)
}
