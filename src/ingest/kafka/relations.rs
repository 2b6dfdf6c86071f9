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

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::{MemTable, TableProvider};

use super::Kafka;
use super::options::MessageFormat;
use crate::catalog::types::{UTC, timestamptz};

/// The schema's name.
pub const SCHEMA: &str = "pipeline_kafka";

const TABLES: [&str; 5] = ["brokers", "consumers", "offsets", "lag", "errors"];

/// The `pipeline_kafka` schema over the server's consumers.
#[derive(Debug)]
pub struct KafkaSchema {
    kafka: Arc<Kafka>,
}

impl KafkaSchema {
    /// The schema over `kafka`.
    pub fn new(kafka: Arc<Kafka>) -> Self {
        Self { kafka }
    }
}

#[async_trait]
impl SchemaProvider for KafkaSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let kafka = self.kafka.clone();
        let batch = match name {
            "brokers" => brokers(&kafka),
            "consumers" => consumers(&kafka),
            "offsets" => offsets(&kafka),
            "lag" => tokio::task::spawn_blocking(move || lag(&kafka))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            "errors" => errors(&kafka),
            _ => return Ok(None),
        }?;
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

type Columns = Vec<(&'static str, DataType, ArrayRef)>;

fn build(columns: Columns) -> Result<RecordBatch, DataFusionError> {
    let fields: Vec<Field> = columns.iter().map(|(n, t, _)| Field::new(*n, t.clone(), true)).collect();
    let arrays = columns.into_iter().map(|(_, _, a)| a).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

fn text<I: IntoIterator<Item = Option<String>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn int64<I: IntoIterator<Item = Option<i64>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

fn int32<I: IntoIterator<Item = Option<i32>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int32Array>())
}

fn brokers(kafka: &Kafka) -> Result<RecordBatch, DataFusionError> {
    build(vec![("host", DataType::Utf8, text(kafka.brokers().into_iter().map(Some)))])
}

fn consumers(kafka: &Kafka) -> Result<RecordBatch, DataFusionError> {
    let all = kafka.consumers();
    let options: Vec<_> = all.iter().map(|c| c.options()).collect();
    let status: Vec<_> = all.iter().map(|c| c.status()).collect();
    let stat = |f: fn(&super::Stats) -> u64| int64(all.iter().map(|c| Some(f(&c.stats) as i64)));
    let copy_opt = |f: fn(&crate::ingest::decode::CopyFormat) -> Option<u8>| {
        text(options.iter().map(|o| match &o.format {
            MessageFormat::Copy(c) => f(c).map(|b| (b as char).to_string()),
            MessageFormat::Json => None,
        }))
    };
    build(vec![
        ("id", DataType::Int64, int64(all.iter().map(|c| Some(c.id as i64)))),
        ("topic", DataType::Utf8, text(all.iter().map(|c| Some(c.topic.clone())))),
        ("relation", DataType::Utf8, text(all.iter().map(|c| Some(c.stream.clone())))),
        ("group_id", DataType::Utf8, text(options.iter().map(|o| o.group_id.clone()))),
        ("format", DataType::Utf8, text(options.iter().map(|o| Some(o.format.name().to_string())))),
        ("delimiter", DataType::Utf8, copy_opt(|c| c.delimiter)),
        ("quote", DataType::Utf8, copy_opt(|c| Some(c.quote))),
        ("escape", DataType::Utf8, copy_opt(|c| c.escape)),
        ("batchsize", DataType::Int64, int64(options.iter().map(|o| Some(o.batch_size as i64)))),
        ("maxbytes", DataType::Int64, int64(options.iter().map(|o| Some(o.max_bytes as i64)))),
        ("parallelism", DataType::Int64, int64(options.iter().map(|o| Some(o.parallelism as i64)))),
        ("timeout", DataType::Int64, int64(options.iter().map(|o| Some(o.timeout_ms as i64)))),
        ("start_offset", DataType::Utf8, text(options.iter().map(|o| Some(o.start_offset.describe())))),
        ("status", DataType::Utf8, text(status.iter().map(|s| Some(s.0.clone())))),
        ("last_error", DataType::Utf8, text(status.iter().map(|s| s.1.clone()))),
        ("messages", DataType::Int64, stat(|s| s.messages.load(std::sync::atomic::Ordering::Relaxed))),
        ("rows", DataType::Int64, stat(|s| s.rows.load(std::sync::atomic::Ordering::Relaxed))),
        ("bytes", DataType::Int64, stat(|s| s.bytes.load(std::sync::atomic::Ordering::Relaxed))),
        ("errors", DataType::Int64, stat(|s| s.errors.load(std::sync::atomic::Ordering::Relaxed))),
        ("batches", DataType::Int64, stat(|s| s.batches.load(std::sync::atomic::Ordering::Relaxed))),
    ])
}

