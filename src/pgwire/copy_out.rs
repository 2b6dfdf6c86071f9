//! `COPY ... TO STDOUT`: rows as COPY data lines, in text or CSV
//! (`crate::sql::statement::copy_to::line`), after a header line when asked.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::stream;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;

use super::encode;
use crate::ingest::decode::CopyFormat;
use crate::sql::statement::copy_to::line;

/// The values of a text DataRow (`None`: NULL).
pub fn row_fields(row: &DataRow) -> Vec<Option<&[u8]>> {
    let mut fields = Vec::with_capacity(row.field_count as usize);
    let mut data: &[u8] = &row.data;
    for _ in 0..row.field_count {
        let Some((len, rest)) = data.split_first_chunk::<4>() else { break };
        let len = i32::from_be_bytes(*len);
        data = rest;
        if len < 0 {
            fields.push(None);
            continue;
        }
        let (value, rest) = data.split_at((len as usize).min(data.len()));
        data = rest;
        fields.push(Some(value));
    }
    fields
}

/// The COPY-out response for `batches`. The header line (if any) goes in
/// the first data message, so that the `COPY n` tag counts rows only.
pub fn response(schema: &SchemaRef, batches: Vec<RecordBatch>, format: &CopyFormat) -> PgWireResult<Response> {
    let fields = Arc::new(encode::pg_fields(schema, &Format::UnifiedText)?);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for batch in batches {
        for row in encode::data_rows(batch, &fields, &Format::UnifiedText)? {
            lines.push(line(&row_fields(&row), format));
        }
    }
    if format.header {
        let names: Vec<Option<&[u8]>> = schema.fields().iter().map(|f| Some(f.name().as_bytes())).collect();
        let mut header = line(&names, format);
        match lines.first_mut() {
            Some(first) => {
                header.append(first);
                *first = header;
            }
            None => lines.push(header),
        }
    }
    let messages: Vec<PgWireResult<CopyData>> = lines.into_iter().map(|l| Ok(CopyData::new(Bytes::from(l)))).collect();
    Ok(Response::CopyOut(CopyResponse::new(0, schema.fields().len(), stream::iter(messages))))
}
