//! The `pipelinedb` schema: Eddy's streams and continuous views with their
//! state and statistics, as PipelineDB's `pipelinedb.streams` and
//! `pipelinedb.views` listed them. `SHOW STREAMS` and `SHOW VIEWS` read them.
//!
//! - `streams`: name, columns (as `name type, ...`), views (how many read it),
//!   rows_in (rows written since the server started).
//! - `views`: name, stream, query (the view's definition), rows_in (rows
//!   merged), groups (held now), bytes (of state, as the accumulators
//!   estimate them).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::{MemTable, TableProvider};

use super::Catalog;
use super::types::pg_type_name;

/// The schema's name.
pub const SCHEMA: &str = "pipelinedb";

const TABLES: [&str; 2] = ["streams", "views"];

/// The `pipelinedb` schema over the catalog.
#[derive(Debug)]
pub struct PipelineDbSchema {
    catalog: Arc<Catalog>,
}

impl PipelineDbSchema {
    /// The schema over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl SchemaProvider for PipelineDbSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let batch = match name {
            "streams" => streams(&self.catalog)?,
            "views" => views(&self.catalog)?,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

fn build(columns: Vec<(&'static str, ArrayRef)>) -> Result<RecordBatch, DataFusionError> {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())?)
}

fn text(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn int64(values: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

fn streams(catalog: &Catalog) -> Result<RecordBatch, DataFusionError> {
    let all = catalog.streams();
    let columns = all
        .iter()
        .map(|s| {
            let fields = s.def.schema.fields();
            let user = &fields[..fields.len().saturating_sub(1)];
            user.iter().map(|f| format!("{} {}", f.name(), pg_type_name(f))).collect::<Vec<_>>().join(", ")
        })
        .collect();
    build(vec![
        ("name", text(all.iter().map(|s| s.def.name.clone()).collect())),
        ("columns", text(columns)),
        ("views", int64(all.iter().map(|s| s.views().len() as i64).collect())),
        ("rows_in", int64(all.iter().map(|s| s.rows_in() as i64).collect())),
    ])
}

fn views(catalog: &Catalog) -> Result<RecordBatch, DataFusionError> {
    let all = catalog.views();
    build(vec![
        ("name", text(all.iter().map(|v| v.name().to_string()).collect())),
        ("stream", text(all.iter().map(|v| v.stream_name().to_string()).collect())),
        ("query", text(all.iter().map(|v| v.definition().to_string()).collect())),
        ("rows_in", int64(all.iter().map(|v| v.rows_in() as i64).collect())),
        ("groups", int64(all.iter().map(|v| v.groups() as i64).collect())),
        ("bytes", int64(all.iter().map(|v| v.state_bytes() as i64).collect())),
    ])
}
