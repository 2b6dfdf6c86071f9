//! Reading a table's rows when a plan runs, not when it is planned.
//!
//! A client's `SELECT` plans and runs at once, so either would do; but a
//! continuous view that joins a stream with a table builds its plan once and
//! runs it on every micro-batch, and each run must see the table as it is
//! then (a lookup join's "as of the write" semantics). [`TableScanExec`]
//! takes the rows (or the rows a primary-key filter pins) at `execute`.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use super::TableEntry;
use crate::ingest::IngestError;

/// Yields a table's rows as they are when run: all of them, or those whose
/// (one-column) primary key is one of `keys`.
#[derive(Debug)]
pub struct TableScanExec {
    table: Arc<TableEntry>,
    /// The schema rows are given with (every column nullable).
    schema: SchemaRef,
    keys: Option<Vec<ScalarValue>>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl TableScanExec {
    /// A scan of `table`, rows given with `schema`, projected.
    pub fn try_new(
        table: Arc<TableEntry>,
        schema: SchemaRef,
        keys: Option<Vec<ScalarValue>>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let projected = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema.clone(),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self { table, schema, keys, projection, properties })
    }

    /// The rows the scan selects, now.
    pub(super) fn rows(&self) -> Result<RecordBatch> {
        let rows = self.table.rows().lock();
        let found = match &self.keys {
            Some(values) => {
                let key_type = self.table.def.schema.field(rows.primary_key()[0]).data_type().clone();
                let array = ScalarValue::iter_to_array(values.clone())?;
                rows.lookup(&[cast(&array, &key_type)?])
            }
            None => rows.snapshot(),
        };
        let found = found.map_err(|e| DataFusionError::External(Box::new(IngestError::from(e))))?;
        Ok(RecordBatch::try_new(self.schema.clone(), found.columns().to_vec())?)
    }
}

impl DisplayAs for TableScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.keys {
            Some(keys) => write!(f, "TableScanExec: table={}, keys={}", self.table.def.name, keys.len()),
            None => write!(f, "TableScanExec: table={}", self.table.def.name),
        }
    }
}

impl ExecutionPlan for TableScanExec {
    fn name(&self) -> &str {
        "TableScanExec"
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
        let rows = self.rows()?;
        let rows = match &self.projection {
            Some(p) => rows.project(p)?,
            None => rows,
        };
        let schema = self.properties.eq_properties.schema().clone();
        Ok(Box::pin(MemoryStream::try_new(vec![rows], schema, None)?))
    }
}
