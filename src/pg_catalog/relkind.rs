//! `pg_class` with streams as foreign tables (`relkind` `f`), as PipelineDB
//! showed them, so `\d` lists them as such and `\dt` (ordinary tables) does
//! not.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

/// The crate's `pg_class`, with the `relkind` of `streams` set to `f`.
#[derive(Debug)]
pub struct StreamsAsForeignTables {
    inner: Arc<dyn TableProvider>,
    streams: HashSet<String>,
}

impl StreamsAsForeignTables {
    pub fn new(inner: Arc<dyn TableProvider>, streams: HashSet<String>) -> Self {
        Self { inner, streams }
    }

    fn relabel(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let (Ok(name_at), Ok(kind_at)) = (schema.index_of("relname"), schema.index_of("relkind")) else {
            return Ok(batch);
        };
        let (Some(names), Some(kinds)) =
            (batch.column(name_at).as_string_opt::<i32>(), batch.column(kind_at).as_string_opt::<i32>())
        else {
            return Ok(batch);
        };
        let relabelled: StringArray = (0..batch.num_rows())
            .map(|i| {
                let kind = (!kinds.is_null(i)).then(|| kinds.value(i));
                match kind {
                    Some("r") if !names.is_null(i) && self.streams.contains(names.value(i)) => Some("f"),
                    other => other,
                }
            })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[kind_at] = Arc::new(relabelled);
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for StreamsAsForeignTables {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    /// Reads the whole of the crate's `pg_class` (a few rows per relation),
    /// relabels it, and scans that.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let batches = batches.into_iter().map(|b| self.relabel(b)).collect::<Result<Vec<_>>>()?;
        MemTable::try_new(self.schema(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}
