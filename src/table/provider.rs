//! A table as DataFusion sees it: scanned by `SELECT` (a primary-key
//! equality becomes a lookup), and written by `INSERT`, `UPDATE` and
//! `DELETE`, which DataFusion plans (column lists, casts, parameters) and
//! which end in a [`TableSink`] that computes the change and commits it
//! through [`super::write`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{and_kleene, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, SendableRecordBatchStream};

use parking_lot::Mutex;

use super::TableEntry;
use super::claim::STATEMENT;
use super::conflict::OnConflict;
use super::overlay::Overlay;
use super::rows::TableRows;
use super::scan::TableScanExec;
use crate::ingest::IngestError;

/// A table, for DataFusion; with `on_conflict`, its inserts follow
/// `ON CONFLICT`.
#[derive(Debug, Clone)]
pub struct TableRelation {
    table: Arc<TableEntry>,
    on_conflict: Option<Arc<OnConflict>>,
    /// The table's columns, all nullable: NOT NULL is checked by the table
    /// itself, with PostgreSQL's error (23502), not by DataFusion first.
    schema: SchemaRef,
}

impl TableRelation {
    /// `table`, inserting without `ON CONFLICT`.
    pub fn new(table: Arc<TableEntry>) -> Self {
        let fields = table.def.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true));
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()));
        Self { table, on_conflict: None, schema }
    }

    /// `table`, inserting with `on_conflict`.
    pub fn with_conflict(table: Arc<TableEntry>, on_conflict: OnConflict) -> Self {
        Self { on_conflict: Some(Arc::new(on_conflict)), ..Self::new(table) }
    }

    /// The `index`th column as declared (its default and identity), and
    /// whether it is NOT NULL (declared so, or in the primary key).
    pub fn declared_column(&self, index: usize) -> Option<(&crate::checkpoint::manifest::ColumnRecord, bool)> {
        let column = self.table.def.columns.get(index)?;
        Some((column, column.not_null || self.table.def.primary_key.contains(&column.name)))
    }

    /// The primary-key values a filter pins the (one-column) key to.
    fn key_values(&self, filter: &Expr) -> Option<Vec<ScalarValue>> {
        let [key_name] = self.table.def.primary_key.as_slice() else {
            return None;
        };
        let is_key = |e: &Expr| matches!(e, Expr::Column(c) if &c.name == key_name);
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
                (col, Expr::Literal(v, _)) | (Expr::Literal(v, _), col) if is_key(col) => Some(vec![v.clone()]),
                _ => None,
            },
            Expr::InList(list) if !list.negated && is_key(&list.expr) => list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => Some(v.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// The rows of `rows` the filters could select, now: a lookup when one
    /// pins the primary key, else every row.
    fn candidates(&self, filters: &[Expr], rows: &Mutex<TableRows>) -> Result<RecordBatch> {
        let keys = filters.iter().find_map(|f| self.key_values(f));
        TableScanExec::try_new(self.table.clone(), self.table.def.schema.clone(), keys, None)?.rows_in(&rows.lock())
    }

    /// The plan that runs `op`, over `input`'s rows (an INSERT's) or none.
    fn sink(&self, op: WriteOp, input: Option<Arc<dyn ExecutionPlan>>) -> Arc<dyn ExecutionPlan> {
        let schema = self.schema.clone();
        let input = input.unwrap_or_else(|| Arc::new(EmptyExec::new(schema.clone())));
        let sink = Arc::new(TableSink { table: self.table.clone(), schema, op });
        Arc::new(DataSinkExec::new(input, sink, None))
    }

    fn physical(&self, state: &dyn Session, exprs: &[Expr]) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
        let schema = DFSchema::try_from_qualified_schema(self.table.def.name.as_str(), &self.schema)?;
        exprs.iter().map(|e| state.create_physical_expr(e.clone(), &schema)).collect()
    }
}

fn external(e: impl Into<IngestError>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

#[async_trait]
impl TableProvider for TableRelation {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        let index = self.table.def.schema.index_of(column).ok()?;
        self.table.def.defaults.get(index)?.as_ref()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.key_values(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
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
        // A lookup when a filter pins the primary key, else every row; read
        // when the plan runs (see `super::scan`).
        let keys = filters.iter().find_map(|f| self.key_values(f));
        let scan = TableScanExec::try_new(self.table.clone(), self.schema.clone(), keys, projection.cloned())?;
        Ok(Arc::new(scan))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self.sink(WriteOp::Insert(self.on_conflict.clone()), Some(input)))
    }

    async fn delete_from(&self, state: &dyn Session, filters: Vec<Expr>) -> Result<Arc<dyn ExecutionPlan>> {
        let physical = self.physical(state, &filters)?;
        Ok(self.sink(WriteOp::Delete { filters, physical }, None))
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let physical = self.physical(state, &filters)?;
        let schema = &self.table.def.schema;
        let mut set = Vec::new();
        for (column, expr) in assignments {
            let index = schema.index_of(&column)?;
            if let Some(expr_is_column) = match &expr {
                Expr::Column(c) => Some(c.name == column),
                _ => None,
            } && expr_is_column
            {
                continue; // DataFusion lists unassigned columns as themselves
            }
            let [value] = <[_; 1]>::try_from(self.physical(state, &[expr])?)
                .map_err(|_| DataFusionError::Internal("one expression planned into several".into()))?;
            set.push((index, value));
        }
        Ok(self.sink(WriteOp::Update { filters, physical, set }, None))
    }
}

