//! Arrow results to PostgreSQL rows, and replies to pgwire responses.
//!
//! arrow-pg does the per-type text and binary encodings; Eddy adds the
//! PostgreSQL types Arrow cannot express (`json`, `jsonb`, carried as field
//! metadata), writes the forms arrow-pg gets wrong (`pg_text`, `pg_binary`)
//! and PostgreSQL's command tags.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};

use crate::catalog::types::PG_TYPE_KEY;
use crate::sql::naming::REPEAT_MARK;

mod pg_binary;
mod pg_text;

/// Column descriptions for `schema` in `format`.
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let shown;
    let schema = match schema.fields().iter().any(|f| f.name().contains(REPEAT_MARK)) {
        true => {
            shown = shown_names(schema);
            &shown
        }
        false => schema,
    };
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for (i, field) in schema.fields().iter().enumerate() {
        let pg_type = match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
            Some("json") => Type::JSON,
            Some("jsonb") => Type::JSONB,
            _ => continue,
        };
        fields[i] = FieldInfo::new(field.name().clone(), None, None, pg_type, format.format_for(i));
    }
    Ok(fields)
}

/// `schema` with the names a client is shown (a repeated column name
/// without its mark: see `crate::sql::naming`).
fn shown_names(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(crate::sql::naming::shown_name(f.name())))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Rows as a query response.
pub fn rows(schema: &Schema, batches: Vec<RecordBatch>, format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(pg_fields(schema, format)?);
    let batches = batches.into_iter().map(|b| wire_batch(b, &fields, format)).collect::<PgWireResult<Vec<_>>>()?;
    let encoder_fields = fields.clone();
    let rows = batches.into_iter().flat_map(move |b| encode_recordbatch(encoder_fields.clone(), b));
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
}

/// One batch's rows as DataRows, described by `fields`.
pub fn data_rows(
    batch: RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    format: &Format,
) -> PgWireResult<Vec<pgwire::messages::data::DataRow>> {
    let batch = wire_batch(batch, fields, format)?;
    encode_recordbatch(fields.clone(), batch).collect()
}

/// Rewrites the columns whose wire form arrow-pg does not give as
/// PostgreSQL does: binary jsonb, numeric and interval, and the text of floats and timestamps. The
/// type each column is described with (`fields`) stays.
fn wire_batch(batch: RecordBatch, fields: &[FieldInfo], format: &Format) -> PgWireResult<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (i, field) in fields.iter().enumerate() {
        let replaced = if !format.is_binary(i) {
            pg_text::text(&columns[i])
        } else if *field.datatype() == Type::JSONB {
            jsonb_binary(&columns[i])
        } else if matches!(*field.datatype(), Type::NUMERIC | Type::INTERVAL) {
            pg_binary::binary(&columns[i])
        } else {
            None
        };
        if let Some(array) = replaced {
            columns[i] = array;
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    let schema = Schema::new(
        batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// jsonb's binary form is a version byte (1) and the JSON text, which
/// arrow-pg sends as is from a binary column.
fn jsonb_binary(column: &ArrayRef) -> Option<ArrayRef> {
    let text = column.as_any().downcast_ref::<StringArray>()?;
    let encoded: BinaryArray = text
        .iter()
        .map(|v| {
            v.map(|s| {
                let mut bytes = Vec::with_capacity(s.len() + 1);
                bytes.push(1u8);
                bytes.extend_from_slice(s.as_bytes());
                bytes
            })
        })
        .collect();
    Some(Arc::new(encoded))
}

/// A command tag such as `INSERT 0 3`, `COPY 5` or `CREATE VIEW`.
pub fn tag(text: &str) -> Tag {
    let parts: Vec<&str> = text.split(' ').collect();
    match parts.as_slice() {
        ["INSERT", oid, rows] => match (oid.parse(), rows.parse()) {
            (Ok(oid), Ok(rows)) => Tag::new("INSERT").with_oid(oid).with_rows(rows),
            _ => Tag::new(text),
        },
        [command @ ("COPY" | "SELECT" | "UPDATE" | "DELETE"), rows] => match rows.parse() {
            Ok(rows) => Tag::new(command).with_rows(rows),
            Err(_) => Tag::new(text),
        },
        _ => Tag::new(text),
    }
}
