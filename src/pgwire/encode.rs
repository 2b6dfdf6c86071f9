//! Arrow results to PostgreSQL rows, and replies to pgwire responses.
//!
//! arrow-pg does the per-type text and binary encodings; Eddy adds the
//! PostgreSQL types Arrow cannot express (`json`, `jsonb`, carried as field
//! metadata) and PostgreSQL's command tags.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;

use crate::catalog::types::PG_TYPE_KEY;

/// Column descriptions for `schema` in `format`.
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for (i, field) in schema.fields().iter().enumerate() {
        let pg_type = match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
            Some("json") => Type::JSON,
            // jsonb's binary form needs a version byte; binary jsonb columns
            // are described as json, whose binary form is the text.
            Some("jsonb") if !format.is_binary(i) => Type::JSONB,
            Some("jsonb") => Type::JSON,
            _ => continue,
        };
        fields[i] = FieldInfo::new(
            field.name().clone(),
            None,
            None,
            pg_type,
            format.format_for(i),
        );
    }
    Ok(fields)
}

/// Rows as a query response.
pub fn rows(schema: &Schema, batches: Vec<RecordBatch>, format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(pg_fields(schema, format)?);
    let encoder_fields = fields.clone();
    let rows = batches
        .into_iter()
        .flat_map(move |b| encode_recordbatch(encoder_fields.clone(), b));
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter(rows),
    )))
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
