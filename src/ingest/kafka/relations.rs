//! The `pipeline_kafka` schema: what the Kafka consumers are doing, as
//! relations a client can query.
//!
//! - `brokers` (host): the brokers added with `add_broker`.
//! - `consumers`: one row per topic and stream, with its options, status and counters.
//! - `offsets` (topic, partition, offset): the next offset each consumer applies.
//! - `lag`: per partition, the high watermark minus the applied offset.
//! - `errors`: the messages left out, and why.
//!
//! Each relation is a snapshot taken when the query plans it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use datafusion::common::Result;

use super::options::MessageFormat;
use super::{Consumer, Kafka, Stats};
use crate::catalog::types::UTC;
use crate::query::snapshot::{SnapshotSchema, batch, int32, int64, text};

/// The schema's name.
pub const SCHEMA: &str = "pipeline_kafka";

/// The `pipeline_kafka` schema over the server's consumers.
pub fn schema(kafka: Arc<Kafka>) -> SnapshotSchema {
    SnapshotSchema::new(&["brokers", "consumers", "offsets", "lag", "errors"], move |name| match name {
        "brokers" => Some(brokers(&kafka)),
        "consumers" => Some(consumers(&kafka)),
        "offsets" => Some(offsets(&kafka)),
        "lag" => Some(lag(&kafka)),
        "errors" => Some(errors(&kafka)),
        _ => None,
    })
}

fn brokers(kafka: &Kafka) -> Result<RecordBatch> {
    batch(vec![("host", text(kafka.brokers().into_iter().map(Some)))])
}

fn consumers(kafka: &Kafka) -> Result<RecordBatch> {
    let all = kafka.consumers();
    let options: Vec<_> = all.iter().map(|c| c.options()).collect();
    let status: Vec<_> = all.iter().map(|c| c.status()).collect();
    let stat = |f: fn(&Stats) -> u64| int64(all.iter().map(|c| Some(f(&c.stats) as i64)));
    let copy_opt = |f: fn(&crate::ingest::decode::CopyFormat) -> Option<u8>| {
        text(options.iter().map(|o| match &o.format {
            MessageFormat::Copy(c) => f(c).map(|b| (b as char).to_string()),
            MessageFormat::Json => None,
        }))
    };
    batch(vec![
        ("id", int64(all.iter().map(|c| Some(c.id as i64)))),
        ("topic", text(all.iter().map(|c| Some(c.topic.clone())))),
        ("relation", text(all.iter().map(|c| Some(c.stream.clone())))),
        ("group_id", text(options.iter().map(|o| o.group_id.clone()))),
        ("format", text(options.iter().map(|o| Some(o.format.name().to_string())))),
        ("delimiter", copy_opt(|c| c.delimiter)),
        ("quote", copy_opt(|c| Some(c.quote))),
        ("escape", copy_opt(|c| c.escape)),
        ("batchsize", int64(options.iter().map(|o| Some(o.batch_size as i64)))),
        ("maxbytes", int64(options.iter().map(|o| Some(o.max_bytes as i64)))),
        ("parallelism", int64(options.iter().map(|o| Some(o.parallelism as i64)))),
        ("timeout", int64(options.iter().map(|o| Some(o.timeout_ms as i64)))),
        ("start_offset", text(options.iter().map(|o| Some(o.start_offset.describe())))),
        ("status", text(status.iter().map(|s| Some(s.0.clone())))),
        ("last_error", text(status.iter().map(|s| s.1.clone()))),
        ("messages", stat(|s| s.messages.load(Ordering::Relaxed))),
        ("rows", stat(|s| s.rows.load(Ordering::Relaxed))),
        ("bytes", stat(|s| s.bytes.load(Ordering::Relaxed))),
        ("errors", stat(|s| s.errors.load(Ordering::Relaxed))),
        ("batches", stat(|s| s.batches.load(Ordering::Relaxed))),
    ])
}

/// (consumer, partition, offset) rows, in consumer and partition order.
fn offset_rows(kafka: &Kafka) -> Vec<(Arc<Consumer>, i32, i64)> {
    kafka
        .consumers()
        .into_iter()
        .flat_map(|c| c.offsets().into_iter().map(move |(p, o)| (c.clone(), p, o)).collect::<Vec<_>>())
        .collect()
}

/// The columns `offsets` and `lag` share.
fn offset_columns(rows: &[(Arc<Consumer>, i32, i64)]) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("consumer_id", int64(rows.iter().map(|(c, _, _)| Some(c.id as i64)))),
        ("topic", text(rows.iter().map(|(c, _, _)| Some(c.topic.clone())))),
        ("relation", text(rows.iter().map(|(c, _, _)| Some(c.stream.clone())))),
        ("partition", int32(rows.iter().map(|(_, p, _)| Some(*p)))),
        ("offset", int64(rows.iter().map(|(_, _, o)| Some(*o)))),
    ]
}

fn offsets(kafka: &Kafka) -> Result<RecordBatch> {
    batch(offset_columns(&offset_rows(kafka)))
}

fn lag(kafka: &Kafka) -> Result<RecordBatch> {
    let rows = offset_rows(kafka);
    let mut high = Vec::with_capacity(rows.len());
    let mut last: Option<(u64, BTreeMap<i32, i64>)> = None;
    for (c, p, _) in &rows {
        if last.as_ref().is_none_or(|(id, _)| *id != c.id) {
            last = Some((c.id, c.high_watermarks()));
        }
        high.push(last.as_ref().and_then(|(_, marks)| marks.get(p).copied()));
    }
    let lag: Vec<_> = rows.iter().zip(&high).map(|((_, _, o), h)| h.map(|h| (h - o).max(0))).collect();
    let mut columns = offset_columns(&rows);
    columns.push(("high_watermark", int64(high)));
    columns.push(("lag", int64(lag)));
    batch(columns)
}

fn errors(kafka: &Kafka) -> Result<RecordBatch> {
    let all = kafka.errors();
    let at: TimestampMicrosecondArray =
        all.iter().map(|e| Some(e.at_micros)).collect::<TimestampMicrosecondArray>().with_timezone(UTC);
    batch(vec![
        ("consumer_id", int64(all.iter().map(|e| Some(e.consumer_id as i64)))),
        ("topic", text(all.iter().map(|e| Some(e.topic.clone())))),
        ("relation", text(all.iter().map(|e| Some(e.stream.clone())))),
        ("partition", int32(all.iter().map(|e| Some(e.partition)))),
        ("offset", int64(all.iter().map(|e| e.offset))),
        ("error", text(all.iter().map(|e| Some(e.error.clone())))),
        ("message", text(all.iter().map(|e| Some(e.prefix.clone())))),
        ("at", Arc::new(at)),
    ])
}
