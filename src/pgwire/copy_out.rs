//! `COPY ... TO STDOUT`: rows as COPY data lines, in text or CSV
//! (`crate::sql::statement::copy_to::line`), after a header line when asked,
//! or in PostgreSQL's binary format (the `PGCOPY` header, each row as its
//! field count and the fields of its binary DataRow, and a trailer),
//! streamed batch by batch as the query makes them.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;

use super::encode;
use super::sqlstate::to_pgwire;
use super::streamed::{Watched, watched_batches};
use crate::ingest::decode::{CopyFormat, FormatKind};
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

/// The binary format's header: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A binary DataRow as a binary COPY row: the same fields (each a length
/// and its bytes) after the field count.
fn binary_row(row: &DataRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + row.data.len());
    out.extend_from_slice(&row.field_count.to_be_bytes());
    out.extend_from_slice(&row.data);
    out
}

/// The COPY-out response for `batches`, each batch's lines made when the
/// client is ready for them. The header line (if any) goes in the first
/// data message, so that the `COPY n` tag counts rows only.
pub fn response(
    schema: &SchemaRef,
    batches: SendableRecordBatchStream,
    format: &CopyFormat,
    watched: Watched,
) -> PgWireResult<Response> {
    let binary = format.kind == FormatKind::Binary;
    let wire = if binary { Format::UnifiedBinary } else { Format::UnifiedText };
    let fields = Arc::new(encode::pg_fields(schema, &wire)?);
    let mut header = match binary {
        true => Some(BINARY_HEADER.to_vec()),
        false => format.header.then(|| {
            let names: Vec<Option<&[u8]>> =
                schema.fields().iter().map(|f| Some(crate::sql::naming::shown_name(f.name()).as_bytes())).collect();
            line(&names, format)
        }),
    };
    let copy_format = format.clone();
    let lines = watched_batches(batches, watched).map(move |batch| {
        let rows = batch.map_err(to_pgwire).and_then(|b| encode::data_rows(b, &fields, &wire))?;
        Ok(rows
            .iter()
            .map(|row| if binary { binary_row(row) } else { line(&row_fields(row), &copy_format) })
            .collect::<Vec<_>>())
    });
    // The header rides on the first line; an empty result sends it alone.
    let lines = lines.chain(stream::once(async { Ok(Vec::new()) })).map(move |lines: PgWireResult<Vec<Vec<u8>>>| {
        let mut lines = lines?;
        if let Some(mut header) = header.take() {
            match lines.first_mut() {
                Some(first) => {
                    header.append(first);
                    *first = header;
                }
                None => lines.push(header),
            }
        }
        Ok(lines)
    });
    let messages = lines.flat_map(|lines| match lines {
        Ok(lines) => stream::iter(lines.into_iter().map(|l| Ok(CopyData::new(Bytes::from(l)))).collect::<Vec<_>>()),
        Err(e) => stream::iter(vec![Err(e)]),
    });
    // pgwire ends a binary COPY with the trailer itself.
    Ok(Response::CopyOut(CopyResponse::new(i8::from(binary), schema.fields().len(), messages)))
}
