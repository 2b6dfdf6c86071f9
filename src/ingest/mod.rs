//! Getting rows into streams: `INSERT` (through DataFusion's DML planning
//! into a [`insert::StreamSink`]), `COPY` (decoded by [`decode`]), and
//! Kafka topics ([`kafka`]). Every path ends in [`write_batches`], which stamps
//! `arrival_timestamp`, checks json columns, and hands the batch to every
//! view the stream feeds; in a transaction block the checked rows are held
//! by its [`transaction::Transaction`] until `COMMIT` hands them on.

pub mod copy;
pub mod decode;
pub mod insert;
pub mod kafka;
pub mod transaction;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};

use crate::catalog::StreamEntry;
use crate::catalog::types::{PG_TYPE_KEY, UTC};
pub use crate::checkpoint::log::Commit;
use crate::stream::ViewRuntime;
use crate::stream::change::ChangeBatch;

/// Errors writing rows.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A value is not valid text for its column's type.
    #[error("{0}")]
    InvalidText(String),
    /// COPY data is malformed (wrong number of columns, bad quoting).
    #[error("{0}")]
    BadCopyData(String),
    /// A limit on buffered data was hit.
    #[error("{0}")]
    TooLarge(String),
    /// The client aborted a COPY.
    #[error("COPY from stdin failed: {0}")]
    CopyAborted(String),
    /// A view could not apply the rows; other views did.
    #[error("continuous view \"{view}\" failed to apply the rows: {}", crate::error::clean_datafusion_message(source))]
    ViewFailed {
        /// The view.
        view: String,
        /// Why; its SQLSTATE is the error's.
        source: std::sync::Arc<datafusion::error::DataFusionError>,
    },
    /// A NULL in a `NOT NULL` column.
    #[error("null value in column \"{column}\" of stream \"{stream}\" violates not-null constraint")]
    NotNull {
        /// The column.
        column: String,
        /// The stream.
        stream: String,
    },
    /// A value longer than its `varchar(n)` or `char(n)` column.
    #[error("{0}")]
    ValueTooLong(String),
    /// The rows could not be logged durably, so they were not applied.
    #[error(transparent)]
    Durability(#[from] crate::checkpoint::CheckpointError),
    /// The view was dropped or the server is shutting down.
    #[error("continuous view \"{0}\" stopped before applying the rows")]
    ViewStopped(String),
    /// A table's constraint refused the change.
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// The state is over `--max-state-memory-mb`.
    #[error(transparent)]
    OutOfMemory(#[from] crate::observe::OverBudget),
    /// A bug: the write stopped inside the server.
    #[error("internal error while writing rows: {0}")]
    Internal(String),
}

/// Writes the batches of one statement (each with the stream's full schema)
/// to every view of `stream`, and returns the rows written once all views
/// have applied them. Every batch is checked before the first is applied, so
/// bad input rejects the whole statement, as in PostgreSQL. The statement is
/// logged, durably unless `commit` is [`Commit::Async`], before any view
/// sees it; the log record carries `arrival_timestamp`, so a replay after a
/// crash gives the views exactly the same rows.
///
/// Once checked, the write runs in a task of its own, so that a client
/// that disconnects, or a shutdown that ends its connection, cannot stop it
/// between the log and the views, or between one view and the next. The
/// checkpoint gate it holds is what tracks it: a checkpoint, the shutdown
/// checkpoint included, waits until every admitted write has reached every
/// view.
pub async fn write_batches(
    stream: &Arc<StreamEntry>,
    batches: Vec<RecordBatch>,
    commit: Commit,
) -> Result<u64, IngestError> {
    check_batches(stream, &batches)?;
    let now = stream.clock().now_micros();
    let stamped = batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| stamp_arrival(b, now))
        .collect::<Result<Vec<_>, _>>()?;
    if stamped.is_empty() {
        return Ok(0);
    }
    stream.durability().budget().check()?;
    let stream = stream.clone();
    let write = async move {
        let _lookups = lock_lookups(&stream).await;
        let durability = stream.durability();
        let _admitted = durability.admit().await;
        durability.log_rows(&stream.def.name, &stamped, commit).await?;
        let mut rows = 0u64;
        for batch in stamped {
            rows += batch.num_rows() as u64;
            apply_batch(&stream, batch).await?;
        }
        Ok(rows)
    };
    let span = tracing::info_span!("write");
    match tokio::spawn(tracing::Instrument::instrument(write, span)).await {
        Ok(written) => written,
        Err(e) => Err(IngestError::Internal(format!("the write task ended: {e}"))),
    }
}

