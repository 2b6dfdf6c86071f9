//! Relations that are snapshots of server state, computed when a query plans
//! them: `pipelinedb.*` (streams and views) and `pipeline_kafka.*`
//! (consumers). A [`SnapshotSchema`] names its tables and builds each one's
//! rows on demand, on a blocking thread, since some (Kafka lag) ask a broker.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, TableProvider};

/// Builds the rows of a table by name; `None` for a name it does not have.
pub type Build = dyn Fn(&str) -> Option<Result<RecordBatch>> + Send + Sync;

/// A schema of snapshot tables.
pub struct SnapshotSchema {
    tables: &'static [&'static str],
    build: Arc<Build>,
}

impl std::fmt::Debug for SnapshotSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSchema").field("tables", &self.tables).finish_non_exhaustive()
    }
}

impl SnapshotSchema {
    /// A schema of `tables`, whose rows `build` makes.
    pub fn new(
        tables: &'static [&'static str],
        build: impl Fn(&str) -> Option<Result<RecordBatch>> + Send + Sync + 'static,
    ) -> Self {
        Self { tables, build: Arc::new(build) }
    }
}

#[async_trait]
impl SchemaProvider for SnapshotSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(name) {
            return Ok(None);
        }
        let (build, name) = (self.build.clone(), name.to_string());
        let built = tokio::task::spawn_blocking(move || build(&name))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        match built {
            Some(batch) => {
                let batch = batch?;
                Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
            }
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains(&name)
    }
}

/// A batch of nullable columns, typed by their arrays.
pub fn batch(columns: Vec<(&'static str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())?)
}

/// A text column.
pub fn text<I: IntoIterator<Item = Option<String>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

/// A bigint column.
pub fn int64<I: IntoIterator<Item = Option<i64>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

/// A timestamptz column, from microseconds since the epoch.
pub fn timestamptz<I: IntoIterator<Item = Option<i64>>>(values: I) -> ArrayRef {
    let array: datafusion::arrow::array::TimestampMicrosecondArray = values.into_iter().collect();
    Arc::new(array.with_timezone(crate::catalog::types::UTC))
}

/// An integer column.
pub fn int32<I: IntoIterator<Item = Option<i32>>>(values: I) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int32Array>())
}
