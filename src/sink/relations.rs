//! `pipelinedb.sinks`: one row per Kafka sink, with what it is doing.
//!
//! Columns: name, relation, topic, envelope, key (the key columns, comma
//! separated), exactly_once, status (`starting`, `running`, `retrying`,
//! `stopped`), messages and transactions (written since the server
//! started), lag (changed rows waiting to be written) and last_error.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::common::Result;

use super::Sinks;
use crate::query::snapshot::{batch, int64, text};

/// The rows of `pipelinedb.sinks`.
pub fn sinks(sinks: &Sinks) -> Result<RecordBatch> {
    let all = sinks.list();
    let statuses: Vec<_> = all.iter().map(|s| s.status()).collect();
    let count =
        |f: fn(&super::Status) -> u64| int64(statuses.iter().map(|s| Some(i64::try_from(f(s)).unwrap_or(i64::MAX))));
    let exactly_once: ArrayRef = Arc::new(all.iter().map(|s| Some(s.options.exactly_once)).collect::<BooleanArray>());
    batch(vec![
        ("name", text(all.iter().map(|s| Some(s.name.clone())))),
        ("relation", text(all.iter().map(|s| Some(s.relation.clone())))),
        ("topic", text(all.iter().map(|s| Some(s.options.topic.clone())))),
        ("envelope", text(all.iter().map(|s| Some(s.options.envelope.name().to_string())))),
        ("key", text(all.iter().map(|s| s.key.as_ref().map(|k| k.join(", "))))),
        ("exactly_once", exactly_once),
        ("status", text(statuses.iter().map(|s| Some(s.state.to_string())))),
        ("messages", count(|s| s.messages)),
        ("transactions", count(|s| s.transactions)),
        ("lag", count(|s| s.lag)),
        ("last_error", text(statuses.iter().map(|s| s.last_error.clone()))),
    ])
}
