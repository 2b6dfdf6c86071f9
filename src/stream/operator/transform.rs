//! The transform: a derived stream (`CREATE STREAM s2 AS SELECT ... FROM
//! s1`, or PipelineDB's `CREATE VIEW t WITH (action = transform)`).
//!
//! Each event of the stream it reads goes through the view's filter,
//! projection and lookup joins, and the rows that come out are passed on,
//! as added rows of the same epoch, to the views that read the derived
//! stream and to its subscribers. Nothing is kept, so a derived stream is
//! read as a stream is: by the views over it, never directly.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::planner::PlanError;
use crate::stream::change::ChangeBatch;

/// The rows a transform made of one batch, as the change its readers see:
/// every row added, at `epoch`, with the derived stream's columns.
pub fn emitted(rows: &[RecordBatch], schema: &SchemaRef, epoch: u64) -> Result<Option<ChangeBatch>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), rows)?;
    if all.num_rows() == 0 {
        return Ok(None);
    }
    let all = RecordBatch::try_new(schema.clone(), all.columns().to_vec())?;
    Ok(Some(ChangeBatch::inserts(all, epoch)))
}

/// A derived stream as client queries see it: not readable, like a stream.
#[derive(Debug)]
pub struct DerivedStreamTable {
    name: String,
    schema: SchemaRef,
}

impl DerivedStreamTable {
    /// The table for derived stream `name`, with its columns.
    pub fn new(name: &str, schema: SchemaRef) -> Self {
        Self { name: name.to_string(), schema }
    }
}

#[async_trait]
impl TableProvider for DerivedStreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::External(Box::new(PlanError::StreamRead(self.name.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn emits_every_row_as_added_at_the_epoch() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch = |v: Vec<i64>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap();
        let changes = emitted(&[batch(vec![1, 2]), batch(vec![3])], &schema, 7).unwrap().unwrap();
        assert_eq!(changes.len(), 3);
        assert!(changes.append_only());
        assert_eq!(changes.epoch, 7);
        assert!(emitted(&[batch(vec![])], &schema, 7).unwrap().is_none());
        assert!(emitted(&[], &schema, 7).unwrap().is_none());
    }
}
