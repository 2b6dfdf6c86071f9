//! The leaf of a view's incremental plan: the current micro-batch.
//!
//! A view's pre-aggregation plan is built once. Its scan of the stream is a
//! [`BatchSourceExec`] that, each time the plan runs, yields whatever batch
//! the view's operator put in its [`BatchSlot`].
//!
//! A view that joins several tables has one [`DeltaSource`] per table: a
//! change to one table is joined with the others as they are (the delta
//! rule of a join: Δ(A ⋈ B) = ΔA ⋈ B while B does not change). The plan is
//! specialized once per table ([`specialize`]): in table i's plan, table
//! i's scan is the change batch and every other table's scan reads its
//! rows, so joins on a table's primary key become point lookups
//! (`super::lookup`) in every direction they can.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::common::internal_err;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};
use parking_lot::Mutex;

use crate::table::TableEntry;
use crate::table::scan::TableScanExec;

/// Where an operator hands a micro-batch to its plan.
#[derive(Debug, Default)]
pub struct BatchSlot {
    batches: Mutex<Vec<RecordBatch>>,
}

impl BatchSlot {
    /// Puts the next batch in; the plan's next run takes it.
    pub fn put(&self, batch: RecordBatch) {
        self.batches.lock().push(batch);
    }

    fn take(&self) -> Vec<RecordBatch> {
        std::mem::take(&mut *self.batches.lock())
    }
}

/// A stream, as the view planner sees it: a table whose scan is the slot.
#[derive(Debug)]
pub struct StreamSource {
    schema: SchemaRef,
    slot: Arc<BatchSlot>,
}

impl StreamSource {
    /// A source for a stream with `schema`, fed through `slot`.
    pub fn new(schema: SchemaRef, slot: Arc<BatchSlot>) -> Self {
        Self { schema, slot }
    }
}

#[async_trait]
impl TableProvider for StreamSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(BatchSourceExec::try_new(self.schema.clone(), self.slot.clone(), projection.cloned())?))
    }
}

/// Yields the slot's batches, projected.
#[derive(Debug)]
pub struct BatchSourceExec {
    slot: Arc<BatchSlot>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl BatchSourceExec {
    fn try_new(schema: SchemaRef, slot: Arc<BatchSlot>, projection: Option<Vec<usize>>) -> Result<Self> {
        let projected = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self { slot, projection, properties })
    }
}

impl DisplayAs for BatchSourceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BatchSourceExec")
    }
}

impl ExecutionPlan for BatchSourceExec {
    fn name(&self) -> &str {
        "BatchSourceExec"
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
        let batches = self.slot.take();
        let schema = self.properties.eq_properties.schema().clone();
        let batches = match &self.projection {
            Some(p) => batches.iter().map(|b| b.project(p)).collect::<std::result::Result<Vec<_>, _>>()?,
            None => batches,
        };
        Ok(Box::pin(MemoryStream::try_new(batches, schema, None)?))
    }
}

/// A table that is one of several inputs of a join view (see the module
/// doc).
#[derive(Debug)]
pub struct DeltaSource {
    index: usize,
    slot: Arc<BatchSlot>,
    table: Arc<TableEntry>,
}

impl DeltaSource {
    /// Input `index` of a join view, `table`, fed through `slot`.
    pub fn new(index: usize, slot: Arc<BatchSlot>, table: Arc<TableEntry>) -> Self {
        Self { index, slot, table }
    }
}

#[async_trait]
impl TableProvider for DeltaSource {
    fn schema(&self) -> SchemaRef {
        self.table.def.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let delta = BatchSourceExec::try_new(schema.clone(), self.slot.clone(), projection.cloned())?;
        let live = TableScanExec::try_new(self.table.clone(), schema, None, projection.cloned())?;
        Ok(Arc::new(DeltaScanExec { index: self.index, delta: Arc::new(delta), live: Arc::new(live) }))
    }
}

/// A join view's scan of one of its tables, before the plan is specialized
/// to the input that changed: the change batch, or the table's rows.
#[derive(Debug)]
pub struct DeltaScanExec {
    index: usize,
    delta: Arc<dyn ExecutionPlan>,
    live: Arc<dyn ExecutionPlan>,
}

/// `plan` for a change of input `input`: that input's scans yield the change
/// batch, every other input's its rows.
pub fn specialize(plan: &Arc<dyn ExecutionPlan>, input: usize) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .clone()
        .transform_down(|node| match node.downcast_ref::<DeltaScanExec>() {
            Some(scan) => {
                let chosen = if scan.index == input { scan.delta.clone() } else { scan.live.clone() };
                Ok(Transformed::new(chosen, true, TreeNodeRecursion::Jump))
            }
            None => Ok(Transformed::no(node)),
        })?
        .data)
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeltaScanExec: input={}", self.index)
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.delta.properties()
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
        internal_err!(
            "a join view's plan runs specialized to the input that changed (planner::batch_source::specialize)"
        )
    }
}
