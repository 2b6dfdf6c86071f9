//! Windowed state: groups that expire, and sliding windows read across steps.
//!
//! A sliding view's last key column is the step an event fell in. A read
//! merges, per remaining key, the accumulators of every step still inside the
//! window into fresh ones and evaluates those, so the stored steps are never
//! disturbed. Expiry (steps that left the window, groups past a TTL) removes
//! groups and compacts the state.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::Accumulator;
use hashbrown::HashTable;

use super::GroupedState;

/// A timestamp key column's values, in microseconds.
pub(super) fn micros(column: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let as_micros = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    match as_micros.as_any().downcast_ref::<TimestampMicrosecondArray>() {
        Some(a) => Ok(a.iter().collect()),
        None => internal_err!("window key is not a timestamp"),
    }
}

impl GroupedState {
    /// Every group's key columns.
    pub(super) fn key_arrays(&self) -> Result<Vec<ArrayRef>> {
        match (&self.converter, &self.keys) {
            (Some(converter), Some(keys)) => Ok(converter.convert_rows(keys.iter())?),
            _ => Ok(Vec::new()),
        }
    }

    /// Removes the groups whose timestamp key `key` is before `min` (a
    /// sliding window's expired steps, or groups past a TTL); returns how
    /// many went. Groups with a NULL time stay.
    pub fn expire_before(&mut self, key: usize, min: i64) -> Result<usize> {
        if self.groups == 0 || self.converter.is_none() {
            return Ok(0);
        }
        let keys = self.key_arrays()?;
        let Some(column) = keys.get(key) else {
            return internal_err!("no key column {key} to expire on");
        };
        let keep: Vec<bool> = micros(column)?.iter().map(|t| t.is_none_or(|t| t >= min)).collect();
        let removed = keep.iter().filter(|k| !**k).count();
        if removed > 0 {
            self.retain(&keep)?;
        }
        Ok(removed)
    }

    /// Keeps the groups whose `keep` entry is true, renumbering them.
    pub(super) fn retain(&mut self, keep: &[bool]) -> Result<()> {
        let (Some(converter), Some(old_keys)) = (&self.converter, self.keys.take()) else {
            return Ok(());
        };
        let n = self.aggregates.len();
        let mut keys = converter.empty_rows(0, 0);
        let mut index = HashTable::new();
        let mut accumulators: Vec<Box<dyn Accumulator>> = Vec::new();
        let mut is_dirty = Vec::new();
        let mut renumbered = vec![u32::MAX; self.groups];
        let mut old = std::mem::take(&mut self.accumulators).into_iter();
        for g in 0..self.groups {
            let accs: Vec<Box<dyn Accumulator>> = old.by_ref().take(n).collect();
            if !keep[g] {
                continue;
            }
            let new = is_dirty.len();
            renumbered[g] = new as u32;
            let row = old_keys.row(g);
            keys.push(row);
            let hasher = &self.hasher;
            let hash = hasher.hash_one(row.as_ref());
            let stored = &keys;
            index.insert_unique(hash, new as u32, |&other| hasher.hash_one(stored.row(other as usize).as_ref()));
            accumulators.extend(accs);
            is_dirty.push(self.is_dirty[g]);
        }
        if let Some(mode) = self.retract.as_mut() {
            let mut g = 0;
            mode.weights.retain(|_| {
                g += 1;
                keep[g - 1]
            });
        }
        self.generation += 1;
        self.dirty = self.dirty.iter().map(|&g| renumbered[g as usize]).filter(|&g| g != u32::MAX).collect();
        self.groups = is_dirty.len();
        self.keys = Some(keys);
        self.index = index;
        self.accumulators = accumulators;
        self.is_dirty = is_dirty;
        Ok(())
    }

