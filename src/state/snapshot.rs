//! Taking a view's state out as an Arrow batch, and putting it back.
//!
//! A snapshot row is one group: its key columns (`k0`, `k1`, ...) followed
//! by every aggregate's state columns (`s0_0`, `s0_1`, `s1_0`, ...), the
//! values DataFusion's `Accumulator::state` returns and `merge_batch` takes.
//! A *delta* holds only the groups changed since the previous snapshot, so a
//! checkpoint costs what changed, not what is held; a *full* snapshot holds
//! every group. Restoring a row replaces the group's accumulators, so
//! replaying a full snapshot and then its deltas, in order, rebuilds the state.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{Result, ScalarValue, internal_err};

use super::GroupedState;

/// Some or all of a view's groups, as a batch.
#[derive(Debug, Clone)]
pub struct StateSnapshot {
    /// One row per group.
    pub batch: RecordBatch,
    /// Holds every group (else only the changed ones).
    pub full: bool,
}

impl GroupedState {
    /// Groups changed since the last snapshot.
    pub fn dirty_groups(&self) -> usize {
        if self.full_pending { self.groups } else { self.dirty.len() }
    }

    /// Whether the next snapshot must be full whatever is asked.
    pub fn needs_full(&self) -> bool {
        self.full_pending
    }

    /// Takes the changed groups (or, with `full` or when the state was
    /// truncated, every group) and starts tracking changes afresh.
    pub fn take_snapshot(&mut self, full: bool) -> Result<StateSnapshot> {
        let full = full || self.full_pending;
        let groups: Vec<usize> =
            if full { (0..self.groups).collect() } else { self.dirty.iter().map(|&g| g as usize).collect() };
        let mut columns: Vec<ArrayRef> = Vec::new();
        if let (Some(converter), Some(keys)) = (&self.converter, &self.keys) {
            columns.extend(converter.convert_rows(groups.iter().map(|&g| keys.row(g)))?);
        }
        let key_columns = columns.len();
        let n = self.aggregates.len();
        for a in 0..n {
            let fields = self.aggregates[a].state_fields()?;
            let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(groups.len()); fields.len()];
            for &g in &groups {
                let state = self.state_intact(g, a)?;
                if state.len() != fields.len() {
                    return internal_err!("aggregate state has {} values, expected {}", state.len(), fields.len());
                }
                for (column, value) in values.iter_mut().zip(state) {
                    column.push(value);
                }
            }
            for (column, field) in values.into_iter().zip(&fields) {
                columns.push(if column.is_empty() {
                    new_empty_array(field.data_type())
                } else {
                    ScalarValue::iter_to_array(column)?
                });
            }
        }
        let batch = snapshot_batch(columns, key_columns, &self.state_widths)?;
        for &g in &self.dirty {
            self.is_dirty[g as usize] = false;
        }
        self.dirty.clear();
        self.full_pending = false;
        Ok(StateSnapshot { batch, full })
    }

    /// Applies a snapshot taken by [`Self::take_snapshot`]: each row
    /// replaces its group's state. Restored groups do not count as changed.
    pub fn restore(&mut self, snapshot: &StateSnapshot) -> Result<()> {
        if snapshot.full {
            self.clear()?;
        }
        let batch = &snapshot.batch;
        let key_columns = self.key_types.len();
        let expected = key_columns + self.state_widths.iter().sum::<usize>();
        if batch.num_columns() != expected {
            return internal_err!("state snapshot has {} columns, the view needs {expected}", batch.num_columns());
        }
        let groups = self.intern(&batch.columns()[..key_columns], batch.num_rows())?;
        for (row, &g) in groups.iter().enumerate() {
            self.reload_group(g, batch, key_columns, row)?;
        }
        // The interned groups are held on disk already.
        for &g in &groups {
            self.is_dirty[g] = false;
        }
        self.dirty.retain(|&g| self.is_dirty[g as usize]);
        self.full_pending = false;
        self.session_index = None;
        Ok(())
    }

    /// Replaces group `g`'s accumulators with fresh ones merged with the
    /// state in `row` of `batch`.
    fn reload_group(&mut self, g: usize, batch: &RecordBatch, key_columns: usize, row: usize) -> Result<()> {
        let n = self.aggregates.len();
        let mut column = key_columns;
        for a in 0..n {
            let width = self.state_widths[a];
            let slices: Vec<ArrayRef> =
                batch.columns()[column..column + width].iter().map(|c| c.slice(row, 1)).collect();
            let mut fresh = self.aggregates[a].create_accumulator()?;
            fresh.merge_batch(&slices)?;
            self.accumulators[g * n + a] = fresh;
            column += width;
        }
        Ok(())
    }
}