/// Checks rows for `stream`: json columns hold JSON, `NOT NULL` columns
/// values, and `varchar(n)` columns values that fit.
fn check_batches(stream: &StreamEntry, batches: &[RecordBatch]) -> Result<(), IngestError> {
    for batch in batches {
        check_json(&stream.def.schema, batch)?;
        check_not_null(stream, batch)?;
        crate::catalog::types::check_lengths(&stream.def.schema, batch).map_err(IngestError::ValueTooLong)?;
    }
    Ok(())
}

/// Takes the write lock of every table that a view of `stream` (or a view
/// downstream of one: over a derived stream, over `output_of`) joins its
/// events with, in name order (a table's own writers take only theirs), so
/// that no write to those tables falls between this write's place in the
/// log and its views' lookups: a replay after a crash then joins each event
/// with the table exactly as it was.
async fn lock_lookups(stream: &StreamEntry) -> crate::table::write::WriteGuard {
    let mut tables: Vec<Arc<crate::table::TableEntry>> = Vec::new();
    for view in stream.views() {
        tables.extend(view.looked_up_tables_downstream());
    }
    crate::table::write::lock_tables(tables).await
}

/// Stamps a checked batch and hands it to every view of `stream`, all or
/// nothing: every view pre-aggregates the rows first, and only if all of
/// them could does any merge. Rows that one view cannot apply (its
/// expression fails on them) change no view.
pub(crate) async fn apply_batch(stream: &StreamEntry, batch: RecordBatch) -> Result<(), IngestError> {
    apply_batch_as(stream, batch, false).await
}

/// [`apply_batch`] for rows the insert log does not hold (a Kafka batch,
/// which recovery consumes again): their epoch is durable only once a
/// checkpoint holds it, which Kafka sinks wait for.
pub(crate) async fn apply_unlogged_batch(stream: &StreamEntry, batch: RecordBatch) -> Result<(), IngestError> {
    apply_batch_as(stream, batch, true).await
}

async fn apply_batch_as(stream: &StreamEntry, batch: RecordBatch, unlogged: bool) -> Result<(), IngestError> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let batch = stamp_arrival(batch, stream.clock().now_micros())?;
    let views = stream.views();
    let on_time = on_time_rows(stream, &batch, &views)?;
    let epoch = match unlogged {
        true => stream.durability().next_unlogged_epoch(),
        false => stream.durability().next_epoch(),
    };
    // A view dropped while the write was on its way has nothing to apply.
    let still_there = |v: &Arc<ViewRuntime>| stream.views().iter().any(|w| Arc::ptr_eq(v, w));
    // Built once, shared by every view (their arrays are reference counted).
    let all = ChangeBatch::inserts(batch.clone(), epoch);
    let on_time = on_time.map(|rows| ChangeBatch::inserts(rows, epoch));
    let changes_for = |v: &Arc<ViewRuntime>| match &on_time {
        Some(on_time) if v.event_windowed() => on_time.clone(),
        _ => all.clone(),
    };
    let prepared = crate::stream::prepare_views(&views, &stream.def.name, changes_for, &still_there).await?;
    stream.count_rows(&batch);
    stream.publish(&all);
    crate::stream::merge_views(prepared, &still_there).await
}

/// For a stream with event time, the rows that are not late (what windowed
/// views see); the watermark advances. Decided at the rows' arrival time.
fn on_time_rows(
    stream: &StreamEntry,
    batch: &RecordBatch,
    views: &[Arc<crate::stream::ViewRuntime>],
) -> Result<Option<RecordBatch>, IngestError> {
    let Some(def) = &stream.def.event_time else {
        return Ok(None);
    };
    let schema = &stream.def.schema;
    let (Ok(column), Some(arrival)) = (schema.index_of(&def.column), arrival_of(batch)) else {
        return Ok(None);
    };
    let (on_time, late) = stream
        .watermark()
        .admit(def, batch, column, arrival)
        .map_err(|e| IngestError::InvalidText(format!("event time: {e}")))?;
    if late > 0 && views.iter().any(|v| v.event_windowed()) {
        tracing::debug!(stream = %stream.def.name, late, "late rows kept from windowed views");
    }
    Ok(Some(on_time))
}