    /// Evaluates a sliding window: for each key (all key columns but the
    /// last, the step), the merge of its steps in `live` (the steps starting
    /// in that range). With `candidates`, only those groups are considered (a
    /// point lookup). The step column of a row holds the newest step merged.
    /// A view without other keys always gives one row.
    pub fn evaluate_sliding(
        &mut self,
        schema: &SchemaRef,
        live: std::ops::RangeInclusive<i64>,
        candidates: Option<Vec<usize>>,
    ) -> Result<RecordBatch> {
        let key_columns = self.key_types.len();
        let user_keys = key_columns.saturating_sub(1);
        let groups: Vec<usize> = candidates.unwrap_or_else(|| (0..self.groups).collect());
        let keys = match (&self.converter, &self.keys) {
            (Some(converter), Some(stored)) => converter.convert_rows(groups.iter().map(|&g| stored.row(g)))?,
            _ => return internal_err!("a sliding window needs its step key"),
        };
        let Some(steps) = keys.last() else {
            return internal_err!("a sliding window needs its step key");
        };
        let steps = micros(steps)?;
        let user_converter =
            RowConverter::new(self.key_types[..user_keys].iter().map(|t| SortField::new(t.clone())).collect())?;
        let user_rows = user_converter.convert_columns(&keys[..user_keys])?;
        // Output row per distinct user key: its representative (a position in
        // `keys`) with the newest step, and its member groups.
        let mut outputs: HashMap<&[u8], usize> = HashMap::new();
        let mut representative: Vec<(u32, i64)> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let Some(step) = *step else { continue };
            if !live.contains(&step) {
                continue;
            }
            let key: &[u8] = if user_keys == 0 { &[] } else { user_rows.row(i).data() };
            let out = *outputs.entry(key).or_insert_with(|| {
                representative.push((i as u32, step));
                members.push(Vec::new());
                representative.len() - 1
            });
            members[out].push(groups[i]);
            if step > representative[out].1 {
                representative[out] = (i as u32, step);
            }
        }
        let n = self.aggregates.len();
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(members.len().max(1)); n];
        for member_groups in &members {
            for (a, column) in values.iter_mut().enumerate() {
                column.push(self.merge_steps(a, member_groups)?);
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        if members.is_empty() && user_keys == 0 {
            // No live step: the one row of an ungrouped view, over no events.
            columns.push(datafusion::arrow::array::new_null_array(schema.field(0).data_type(), 1));
            for (a, column) in values.iter_mut().enumerate() {
                column.push(self.aggregates[a].create_accumulator()?.evaluate()?);
            }
        } else {
            let picks = UInt32Array::from(representative.iter().map(|(i, _)| *i).collect::<Vec<_>>());
            for key in &keys {
                columns.push(take(key.as_ref(), &picks, None)?);
            }
        }
        for (a, column) in values.into_iter().enumerate() {
            let field_type = schema.field(key_columns + a).data_type();
            columns.push(if column.is_empty() {
                datafusion::arrow::array::new_empty_array(field_type)
            } else {
                ScalarValue::iter_to_array(column)?
            });
        }
        super::typed_batch(schema, columns)
    }

    /// The groups of the looked-up keys (one row per key in `user_keys`) in
    /// each of the `steps`: a sliding window's point lookup, one probe per
    /// key and step.
    pub fn sliding_lookup(&self, user_keys: &[ArrayRef], steps: &[i64]) -> Result<Vec<usize>> {
        let Some(step_type) = self.key_types.last() else {
            return internal_err!("a sliding window needs its step key");
        };
        let rows = user_keys.first().map_or(0, |k| k.len());
        let mut found = Vec::new();
        for row in 0..rows {
            let repeat = UInt32Array::from(vec![row as u32; steps.len()]);
            let mut columns: Vec<ArrayRef> =
                user_keys.iter().map(|k| take(k.as_ref(), &repeat, None)).collect::<std::result::Result<_, _>>()?;
            let steps: ArrayRef = Arc::new(TimestampMicrosecondArray::from(steps.to_vec()));
            columns.push(cast(&steps, step_type)?);
            found.extend(self.find_groups(&columns)?.into_iter().flatten());
        }
        Ok(found)
    }

    /// Aggregate `a` over `groups`, merged into a fresh accumulator.
    fn merge_steps(&mut self, a: usize, groups: &[usize]) -> Result<ScalarValue> {
        let aggregate = Arc::clone(&self.aggregates[a]);
        let width = self.state_widths[a];
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(groups.len()); width];
        for &g in groups {
            let state = self.state_intact(g, a)?;
            for (column, value) in columns.iter_mut().zip(state) {
                column.push(value);
            }
        }
        // All of a key's steps go into one merge.
        let arrays: Vec<ArrayRef> = columns.into_iter().map(ScalarValue::iter_to_array).collect::<Result<_>>()?;
        let mut merged = aggregate.create_accumulator()?;
        merged.merge_batch(&arrays)?;
        merged.evaluate()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{SECOND, apply, lines, plan};

    const QUERY: &str = "SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k";

    /// Steps in the window merge per key; older steps drop out at read
    /// time, are found by a point lookup's probes, and expiry removes them.
    #[tokio::test]
    async fn sliding_steps_merge_drop_out_and_expire() {
        let plan = plan(QUERY, &[("sw", "100 seconds"), ("step_factor", "10")]).await;
        apply(&plan, &[("a", 1, 0), ("b", 2, 3)]).await;
        apply(&plan, &[("a", 10, 15), ("a", 100, 95)]).await;
        let sliding = plan.windowing.sliding.clone().unwrap();
        let step_key = plan.step_key.unwrap();
        let mut state = plan.state.lock();
        assert_eq!(state.groups(), 4, "(a, 0s), (b, 0s), (a, 10s), (a, 90s)");
        let live = sliding.live_steps(99 * SECOND);
        let at_99 = lines(state.evaluate_sliding(&plan.state_schema, live, None).unwrap());
        assert_eq!(at_99.len(), 2);
        assert!(at_99[0].starts_with("a|") && at_99[0].ends_with("|3|111"), "{at_99:?}");
        let live = sliding.live_steps(105 * SECOND);
        let steps = sliding.step_starts(&live);
        let at_105 = lines(state.evaluate_sliding(&plan.state_schema, live.clone(), None).unwrap());
        assert_eq!(at_105.len(), 1, "b's only step left the window: {at_105:?}");
        assert!(at_105[0].ends_with("|2|110"), "{at_105:?}");
        let a: datafusion::arrow::array::ArrayRef =
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"]));
        let candidates = state.sliding_lookup(&[a], &steps).unwrap();
        assert_eq!(candidates.len(), 2, "a's live steps, 10s and 90s");
        let looked_up = lines(state.evaluate_sliding(&plan.state_schema, live, Some(candidates)).unwrap());
        assert_eq!(looked_up, at_105);
        assert_eq!(state.expire_before(step_key, sliding.oldest_live_step(105 * SECOND)).unwrap(), 2);
        assert_eq!(state.groups(), 2);
        assert_eq!(state.expire_before(step_key, sliding.oldest_live_step(105 * SECOND)).unwrap(), 0);
    }

    /// A TTL on a grouped time column removes old groups and keeps the
    /// survivors (and their change tracking) intact.
    #[tokio::test]
    async fn expiry_by_time_key_compacts_the_state() {
        let plan = plan("SELECT minute(arrival_timestamp) AS m, k, count(*) AS n FROM s GROUP BY m, k", &[]).await;
        apply(&plan, &[("a", 1, 0), ("b", 1, 30), ("a", 1, 61), ("c", 1, 125)]).await;
        assert_eq!(plan.state.lock().groups(), 4);
        plan.state.lock().take_snapshot(true).unwrap();
        apply(&plan, &[("c", 1, 130), ("a", 1, 5)]).await;
        let mut state = plan.state.lock();
        assert_eq!(state.dirty_groups(), 2);
        assert_eq!(state.expire_before(0, 60 * SECOND).unwrap(), 2, "both groups of minute 0");
        assert_eq!(state.dirty_groups(), 1, "c's group is still changed; a's went");
        let left = lines(state.evaluate_all(&plan.state_schema).unwrap());
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[1].ends_with("|c|2"), "{left:?}");
    }
}