/// Names the columns `k*` and `s<aggregate>_<state>` and makes the batch.
fn snapshot_batch(columns: Vec<ArrayRef>, key_columns: usize, widths: &[usize]) -> Result<RecordBatch> {
    let mut names: Vec<String> = (0..key_columns).map(|k| format!("k{k}")).collect();
    for (a, &w) in widths.iter().enumerate() {
        names.extend((0..w).map(|s| format!("s{a}_{s}")));
    }
    if names.len() != columns.len() {
        return internal_err!("state snapshot has {} columns, expected {}", columns.len(), names.len());
    }
    let fields: Vec<Field> =
        names.iter().zip(&columns).map(|(name, c)| Field::new(name, c.data_type().clone(), true)).collect();
    let options = datafusion::arrow::array::RecordBatchOptions::new()
        .with_row_count(Some(columns.first().map_or(0, |c| c.len())));
    Ok(RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use crate::catalog::types::{UTC, field_for_sql_type, timestamptz};
    use crate::catalog::{Catalog, StreamDef};
    use crate::planner::{IncrementalPlan, plan_view};
    use crate::stream::operator::aggregate::AggregateOperator;

    const QUERY: &str = "SELECT k, count(*), sum(v), avg(v), min(v), count(DISTINCT v), string_agg(CAST(v AS text), ',') \
                         FROM s GROUP BY k";

    fn stream_schema() -> Arc<datafusion::arrow::datatypes::Schema> {
        Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            field_for_sql_type("k", "text").unwrap(),
            field_for_sql_type("v", "bigint").unwrap(),
            datafusion::arrow::datatypes::Field::new("arrival_timestamp", timestamptz(), true),
        ]))
    }

    async fn plan() -> IncrementalPlan {
        let catalog = Arc::new(Catalog::default());
        let schema = stream_schema();
        catalog.add_stream(StreamDef { name: "s".into(), schema, columns: Vec::new(), event_time: None }).unwrap();
        let query = crate::sql::parser::parse_query(QUERY).unwrap();
        plan_view(catalog, "v", &query, &Default::default()).await.unwrap()
    }

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let (keys, values): (Vec<&str>, Vec<i64>) = rows.iter().copied().unzip();
        let times = TimestampMicrosecondArray::from(vec![0; rows.len()]).with_timezone(UTC);
        RecordBatch::try_new(
            stream_schema(),
            vec![Arc::new(StringArray::from(keys)), Arc::new(Int64Array::from(values)), Arc::new(times)],
        )
        .unwrap()
    }

    fn sorted(plan: &IncrementalPlan) -> Vec<String> {
        let all = plan.state.lock().evaluate_all(&plan.state_schema).unwrap();
        let mut lines: Vec<String> =
            pretty_format_batches(&[all]).unwrap().to_string().lines().map(String::from).collect();
        lines.sort();
        lines
    }

    /// A full snapshot and then deltas rebuild the state exactly; taking
    /// snapshots does not disturb the state they are taken from (string_agg's
    /// `state` hands its string over); a delta holds only changed groups.
    #[tokio::test]
    async fn full_then_deltas_rebuild_the_same_groups() {
        let batches = [
            batch(&[("a", 1), ("b", 2), ("c", 3), ("a", 4)]),
            batch(&[("b", 5), ("d", 6)]),
            batch(&[("a", 7), ("a", 1)]),
        ];
        let (watched, untouched, rebuilt) = (Arc::new(plan().await), Arc::new(plan().await), plan().await);
        let mut snapshots = Vec::new();
        for b in &batches {
            AggregateOperator::new(watched.clone())
                .process_batch(crate::stream::change::ChangeBatch::inserts(b.clone(), 0))
                .await
                .unwrap();
            AggregateOperator::new(untouched.clone())
                .process_batch(crate::stream::change::ChangeBatch::inserts(b.clone(), 0))
                .await
                .unwrap();
            snapshots.push(watched.state.lock().take_snapshot(false).unwrap());
        }
        assert!(snapshots[0].full, "the first snapshot of a view is full");
        assert_eq!((snapshots[1].full, snapshots[1].batch.num_rows()), (false, 2), "b and d changed");
        assert_eq!(snapshots[2].batch.num_rows(), 1, "only a changed");
        assert_eq!(watched.state.lock().dirty_groups(), 0);
        assert_eq!(sorted(&watched), sorted(&untouched));
        for s in &snapshots {
            rebuilt.state.lock().restore(s).unwrap();
        }
        assert_eq!(sorted(&rebuilt), sorted(&untouched));
        assert_eq!(rebuilt.state.lock().dirty_groups(), 0, "restored groups are on disk already");
        // A full snapshot replaces whatever was there.
        let full = watched.state.lock().take_snapshot(true).unwrap();
        rebuilt.state.lock().restore(&full).unwrap();
        assert_eq!(sorted(&rebuilt), sorted(&untouched));
    }
}
