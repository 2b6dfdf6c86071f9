//! `INSERT INTO stream ...`: DataFusion plans the INSERT (VALUES or SELECT,
//! column lists, casts to the stream's types, parameters) against a
//! [`StreamTable`], whose sink holds the statement's batches and then
//! writes them to the stream's views: all of them, or none on bad input.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

use super::{Commit, IngestError, write_batches};
use crate::checkpoint::SessionCommit;

/// Most rows, in bytes of Arrow memory, one INSERT may hold before it is
/// applied: the same bound a COPY has by default.
pub const INSERT_HELD_MAX_BYTES: usize = crate::server::config::DEFAULT_COPY_MAX_BYTES;
use crate::catalog::StreamEntry;
use crate::planner::PlanError;

/// A stream as client queries see it: writable, not readable.
#[derive(Debug)]
pub struct StreamTable {
    stream: Arc<StreamEntry>,
}

impl StreamTable {
    /// The table for `stream`.
    pub fn new(stream: Arc<StreamEntry>) -> Self {
        Self { stream }
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.stream.def.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::External(Box::new(PlanError::StreamRead(self.stream.def.name.clone()))))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // NOT NULL is checked by `write_batches`, with PostgreSQL's error;
        // the sink's schema lets NULLs through so DataFusion does not check first.
        let fields = self.stream.def.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true));
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()));
        let sink = Arc::new(StreamSink { stream: self.stream.clone(), schema });
        Ok(Arc::new(DataSinkExec::new(input, sink, None)))
    }
}

/// Writes inserted batches to the stream's views.
#[derive(Debug)]
pub struct StreamSink {
    stream: Arc<StreamEntry>,
    /// The stream's schema with every column nullable.
    schema: SchemaRef,
}

impl DisplayAs for StreamSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamSink: {}", self.stream.def.name)
    }
}

#[async_trait]
impl DataSink for StreamSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> Result<u64> {
        let (held, commit) = hold_statement(data, context).await?;
        let written = match context.session_config().get_extension::<super::transaction::Transaction>() {
            Some(transaction) => transaction.hold(&self.stream, held),
            None => write_batches(&self.stream, held, commit).await,
        };
        written.map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// Collects a writing statement's rows, and its session's commit mode.
/// The whole statement is held before any of it is applied, so an error in
/// a later batch (a bad cast, invalid JSON) changes nothing, as COPY does;
/// what is held is bounded by [`INSERT_HELD_MAX_BYTES`].
pub async fn hold_statement(
    mut data: SendableRecordBatchStream,
    context: &Arc<TaskContext>,
) -> Result<(Vec<RecordBatch>, Commit)> {
    let commit = context.session_config().get_extension::<SessionCommit>().map_or(Commit::Sync, |c| c.0);
    let mut held = Vec::new();
    let mut bytes = 0usize;
    while let Some(batch) = data.next().await {
        let batch = batch?;
        bytes += batch.get_array_memory_size();
        if bytes > INSERT_HELD_MAX_BYTES {
            return Err(DataFusionError::External(Box::new(IngestError::TooLarge(format!(
                "INSERT holds more than {} MiB of rows; split it into several INSERT statements",
                INSERT_HELD_MAX_BYTES / (1024 * 1024)
            )))));
        }
        held.push(batch);
    }
    Ok((held, commit))
}
