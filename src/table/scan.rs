//! Reading a table's rows when a plan runs, not when it is planned.
//!
//! A client's `SELECT` plans and runs at once, so either would do; but a
//! continuous view that joins a stream with a table builds its plan once and
//! runs it on every micro-batch, and each run must see the table as it is
//! then (a lookup join's "as of the write" semantics). [`TableScanExec`]
//! takes the rows (or the rows a primary-key filter pins, or the keys a
//! lookup join recorded, see `crate::planner::lookup`) when first polled.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use parking_lot::Mutex;

use super::TableEntry;
use crate::ingest::IngestError;

/// The primary keys a lookup join's stream side recorded in one run, one
/// array per key column per batch.
#[derive(Debug, Default)]
pub struct LookupKeys {
    batches: Mutex<Vec<Vec<ArrayRef>>>,
}

impl LookupKeys {
    /// Forgets the last run's keys.
    pub fn clear(&self) {
        self.batches.lock().clear();
    }

    /// Records one batch's keys.
    pub fn push(&self, keys: Vec<ArrayRef>) {
        self.batches.lock().push(keys);
    }

    /// Every recorded key, one array per key column.
    fn all(&self) -> Result<Vec<ArrayRef>> {
        let batches = self.batches.lock();
        let columns = batches.first().map_or(0, |b| b.len());
        (0..columns)
            .map(|c| {
                let arrays: Vec<&dyn Array> = batches.iter().map(|b| b[c].as_ref()).collect();
                Ok(concat(&arrays)?)
            })
            .collect()
    }
}

/// Which rows a scan reads.
#[derive(Debug, Clone)]
enum Keys {
    /// Every row.
    All,
    /// The rows whose (one-column) primary key is one of these.
    Fixed(Vec<ScalarValue>),
    /// The rows whose primary key a lookup join recorded in this run.
    Probed(Arc<LookupKeys>),
}

/// Yields a table's rows as they are when first polled: all of them, or
/// those a primary-key filter or a lookup join selects.
#[derive(Debug, Clone)]
pub struct TableScanExec {
    table: Arc<TableEntry>,
    /// The schema rows are given with (every column nullable).
    schema: SchemaRef,
    keys: Keys,
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
        let keys = match keys {
            Some(values) => Keys::Fixed(values),
            None => Keys::All,
        };
        Ok(Self { table, schema, keys, projection, properties })
    }

    /// This scan, reading only the keys a lookup join records in `keys`.
    pub fn probing(&self, keys: Arc<LookupKeys>) -> Self {
        Self { keys: Keys::Probed(keys), ..self.clone() }
    }

    /// Whether the scan reads every row.
    pub fn full_scan(&self) -> bool {
        matches!(self.keys, Keys::All)
    }

    /// The primary key's columns as indices of the scan's output, if the
    /// table has a key and the scan outputs every key column.
    pub fn primary_key_columns(&self) -> Option<Vec<usize>> {
        let key = self.table.rows().lock().primary_key().to_vec();
        if key.is_empty() {
            return None;
        }
        key.iter()
            .map(|k| match &self.projection {
                Some(p) => p.iter().position(|c| c == k),
                None => Some(*k),
            })
            .collect()
    }

    /// The primary key columns' types, in key order.
    pub fn primary_key_types(&self) -> Vec<DataType> {
        let rows = self.table.rows().lock();
        rows.primary_key().iter().map(|&k| self.table.def.schema.field(k).data_type().clone()).collect()
    }

    /// The type of output column `at`.
    pub fn column_type(&self, at: usize) -> Option<DataType> {
        let schema = self.properties.eq_properties.schema();
        (at < schema.fields().len()).then(|| schema.field(at).data_type().clone())
    }

    /// The rows the scan selects, now, unprojected.
    pub(super) fn rows(&self) -> Result<RecordBatch> {
        self.rows_in(&self.table.rows().lock())
    }

    /// The rows the scan selects from `rows` (the table's, or a
    /// transaction's copy of them), unprojected.
    pub(super) fn rows_in(&self, rows: &super::rows::TableRows) -> Result<RecordBatch> {
        let found = match &self.keys {
            Keys::All => rows.snapshot(),
            Keys::Fixed(values) => {
                let key_type = self.table.def.schema.field(rows.primary_key()[0]).data_type().clone();
                let array = ScalarValue::iter_to_array(values.clone())?;
                rows.lookup(&[cast(&array, &key_type)?])
            }
            Keys::Probed(keys) => {
                let keys = keys.all()?;
                if keys.is_empty() {
                    Ok(RecordBatch::new_empty(self.table.def.schema.clone()))
                } else {
                    rows.lookup(&keys)
                }
            }
        };
        let found = found.map_err(|e| DataFusionError::External(Box::new(IngestError::from(e))))?;
        Ok(RecordBatch::try_new(self.schema.clone(), found.columns().to_vec())?)
    }

    /// The rows, projected: from `private` when the statement runs in a
    /// transaction that changed the table (it reads its own writes).
    fn projected_rows(&self, private: Option<Arc<parking_lot::Mutex<super::rows::TableRows>>>) -> Result<RecordBatch> {
        let rows = match private {
            Some(rows) => self.rows_in(&rows.lock())?,
            None => self.rows()?,
        };
        Ok(match &self.projection {
            Some(p) => rows.project(p)?,
            None => rows,
        })
    }
}

impl DisplayAs for TableScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.keys {
            Keys::All => write!(f, "TableScanExec: table={}", self.table.def.name),
            Keys::Fixed(keys) => write!(f, "TableScanExec: table={}, keys={}", self.table.def.name, keys.len()),
            Keys::Probed(_) => write!(f, "TableScanExec: table={}, keys=probed", self.table.def.name),
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

    fn execute(&self, _partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        // Read when first polled: a lookup join's keys are complete then.
        let scan = self.clone();
        let schema = self.properties.eq_properties.schema().clone();
        let private = context
            .session_config()
            .get_extension::<super::overlay::Overlay>()
            .and_then(|overlay| overlay.rows_of(&self.table));
        let rows = futures::stream::once(async move { scan.projected_rows(private) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}
