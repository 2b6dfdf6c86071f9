//! Aggregates under retraction: a view whose input removes rows (a table,
//! or a view over one) adds and subtracts raw values instead of merging
//! partial states.
//!
//! Each group counts its rows, and is removed when the count reaches zero.
//! Per aggregate:
//!
//! - `count`, `sum` and `avg` **subtract**: DataFusion's sliding
//!   accumulators take `retract_batch` in any order for them.
//! - Every other aggregate keeps, per group, the **multiset** of its
//!   argument values ([`MultisetAccumulator`]), and is evaluated on a fresh
//!   DataFusion accumulator fed that multiset. That is exact for `min`,
//!   `max`, `count(DISTINCT)`, `string_agg`, `array_agg` and the rest under
//!   any deletes. (DataFusion's own `retract_batch` for `min`/`max` is only
//!   right when the oldest value leaves first, as in a sliding frame.)
//! - Approximate aggregates (sketches) are refused by the planner.
//!
//! Such a view is *derived*: its state is a function of the relations it
//! reads, so a checkpoint does not save it; recovery rebuilds it from them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::GroupedState;

/// What one batch of a view's input adds (`sign` +1) or removes (−1),
/// evaluated up to the aggregate: group keys and each aggregate's arguments.
#[derive(Debug, Clone)]
pub struct RetractInput {
    /// +1: rows added; −1: rows removed.
    pub sign: i8,
    /// Rows in the batch.
    pub rows: usize,
    /// The group key columns.
    pub keys: Vec<ArrayRef>,
    /// Per aggregate, its argument columns.
    pub args: Vec<Vec<ArrayRef>>,
    /// Per aggregate, its `FILTER (WHERE ...)`, evaluated.
    pub filters: Vec<Option<BooleanArray>>,
}

/// How an aggregate follows retractions.
#[derive(Debug, Clone)]
pub enum RetractKind {
    /// Its sliding accumulator subtracts.
    Subtract,
    /// A multiset of its argument values, with their types.
    Multiset(Arc<RowConverter>),
}

/// The retraction side of a [`GroupedState`].
#[derive(Debug)]
pub(super) struct RetractMode {
    pub(super) kinds: Vec<RetractKind>,
    /// Rows in each group.
    pub(super) weights: Vec<i64>,
}

/// Whether an aggregate subtracts correctly whatever order rows leave in.
fn subtracts(aggregate: &AggregateFunctionExpr) -> bool {
    !aggregate.is_distinct() && matches!(aggregate.fun().name(), "count" | "sum" | "avg" | "mean")
}

/// The approximate aggregates: they cannot retract, and are refused over
/// input that removes rows.
pub fn cannot_retract(aggregate: &AggregateFunctionExpr) -> bool {
    aggregate.fun().name().starts_with("approx_")
}

impl GroupedState {
    /// Makes this (empty) state follow an input that removes rows;
    /// `arg_types` are each aggregate's argument types.
    pub fn set_retracting(&mut self, arg_types: &[Vec<DataType>]) -> Result<()> {
        let mut kinds = Vec::with_capacity(self.aggregates.len());
        for (aggregate, types) in self.aggregates.iter().zip(arg_types) {
            kinds.push(if subtracts(aggregate) {
                RetractKind::Subtract
            } else {
                let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
                RetractKind::Multiset(Arc::new(RowConverter::new(fields)?))
            });
        }
        self.start_retracting(kinds)
    }

    /// Empties this state and has it retract with `kinds` from now on.
    pub(super) fn start_retracting(&mut self, kinds: Vec<RetractKind>) -> Result<()> {
        // Nothing here hands its contents over: the multiset evaluates a copy.
        self.hands_over = vec![false; self.aggregates.len()];
        self.retract = Some(RetractMode { kinds, weights: Vec::new() });
        self.accumulators.clear();
        self.groups = 0;
        self.is_dirty.clear();
        if self.converter.is_none() {
            self.push_accumulators()?;
        }
        Ok(())
    }

    /// Whether this state follows an input that removes rows.
    pub fn retracting(&self) -> bool {
        self.retract.is_some()
    }