/// When a stamped batch arrived: its newest `arrival_timestamp`.
fn arrival_of(batch: &RecordBatch) -> Option<i64> {
    let column = batch.column(batch.num_columns().checked_sub(1)?);
    datafusion::arrow::compute::max(column.as_any().downcast_ref::<TimestampMicrosecondArray>()?)
}

/// json and jsonb columns must hold valid JSON, as in PostgreSQL. The
/// stream's declared schema says which columns are json: batches planned by
/// DataFusion (INSERT) do not carry the field metadata that marks them.
fn check_json(declared: &Schema, batch: &RecordBatch) -> Result<(), IngestError> {
    for (field, column) in declared.fields().iter().zip(batch.columns()) {
        if field.metadata().get(PG_TYPE_KEY).is_none() {
            continue;
        }
        // Utf8View or LargeUtf8 from a plan must be checked too; Utf8 casts for free.
        let strings = cast(column, &DataType::Utf8)
            .map_err(|e| IngestError::InvalidText(format!("column \"{}\": {e}", field.name())))?;
        let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        for value in strings.iter().flatten() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(value) {
                let shown: String = value.chars().take(40).collect();
                return Err(IngestError::InvalidText(format!(
                    "invalid input syntax for type json in column \"{}\": \"{shown}\" ({e})",
                    field.name()
                )));
            }
        }
    }
    Ok(())
}

/// `NOT NULL` columns must have a value in every row.
fn check_not_null(stream: &StreamEntry, batch: &RecordBatch) -> Result<(), IngestError> {
    for (field, column) in stream.def.schema.fields().iter().zip(batch.columns()) {
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(IngestError::NotNull { column: field.name().clone(), stream: stream.def.name.clone() });
        }
    }
    Ok(())
}

/// Sets `arrival_timestamp` (the last column) to `now` where it is NULL.
fn stamp_arrival(batch: RecordBatch, now: i64) -> Result<RecordBatch, IngestError> {
    let last = batch.num_columns().saturating_sub(1);
    let column = batch.column(last);
    if column.null_count() == 0 || !matches!(column.data_type(), DataType::Timestamp(_, _)) {
        return Ok(batch);
    }
    let stamped: TimestampMicrosecondArray = match column.as_any().downcast_ref::<TimestampMicrosecondArray>() {
        Some(ts) => ts.iter().map(|v| Some(v.unwrap_or(now))).collect(),
        None => (0..batch.num_rows()).map(|_| Some(now)).collect(),
    };
    let stamped: ArrayRef = Arc::new(stamped.with_timezone(UTC));
    let mut columns = batch.columns().to_vec();
    columns[last] = stamped;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| IngestError::InvalidText(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::types::field_for_sql_type;
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::datatypes::Field;

    fn declared() -> Schema {
        Schema::new(vec![field_for_sql_type("payload", "json").unwrap()])
    }

    /// INSERT's batches come from a DataFusion plan, whose fields lack the
    /// metadata that marks json columns: the declared schema decides.
    #[test]
    fn checks_json_by_declared_schema() {
        let plain = Arc::new(Schema::new(vec![Field::new("payload", DataType::Utf8, true)]));
        let bad =
            RecordBatch::try_new(plain.clone(), vec![Arc::new(StringArray::from(vec![Some("{\"a\":1}"), Some("{")]))])
                .unwrap();
        assert!(matches!(check_json(&declared(), &bad), Err(IngestError::InvalidText(_))));
        let good =
            RecordBatch::try_new(plain, vec![Arc::new(StringArray::from(vec![Some("{\"a\":1}"), None]))]).unwrap();
        assert!(check_json(&declared(), &good).is_ok());
    }

    #[test]
    fn checks_json_in_string_views() {
        let view = Arc::new(Schema::new(vec![Field::new("payload", DataType::Utf8View, true)]));
        let bad = RecordBatch::try_new(view, vec![Arc::new(StringViewArray::from(vec!["nope"]))]).unwrap();
        assert!(check_json(&declared(), &bad).is_err());
    }
}