/// (consumer, partition, offset) rows, in consumer and partition order.
fn offset_rows(kafka: &Kafka) -> Vec<(Arc<super::Consumer>, i32, i64)> {
    kafka
        .consumers()
        .into_iter()
        .flat_map(|c| c.offsets().into_iter().map(move |(p, o)| (c.clone(), p, o)).collect::<Vec<_>>())
        .collect()
}

fn offsets(kafka: &Kafka) -> Result<RecordBatch, DataFusionError> {
    let rows = offset_rows(kafka);
    build(vec![
        ("consumer_id", DataType::Int64, int64(rows.iter().map(|(c, _, _)| Some(c.id as i64)))),
        ("topic", DataType::Utf8, text(rows.iter().map(|(c, _, _)| Some(c.topic.clone())))),
        ("relation", DataType::Utf8, text(rows.iter().map(|(c, _, _)| Some(c.stream.clone())))),
        ("partition", DataType::Int32, int32(rows.iter().map(|(_, p, _)| Some(*p)))),
        ("offset", DataType::Int64, int64(rows.iter().map(|(_, _, o)| Some(*o)))),
    ])
}

fn lag(kafka: &Kafka) -> Result<RecordBatch, DataFusionError> {
    let rows = offset_rows(kafka);
    let mut high = Vec::with_capacity(rows.len());
    let mut last: Option<(u64, std::collections::BTreeMap<i32, i64>)> = None;
    for (c, p, _) in &rows {
        if last.as_ref().is_none_or(|(id, _)| *id != c.id) {
            last = Some((c.id, c.high_watermarks()));
        }
        high.push(last.as_ref().and_then(|(_, marks)| marks.get(p).copied()));
    }
    let lag = rows.iter().zip(&high).map(|((_, _, o), h)| h.map(|h| (h - o).max(0)));
    build(vec![
        ("consumer_id", DataType::Int64, int64(rows.iter().map(|(c, _, _)| Some(c.id as i64)))),
        ("topic", DataType::Utf8, text(rows.iter().map(|(c, _, _)| Some(c.topic.clone())))),
        ("relation", DataType::Utf8, text(rows.iter().map(|(c, _, _)| Some(c.stream.clone())))),
        ("partition", DataType::Int32, int32(rows.iter().map(|(_, p, _)| Some(*p)))),
        ("offset", DataType::Int64, int64(rows.iter().map(|(_, _, o)| Some(*o)))),
        ("high_watermark", DataType::Int64, int64(high.iter().copied())),
        ("lag", DataType::Int64, int64(lag.collect::<Vec<_>>())),
    ])
}

fn errors(kafka: &Kafka) -> Result<RecordBatch, DataFusionError> {
    let all = kafka.errors();
    let at: TimestampMicrosecondArray =
        all.iter().map(|e| Some(e.at_micros)).collect::<TimestampMicrosecondArray>().with_timezone(UTC);
    build(vec![
        ("consumer_id", DataType::Int64, int64(all.iter().map(|e| Some(e.consumer_id as i64)))),
        ("topic", DataType::Utf8, text(all.iter().map(|e| Some(e.topic.clone())))),
        ("relation", DataType::Utf8, text(all.iter().map(|e| Some(e.stream.clone())))),
        ("partition", DataType::Int32, int32(all.iter().map(|e| Some(e.partition)))),
        ("offset", DataType::Int64, int64(all.iter().map(|e| e.offset))),
        ("error", DataType::Utf8, text(all.iter().map(|e| Some(e.error.clone())))),
        ("message", DataType::Utf8, text(all.iter().map(|e| Some(e.prefix.clone())))),
        ("at", timestamptz(), Arc::new(at)),
    ])
}
