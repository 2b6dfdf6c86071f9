//! A `COPY ... FROM STDIN` in progress.
//!
//! Data is decoded as it arrives, and the decoded batches are held until the
//! client's CopyDone: a COPY applies all of its rows or none, as in
//! PostgreSQL, so a client that fails or disconnects mid-COPY leaves the
//! views untouched. The held batches are bounded by `max_bytes`.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::decode::RowDecoder;
use super::{Commit, IngestError, write_batches};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;

use crate::catalog::{Catalog, CatalogError, Relation, StreamEntry};
use crate::sql::statement::copy::CopyFrom;
use crate::table::{TableEntry, TableError};

/// What a COPY writes to.
#[derive(Debug, Clone)]
pub enum CopyTarget {
    /// A stream: its views see the rows.
    Stream(Arc<StreamEntry>),
    /// A table: the rows are inserted, as by one INSERT.
    Table(Arc<TableEntry>),
}

impl CopyTarget {
    /// The stream or table called `name`.
    pub fn find(catalog: &Catalog, name: &str) -> Result<Self, CatalogError> {
        match catalog.relation(name) {
            Some(Relation::Table(t)) => Ok(Self::Table(t)),
            _ => catalog.stream(name).map(Self::Stream),
        }
    }

    /// Its full schema.
    pub fn schema(&self) -> &SchemaRef {
        match self {
            Self::Stream(s) => &s.def.schema,
            Self::Table(t) => &t.def.schema,
        }
    }

    /// The columns a COPY without a column list fills.
    pub fn user_columns(&self) -> &[datafusion::arrow::datatypes::FieldRef] {
        match self {
            Self::Stream(s) => crate::catalog::user_fields(&s.def.schema),
            Self::Table(t) => &t.def.schema.fields()[..],
        }
    }
}

/// One COPY's progress.
#[derive(Debug)]
pub struct CopyIn {
    target: CopyTarget,
    decoder: RowDecoder,
    batches: Vec<RecordBatch>,
    bytes: usize,
    max_bytes: usize,
    /// The first error; later data is ignored and the error is reported at
    /// CopyDone, which keeps the protocol in step with the client.
    error: Option<IngestError>,
    /// When the COPY started, for its latency.
    started: std::time::Instant,
}

impl CopyIn {
    /// When the COPY started.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    /// Starts a COPY into `target`.
    /// `max_bytes` bounds the rows held, `max_record_bytes` one record.
    pub fn new(
        target: CopyTarget,
        copy: &CopyFrom,
        max_bytes: usize,
        max_record_bytes: usize,
    ) -> Result<Self, IngestError> {
        let decoder = RowDecoder::new(copy.format.clone(), target.schema().clone(), &copy.columns)?
            .with_max_record_bytes(max_record_bytes);
        let started = std::time::Instant::now();
        Ok(Self { target, decoder, batches: Vec::new(), bytes: 0, max_bytes, error: None, started })
    }

    /// Takes one CopyData chunk.
    pub fn data(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        match self.decoder.feed(chunk) {
            Ok(batches) => self.hold(batches),
            Err(e) => self.error = Some(e),
        }
    }

    fn hold(&mut self, batches: Vec<RecordBatch>) {
        for b in batches {
            self.bytes += b.get_array_memory_size();
            self.batches.push(b);
        }
        if self.bytes > self.max_bytes {
            self.batches.clear();
            self.error = Some(IngestError::TooLarge(format!(
                "COPY holds more than {} MiB of rows; split the data into several COPY commands or raise --copy-max-bytes",
                self.max_bytes / (1024 * 1024)
            )));
        }
    }

    /// Ends the COPY: applies every row, or reports the first error. In a
    /// transaction block the rows wait for its `COMMIT`.
    pub async fn finish(
        mut self,
        commit: Commit,
        transaction: Option<Arc<super::transaction::Transaction>>,
    ) -> Result<u64, IngestError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.decoder.finish() {
            Ok(last) => self.hold(last.into_iter().collect()),
            Err(e) => return Err(e),
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match (self.target, transaction) {
            (CopyTarget::Stream(stream), None) => write_batches(&stream, self.batches, commit).await,
            (CopyTarget::Stream(stream), Some(transaction)) => transaction.hold(&stream, self.batches),
            (CopyTarget::Table(table), transaction) => {
                let rows = concat_batches(&table.def.schema, &self.batches).map_err(TableError::from)?;
                let n = rows.num_rows() as u64;
                if let Some(transaction) = transaction {
                    transaction.overlay().enter(&table).await?;
                    transaction.overlay().record(&table, rows.slice(0, 0), rows)?;
                    return Ok(n);
                }
                let _claim = table.claim(crate::table::claim::STATEMENT).await?;
                let guard = table.begin_write().await;
                crate::table::write::commit(&table, guard, rows.slice(0, 0), rows, commit).await?;
                Ok(n)
            }
        }
    }
}