    /// A new accumulator for aggregate `a`.
    pub(super) fn new_accumulator(&self, a: usize) -> Result<Box<dyn Accumulator>> {
        let aggregate = &self.aggregates[a];
        match self.retract.as_ref().map(|r| &r.kinds[a]) {
            None => aggregate.create_accumulator(),
            Some(RetractKind::Subtract) => aggregate.create_sliding_accumulator(),
            Some(RetractKind::Multiset(converter)) => {
                Ok(Box::new(MultisetAccumulator::new(aggregate.clone(), converter.clone())))
            }
        }
    }

    /// Adds or removes one batch of input rows.
    pub fn apply_changes(&mut self, input: &RetractInput) -> Result<()> {
        if input.rows == 0 {
            return Ok(());
        }
        let groups = if input.sign > 0 { self.intern(&input.keys, input.rows)? } else { self.held_groups(input)? };
        let mut rows_of: HashMap<usize, Vec<u32>> = HashMap::new();
        for (row, &g) in groups.iter().enumerate() {
            rows_of.entry(g).or_default().push(row as u32);
        }
        if input.sign < 0 {
            // Checked before any accumulator is touched: taking out what was
            // never put in would corrupt (or trip) the sliding accumulators.
            let weights = self.retract.as_ref().map(|m| m.weights.as_slice()).unwrap_or_default();
            if rows_of.iter().any(|(&g, rows)| weights.get(g).copied().unwrap_or(0) < rows.len() as i64) {
                return internal_err!("a view was asked to remove rows it does not hold");
            }
        }
        let n = self.aggregates.len();
        for (a, args) in input.args.iter().enumerate() {
            let mask = input.filters.get(a).and_then(|f| f.as_ref());
            for (&g, rows) in &rows_of {
                let kept: Vec<u32> = match mask {
                    Some(m) => {
                        rows.iter().copied().filter(|&r| m.is_valid(r as usize) && m.value(r as usize)).collect()
                    }
                    None => rows.clone(),
                };
                if kept.is_empty() {
                    continue;
                }
                let indices = UInt32Array::from(kept);
                let arrays = args.iter().map(|c| take(c.as_ref(), &indices, None)).collect::<Result<Vec<_>, _>>()?;
                let accumulator = &mut self.accumulators[g * n + a];
                if input.sign > 0 { accumulator.update_batch(&arrays)? } else { accumulator.retract_batch(&arrays)? }
            }
        }
        let Some(mode) = self.retract.as_mut() else {
            return internal_err!("changes applied to a view that does not retract");
        };
        mode.weights.resize(self.groups, 0);
        let mut emptied = false;
        for (&g, rows) in &rows_of {
            mode.weights[g] += i64::from(input.sign) * rows.len() as i64;
            emptied |= mode.weights[g] == 0;
        }
        let keep: Vec<bool> = if emptied { mode.weights.iter().map(|&w| w > 0).collect() } else { Vec::new() };
        for &g in rows_of.keys() {
            self.mark_dirty(g);
        }
        if emptied && self.converter.is_some() {
            self.retain(&keep)?;
        }
        Ok(())
    }
}

impl GroupedState {
    /// The group of each row being removed; every one must be held.
    fn held_groups(&self, input: &RetractInput) -> Result<Vec<usize>> {
        if self.converter.is_none() {
            return Ok(vec![0; input.rows]);
        }
        match self.find_groups(&input.keys)?.into_iter().collect::<Option<Vec<usize>>>() {
            Some(groups) => Ok(groups),
            None => internal_err!("a view was asked to remove rows from a group it does not hold"),
        }
    }
}

/// An aggregate over a multiset of argument values: adding and removing
/// values is exact, and evaluating feeds the values to a fresh DataFusion
/// accumulator, so any aggregate works and the live multiset is untouched.
#[derive(Debug)]
pub struct MultisetAccumulator {
    aggregate: Arc<AggregateFunctionExpr>,
    converter: Arc<RowConverter>,
    values: HashMap<OwnedRow, u64>,
}

impl MultisetAccumulator {
    /// An empty multiset for `aggregate`, whose arguments `converter` encodes.
    pub fn new(aggregate: Arc<AggregateFunctionExpr>, converter: Arc<RowConverter>) -> Self {
        Self { aggregate, converter, values: HashMap::new() }
    }
}

