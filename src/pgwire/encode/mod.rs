//! Arrow results to PostgreSQL rows, and replies to pgwire responses.
//!
//! arrow-pg does the per-type text and binary encodings; Eddy adds the
//! PostgreSQL types Arrow cannot express (`json`, `jsonb`, carried as field
//! metadata) and PostgreSQL's command tags.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};

use crate::catalog::types::PG_TYPE_KEY;

mod pg_text;

/// Column descriptions for `schema` in `format`.
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
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

/// Rows as a query response.
pub fn rows(schema: &Schema, batches: Vec<RecordBatch>, format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(pg_fields(schema, format)?);
    let binary_jsonb: Vec<usize> = fields
        .iter()
        .enumerate()
        .filter(|(i, f)| *f.datatype() == Type::JSONB && format.is_binary(*i))
        .map(|(i, _)| i)
        .collect();
    let batches = if binary_jsonb.is_empty() {
        batches
    } else {
        batches.into_iter().map(|b| jsonb_binary(b, &binary_jsonb)).collect::<PgWireResult<Vec<_>>>()?
    };
    let text_columns: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| !format.is_binary(*i) && pg_text::needs_override(f.data_type()))
        .map(|(i, _)| i)
        .collect();
    let batches = if text_columns.is_empty() {
        batches
    } else {
        batches.into_iter().map(|b| pg_text::override_columns(b, &text_columns)).collect::<PgWireResult<Vec<_>>>()?
    };
    let encoder_fields = fields.clone();
    let rows = batches.into_iter().flat_map(move |b| encode_recordbatch(encoder_fields.clone(), b));
    Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
}

/// jsonb's binary form is a version byte (1) and the JSON text; the listed
/// columns become binary values in that form, which arrow-pg sends as is.
fn jsonb_binary(batch: RecordBatch, columns: &[usize]) -> PgWireResult<RecordBatch> {
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays = batch.columns().to_vec();
    for &i in columns {
        let Some(text) = arrays[i].as_any().downcast_ref::<StringArray>() else {
            continue;
        };
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
        arrays[i] = Arc::new(encoded);
        fields[i] = Field::new(fields[i].name(), DataType::Binary, true);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| PgWireError::ApiError(Box::new(e)))
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