/// What a statement does to the table.
#[derive(Debug)]
enum WriteOp {
    /// `INSERT`, with its `ON CONFLICT`.
    Insert(Option<Arc<OnConflict>>),
    /// `DELETE ... WHERE filters`.
    Delete { filters: Vec<Expr>, physical: Vec<Arc<dyn PhysicalExpr>> },
    /// `UPDATE ... SET set WHERE filters`.
    Update { filters: Vec<Expr>, physical: Vec<Arc<dyn PhysicalExpr>>, set: Vec<(usize, Arc<dyn PhysicalExpr>)> },
}

/// Computes a statement's change and commits it.
struct TableSink {
    table: Arc<TableEntry>,
    schema: SchemaRef,
    op: WriteOp,
}

impl fmt::Debug for TableSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableSink").field("table", &self.table.def.name).finish()
    }
}

impl DisplayAs for TableSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableSink: {}", self.table.def.name)
    }
}

#[async_trait]
impl DataSink for TableSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> Result<u64> {
        let (held, commit) = crate::ingest::insert::hold_statement(data, context).await?;
        if let Some(overlay) = context.session_config().get_extension::<Overlay>() {
            // In a transaction block: read and change its copy of the rows.
            let rows = overlay.enter(&self.table).await.map_err(external)?;
            let (deletes, inserts, count) = self.change(&held, &rows).await?;
            overlay.record(&self.table, deletes, inserts).map_err(external)?;
            return Ok(count);
        }
        let _claim = self.table.claim(STATEMENT).await.map_err(external)?;
        let guard = self.table.begin_write().await;
        let (deletes, inserts, count) = self.change(&held, self.table.rows()).await?;
        super::write::commit(&self.table, guard, deletes, inserts, commit).await.map_err(external)?;
        Ok(count)
    }
}

impl TableSink {
    /// The statement's change of `rows` (the table's, or a transaction's
    /// copy): the rows it removes, those it adds, and the count its tag
    /// reports.
    async fn change(&self, held: &[RecordBatch], rows: &Mutex<TableRows>) -> Result<(RecordBatch, RecordBatch, u64)> {
        let relation = TableRelation::new(self.table.clone());
        Ok(match &self.op {
            WriteOp::Insert(conflict) => {
                let proposed = typed(&self.table.def.schema, held)?;
                match conflict {
                    None => (proposed.slice(0, 0), proposed.clone(), proposed.num_rows() as u64),
                    Some(c) => c.resolve(&self.table, rows, proposed).await.map_err(external)?,
                }
            }
            WriteOp::Delete { filters, physical } => {
                let selected = select(&relation.candidates(filters, rows)?, physical)?;
                let n = selected.num_rows() as u64;
                (selected.clone(), selected.slice(0, 0), n)
            }
            WriteOp::Update { filters, physical, set } => {
                let selected = select(&relation.candidates(filters, rows)?, physical)?;
                let updated = assign(&self.table.def.schema, &selected, set)?;
                (selected.clone(), updated, selected.num_rows() as u64)
            }
        })
    }
}

/// The rows for which every filter is true.
fn select(rows: &RecordBatch, filters: &[Arc<dyn PhysicalExpr>]) -> Result<RecordBatch> {
    let mut mask: Option<BooleanArray> = None;
    for filter in filters {
        let value = filter.evaluate(rows)?.into_array(rows.num_rows())?;
        let Some(b) = value.as_any().downcast_ref::<BooleanArray>() else {
            return Err(DataFusionError::Plan("a WHERE condition must be boolean".into()));
        };
        mask = Some(match mask {
            Some(m) => and_kleene(&m, b)?,
            None => b.clone(),
        });
    }
    Ok(match mask {
        Some(m) => filter_record_batch(rows, &m)?,
        None => rows.clone(),
    })
}

/// The rows with `set`'s columns replaced, cast to the columns' types.
fn assign(schema: &SchemaRef, rows: &RecordBatch, set: &[(usize, Arc<dyn PhysicalExpr>)]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    for (index, expr) in set {
        let value = expr.evaluate(rows)?.into_array(rows.num_rows())?;
        columns[*index] = cast_checked(&value, schema, *index)?;
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// One batch of the table's schema from what DataFusion's INSERT planned.
fn typed(schema: &SchemaRef, held: &[RecordBatch]) -> Result<RecordBatch> {
    let mut batches = Vec::with_capacity(held.len());
    for batch in held {
        let columns =
            (0..schema.fields().len()).map(|i| cast_checked(batch.column(i), schema, i)).collect::<Result<Vec<_>>>()?;
        batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(datafusion::arrow::compute::concat_batches(schema, &batches)?)
}

fn cast_checked(value: &ArrayRef, schema: &SchemaRef, index: usize) -> Result<ArrayRef> {
    let field = schema.field(index);
    if value.data_type() == field.data_type() {
        return Ok(value.clone());
    }
    let options = datafusion::arrow::compute::CastOptions { safe: false, ..Default::default() };
    datafusion::arrow::compute::cast_with_options(value, field.data_type(), &options).map_err(|e| {
        external(IngestError::InvalidText(format!("column \"{}\" is of type {}: {e}", field.name(), field.data_type())))
    })
}
