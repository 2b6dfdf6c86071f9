//! Helpers for the state's unit tests: a view planned over a small stream
//! `s (k text, v bigint)`, and batches stamped at chosen arrival times.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::catalog::types::{UTC, field_for_sql_type, timestamptz};
use crate::catalog::{Catalog, StreamDef};
use crate::planner::{IncrementalPlan, plan_view};
use crate::stream::operator::aggregate::AggregateOperator;
use crate::window::ViewOptions;

/// Microseconds in a second.
pub const SECOND: i64 = 1_000_000;

fn stream_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        field_for_sql_type("k", "text").unwrap(),
        field_for_sql_type("v", "bigint").unwrap(),
        Field::new("arrival_timestamp", timestamptz(), true),
    ]))
}

/// Plans `query` over `s` with `options`.
pub async fn plan(query: &str, options: &[(&str, &str)]) -> Arc<IncrementalPlan> {
    try_plan(query, options).await.unwrap()
}

/// Plans `query` over `s` with `options`, or says why it cannot.
pub async fn try_plan(query: &str, options: &[(&str, &str)]) -> Result<Arc<IncrementalPlan>, String> {
    let catalog = Arc::new(Catalog::default());
    let def = StreamDef { name: "s".into(), schema: stream_schema(), columns: Vec::new(), event_time: None };
    catalog.add_stream(def).unwrap();
    let query = crate::sql::parser::parse_query(query).map_err(|e| e.to_string())?;
    let options: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let options = ViewOptions::parse(&options).map_err(|e| e.to_string())?;
    Ok(Arc::new(plan_view(catalog, "v", &query, &options).await.map_err(|e| e.to_string())?))
}

/// Applies rows `(k, v, seconds)` to the view.
pub async fn apply(plan: &Arc<IncrementalPlan>, rows: &[(&str, i64, i64)]) {
    try_apply(plan, rows).await.unwrap()
}

/// Applies rows `(k, v, seconds)` to the view, or says why it cannot.
pub async fn try_apply(plan: &Arc<IncrementalPlan>, rows: &[(&str, i64, i64)]) -> datafusion::common::Result<()> {
    let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.2 * SECOND).collect();
    let batch = RecordBatch::try_new(
        stream_schema(),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(Int64Array::from(values)),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone(UTC)),
        ],
    )
    .unwrap();
    AggregateOperator::new(plan.clone()).process_batch(crate::stream::change::ChangeBatch::inserts(batch, 0)).await
}

/// A batch as sorted lines of `|`-separated cells.
pub fn lines(batch: RecordBatch) -> Vec<String> {
    let text = pretty_format_batches(&[batch]).unwrap().to_string();
    let cells = |l: &str| l.trim_matches('|').split('|').map(str::trim).collect::<Vec<_>>().join("|");
    let mut out: Vec<String> = text.lines().filter(|l| l.starts_with("| ")).skip(1).map(cells).collect();
    out.sort();
    out
}