impl Accumulator for MultisetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for row in self.converter.convert_columns(values)?.iter() {
            *self.values.entry(row.owned()).or_default() += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for row in self.converter.convert_columns(values)?.iter() {
            let owned = row.owned();
            match self.values.get_mut(&owned) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.values.remove(&owned);
                }
                None => return internal_err!("a value was removed from an aggregate that never had it"),
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut fresh = self.aggregate.create_accumulator()?;
        if !self.values.is_empty() {
            let rows = self.values.iter().flat_map(|(row, n)| std::iter::repeat_n(row.row(), *n as usize));
            let arrays = self.converter.convert_rows(rows)?;
            fresh.update_batch(&arrays)?;
        }
        fresh.evaluate()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.keys().map(|k| k.as_ref().len() + 40).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        internal_err!("a view over rows that change is rebuilt from its input, not saved")
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        internal_err!("a view over rows that change does not merge partial states")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    use crate::catalog::Catalog;
    use crate::catalog::types::field_for_sql_type;
    use crate::checkpoint::Durability;
    use crate::planner::{IncrementalPlan, plan_view};
    use crate::stream::change::ChangeBatch;
    use crate::stream::operator::aggregate::AggregateOperator;
    use crate::table::{TableDef, TableEntry};
    use crate::window::ViewOptions;

    const QUERY: &str = "SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS lo, max(v) AS hi, \
        count(DISTINCT v) AS d, median(v) AS m, string_agg(CAST(v AS text), ',' ORDER BY v) AS vs, \
        bool_and(v > 2) AS b, count(v) FILTER (WHERE v > 3) AS f FROM t GROUP BY k";

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![field_for_sql_type("k", "text").unwrap(), Field::new("v", DataType::Int64, true)]))
    }

    async fn view() -> Arc<IncrementalPlan> {
        let catalog = Arc::new(Catalog::default());
        let def = TableDef {
            id: 1,
            name: "t".into(),
            schema: schema(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            kafka_topic: None,
            defaults: Vec::new(),
            sequences: Vec::new(),
        };
        catalog.add_table(Arc::new(TableEntry::try_new(def, Durability::ephemeral()).unwrap())).unwrap();
        let query = crate::sql::parser::parse_query(QUERY).unwrap();
        Arc::new(plan_view(catalog, "v", &query, &ViewOptions::default()).await.unwrap())
    }

    fn rows(rows: &[(&str, i64)]) -> RecordBatch {
        let keys: StringArray = rows.iter().map(|r| Some(r.0)).collect();
        let values: Int64Array = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(schema(), vec![Arc::new(keys), Arc::new(values)]).unwrap()
    }

    async fn read(plan: &Arc<IncrementalPlan>) -> String {
        let batch = plan.state.lock().evaluate_all(&plan.state_schema).unwrap();
        let sorted = datafusion::arrow::compute::sort_to_indices(batch.column(0), None, None).unwrap();
        let batch = datafusion::arrow::compute::take_record_batch(&batch, &sorted).unwrap();
        pretty_format_batches(&[batch]).unwrap().to_string()
    }

    /// After random inserts and deletes, a view equals the same view
    /// computed from scratch over the rows that are left: every aggregate
    /// retracts exactly, and an emptied group disappears.
    #[tokio::test]
    async fn retraction_equals_recomputation() {
        let mut held: Vec<(&str, i64)> = Vec::new();
        let maintained = view().await;
        let operator = AggregateOperator::new(maintained.clone());
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..60 {
            let added: Vec<(&str, i64)> =
                (0..next(5)).map(|_| (["a", "b", "c"][next(3) as usize], next(8) as i64)).collect();
            let mut removed = Vec::new();
            for _ in 0..next(4) {
                if !held.is_empty() {
                    removed.push(held.swap_remove(next(held.len() as u64) as usize));
                }
            }
            held.extend(added.iter().copied());
            let changes = ChangeBatch::of(&rows(&removed), &rows(&added), 1).unwrap();
            operator.process_batch(changes).await.unwrap();
            let fresh = view().await;
            AggregateOperator::new(fresh.clone()).process_batch(ChangeBatch::inserts(rows(&held), 1)).await.unwrap();
            assert_eq!(read(&maintained).await, read(&fresh).await, "held: {held:?}");
        }
    }

    /// Removing a row that was never added is a bug, and is reported.
    #[tokio::test]
    async fn removing_what_was_never_added_fails() {
        let plan = view().await;
        let operator = AggregateOperator::new(plan);
        let changes = ChangeBatch::of(&rows(&[("a", 1)]), &rows(&[]), 1).unwrap();
        assert!(operator.process_batch(changes).await.is_err());
    }
}
