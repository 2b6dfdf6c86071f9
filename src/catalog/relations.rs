//! The `pipelinedb` schema: Eddy's streams and continuous views with their
//! state and statistics, as PipelineDB's `pipelinedb.streams` and
//! `pipelinedb.views` listed them. `SHOW STREAMS` and `SHOW VIEWS` read them.
//!
//! - `streams`: name, columns (as `name type, ...`), views (how many read it),
//!   rows_in (rows written since the server started), and for streams with
//!   event time: event_time (the column and lateness), watermark (now) and
//!   late_rows (dropped from windowed views); derived streams (`CREATE
//!   STREAM ... AS SELECT`) are listed too, with their query, and rows_in
//!   counts the rows that passed their filter.
//! - `sinks`: the Kafka sinks (`crate::sink::relations`).
//! - `views`: name, stream, query (the view's definition), rows_in (rows
//!   merged), groups (held now), bytes (of state, as the accumulators
//!   estimate them), window (a sliding window and its step), ttl, and
//!   watermark for views windowed on event time: a window ending at or
//!   before it is final.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;

use super::Catalog;
use super::types::pg_type_name;
use crate::query::snapshot::{SnapshotSchema, batch, int64, text, timestamptz};
use crate::window::format_duration;

/// The schema's name.
pub const SCHEMA: &str = "pipelinedb";

/// The `pipelinedb` schema over `catalog`; `sinks` lists the Kafka sinks
/// (which live above the catalog, in `crate::sink`).
pub fn schema(
    catalog: Arc<Catalog>,
    sinks: impl Fn() -> Result<RecordBatch> + Send + Sync + 'static,
) -> SnapshotSchema {
    SnapshotSchema::new(&["streams", "views", "sinks"], move |name| match name {
        "streams" => Some(streams(&catalog)),
        "views" => Some(views(&catalog)),
        "sinks" => Some(sinks()),
        _ => None,
    })
}

/// One row of `pipelinedb.streams`.
struct StreamRow {
    name: String,
    columns: String,
    views: i64,
    rows_in: i64,
    event_time: Option<String>,
    watermark: Option<i64>,
    late_rows: Option<i64>,
    query: Option<String>,
}

/// `name type, ...` for `fields`, without `arrival_timestamp`.
fn column_list<'a>(fields: impl Iterator<Item = &'a datafusion::arrow::datatypes::FieldRef>) -> String {
    fields
        .filter(|f| f.name() != super::ARRIVAL_TIMESTAMP)
        .map(|f| format!("{} {}", f.name(), pg_type_name(f)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declared streams, then derived streams (with their query).
fn stream_rows(catalog: &Catalog) -> Vec<StreamRow> {
    let declared = catalog.streams().into_iter().map(|s| StreamRow {
        name: s.def.name.clone(),
        columns: column_list(super::user_fields(&s.def.schema).iter()),
        views: s.views().len() as i64,
        rows_in: s.rows_in() as i64,
        event_time: s.def.event_time.as_ref().map(|e| format!("{} - {}", e.column, format_duration(e.lateness))),
        watermark: s.watermark_now(),
        late_rows: s.def.event_time.as_ref().map(|_| s.watermark().late_rows() as i64),
        query: None,
    });
    let derived = catalog.views().into_iter().filter(|v| v.is_transform()).map(|v| StreamRow {
        name: v.name().to_string(),
        columns: column_list(v.output_schema().fields().iter()),
        views: v.readers().len() as i64,
        rows_in: v.rows_in() as i64,
        event_time: None,
        watermark: None,
        late_rows: None,
        query: Some(v.definition().to_string()),
    });
    declared.chain(derived).collect()
}

fn streams(catalog: &Catalog) -> Result<RecordBatch> {
    let all = stream_rows(catalog);
    batch(vec![
        ("name", text(all.iter().map(|s| Some(s.name.clone())))),
        ("columns", text(all.iter().map(|s| Some(s.columns.clone())))),
        ("views", int64(all.iter().map(|s| Some(s.views)))),
        ("rows_in", int64(all.iter().map(|s| Some(s.rows_in)))),
        ("event_time", text(all.iter().map(|s| s.event_time.clone()))),
        ("watermark", timestamptz(all.iter().map(|s| s.watermark))),
        ("late_rows", int64(all.iter().map(|s| s.late_rows))),
        ("query", text(all.iter().map(|s| s.query.clone()))),
    ])
}

fn views(catalog: &Catalog) -> Result<RecordBatch> {
    let all = catalog.views();
    batch(vec![
        ("name", text(all.iter().map(|v| Some(v.name().to_string())))),
        ("stream", text(all.iter().map(|v| Some(v.inputs().join(", "))))),
        ("query", text(all.iter().map(|v| Some(v.definition().to_string())))),
        ("rows_in", int64(all.iter().map(|v| Some(v.rows_in() as i64)))),
        ("groups", int64(all.iter().map(|v| Some(v.groups() as i64)))),
        ("bytes", int64(all.iter().map(|v| Some(v.state_bytes() as i64)))),
        (
            "window",
            text(all.iter().map(|v| {
                v.sliding().map(|s| {
                    format!("sliding {} on {}, step {}", format_duration(s.width), s.column, format_duration(s.step))
                })
            })),
        ),
        ("ttl", text(all.iter().map(|v| v.ttl().map(|t| format!("{} on {}", format_duration(t.ttl), t.column))))),
        (
            "watermark",
            timestamptz(all.iter().map(|v| {
                let stream = catalog.stream(v.stream_name()).ok()?;
                v.event_windowed().then(|| stream.watermark_now()).flatten()
            })),
        ),
        (
            "lookups",
            text(all.iter().map(|v| {
                let names: Vec<&str> = v.lookups().iter().map(|l| l.name()).collect();
                (!names.is_empty()).then(|| names.join(", "))
            })),
        ),
    ])
}
