//! Changes are data: a batch of rows, each with a weight, from one epoch.
//!
//! This is the Z-set model of DBSP and Materialize on Arrow: a row with
//! weight +1 was added, −1 removed; an update is a −1 of the old row and a
//! +1 of the new one, in the same epoch. Streams only ever add (every
//! weight is +1); tables and the views over them also remove. The epoch
//! is the write that produced the change: every operator downstream
//! applies a write's changes before the write is acknowledged.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;

/// The name of the weight column when a change batch is logged.
pub const WEIGHT_COLUMN: &str = "__eddy_weight";

/// Rows with their weights, from one epoch.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// The rows, with the relation's schema.
    pub rows: RecordBatch,
    /// +1 or −1 per row.
    pub weights: Int8Array,
    /// The write that produced them.
    pub epoch: u64,
}

impl ChangeBatch {
    /// Rows that were all added (a stream's rows, a backfill).
    pub fn inserts(rows: RecordBatch, epoch: u64) -> Self {
        let weights = Int8Array::from(vec![1i8; rows.num_rows()]);
        Self { rows, weights, epoch }
    }

    /// Removed rows `deletes` and added rows `inserts` (same schema).
    pub fn of(deletes: &RecordBatch, inserts: &RecordBatch, epoch: u64) -> Result<Self, ArrowError> {
        let rows = datafusion::arrow::compute::concat_batches(&inserts.schema(), [deletes, inserts])?;
        let mut weights = vec![-1i8; deletes.num_rows()];
        weights.extend(std::iter::repeat_n(1i8, inserts.num_rows()));
        Ok(Self { rows, weights: Int8Array::from(weights), epoch })
    }

    /// Number of changed rows.
    pub fn len(&self) -> usize {
        self.rows.num_rows()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.rows.num_rows() == 0
    }

    /// Whether every row was added.
    pub fn append_only(&self) -> bool {
        self.weights.values().iter().all(|&w| w > 0)
    }

    /// The added rows and the removed rows, apart.
    pub fn split(&self) -> Result<(RecordBatch, RecordBatch), ArrowError> {
        if self.append_only() {
            return Ok((self.rows.clone(), self.rows.slice(0, 0)));
        }
        let added: BooleanArray = self.weights.values().iter().map(|&w| Some(w > 0)).collect();
        let removed: BooleanArray = self.weights.values().iter().map(|&w| Some(w < 0)).collect();
        Ok((filter_record_batch(&self.rows, &added)?, filter_record_batch(&self.rows, &removed)?))
    }

    /// The rows with the weight as a last column, as the insert log keeps them.
    pub fn to_logged(&self) -> Result<RecordBatch, ArrowError> {
        let schema = self.rows.schema();
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(WEIGHT_COLUMN, DataType::Int8, false)));
        let mut columns: Vec<ArrayRef> = self.rows.columns().to_vec();
        columns.push(Arc::new(self.weights.clone()));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }

    /// Reads back what [`Self::to_logged`] wrote; `None` if the batch has no
    /// weight column.
    pub fn from_logged(batch: &RecordBatch, epoch: u64) -> Option<Self> {
        let last = batch.num_columns().checked_sub(1)?;
        if batch.schema().field(last).name() != WEIGHT_COLUMN {
            return None;
        }
        let weights = batch.column(last).as_any().downcast_ref::<Int8Array>()?.clone();
        let mut rows = batch.clone();
        rows.remove_column(last);
        Some(Self { rows, weights, epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[test]
    fn splits_and_round_trips_through_the_log() {
        let changes = ChangeBatch::of(&batch(&[1, 2]), &batch(&[3]), 7).unwrap();
        assert!(!changes.append_only());
        let (added, removed) = changes.split().unwrap();
        assert_eq!(added.num_rows(), 1);
        assert_eq!(removed.num_rows(), 2);
        let logged = changes.to_logged().unwrap();
        let back = ChangeBatch::from_logged(&logged, 7).unwrap();
        assert_eq!(back.weights.values().to_vec(), vec![-1, -1, 1]);
        assert_eq!(back.rows, changes.rows);
        assert!(ChangeBatch::from_logged(&batch(&[1]), 0).is_none());
    }
}
