//! Keyed partial-aggregate state: what a continuous view remembers.
//!
//! A view's state is one entry per group: the group key (encoded with Arrow's
//! row format, so any key type works and equality is a byte compare) and one
//! DataFusion [`Accumulator`] per aggregate. Writes merge *partial states*
//! (the output of DataFusion's partial aggregation over a micro-batch) with
//! `merge_batch`; reads and snapshots go through [`intact`], so that they never
//! empty the state they read.
//! Memory grows with the number of groups, never with the number of events.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use hashbrown::HashTable;

/// Accumulators measured for [`GroupedState::size_bytes`] at most.
const SIZE_SAMPLE: usize = 4096;

mod intact;
mod retract;
mod session;
mod snapshot;
#[cfg(test)]
mod testing;
mod window;

pub use retract::{MultisetAccumulator, RetractInput, cannot_retract};
pub use session::SessionSpec;

pub use snapshot::StateSnapshot;

/// How a partial-aggregate batch is laid out: the group columns first, then
/// each aggregate's state columns.
#[derive(Debug, Clone)]
pub struct PartialLayout {
    /// Number of leading group-key columns.
    pub group_columns: usize,
    /// For each aggregate, the range of its state columns.
    pub state_columns: Vec<std::ops::Range<usize>>,
}

/// The groups of one view and their accumulators.
pub struct GroupedState {
    aggregates: Arc<[Arc<AggregateFunctionExpr>]>,
    key_types: Vec<DataType>,
    /// `None` when the view has no GROUP BY: then there is exactly one group.
    converter: Option<RowConverter>,
    keys: Option<Rows>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Accumulator of group `g`, aggregate `a` is at `g * aggregates.len() + a`.
    accumulators: Vec<Box<dyn Accumulator>>,
    groups: usize,
    /// State columns of each aggregate (what `Accumulator::state` returns).
    state_widths: Vec<usize>,
    /// Whether each aggregate's `state`/`evaluate` could hand over its
    /// contents, so it must be read through [`intact`].
    hands_over: Vec<bool>,
    /// Groups changed since the last snapshot, each once.
    dirty: Vec<u32>,
    /// Whether group `g` is in `dirty`.
    is_dirty: Vec<bool>,
    /// The next snapshot must hold every group (a new or truncated view).
    full_pending: bool,
    /// For a session window: how its last key column works.
    session: Option<SessionSpec>,
    /// Changes whenever groups are renumbered (removed or cleared), so a
    /// read in chunks knows its group numbers still hold.
    generation: u64,
    /// Each key's sessions; `None` until built from the groups.
    session_index: Option<session::SessionIndex>,
    /// For an input that removes rows: how each aggregate retracts, and
    /// each group's row count.
    retract: Option<retract::RetractMode>,
}

impl std::fmt::Debug for GroupedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupedState").field("groups", &self.groups).finish()
    }
}

impl GroupedState {
    /// An empty state for keys of `key_types` and the given aggregates. A
    /// view without GROUP BY starts with its single group, as
    /// `SELECT count(*) FROM s` has one row even over no events.
    pub fn try_new(key_types: &[DataType], aggregates: Arc<[Arc<AggregateFunctionExpr>]>) -> Result<Self> {
        let (converter, keys) = if key_types.is_empty() {
            (None, None)
        } else {
            let converter = RowConverter::new(key_types.iter().map(|t| SortField::new(t.clone())).collect())?;
            let keys = converter.empty_rows(0, 0);
            (Some(converter), Some(keys))
        };
        let state_fields = aggregates.iter().map(|a| a.state_fields()).collect::<Result<Vec<_>>>()?;
        let state_widths = state_fields.iter().map(|f| f.len()).collect();
        let hands_over = state_fields.iter().map(|f| intact::may_hand_over(f)).collect();
        let mut state = Self {
            aggregates,
            key_types: key_types.to_vec(),
            converter,
            keys,
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            accumulators: Vec::new(),
            groups: 0,
            state_widths,
            hands_over,
            dirty: Vec::new(),
            is_dirty: Vec::new(),
            full_pending: true,
            session: None,
            session_index: None,
            generation: 0,
            retract: None,
        };
        if state.converter.is_none() {
            state.push_accumulators()?;
        }
        Ok(state)
    }

    /// Number of groups held.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Approximate bytes held by keys and accumulators.
    ///
    /// Beyond [`SIZE_SAMPLE`] accumulators, an evenly spread sample of
    /// them is measured and scaled up, so that reading the figure (each
    /// scrape of `/metrics`, `pipelinedb.views`) holds the state's lock
    /// briefly whatever the number of groups.
    pub fn size_bytes(&self) -> usize {
        let keys = self.keys.as_ref().map_or(0, |k| k.size());
        let n = self.accumulators.len();
        let accs: usize = match n <= SIZE_SAMPLE {
            true => self.accumulators.iter().map(|a| a.size()).sum(),
            false => {
                let step = n / SIZE_SAMPLE;
                let sampled: usize = self.accumulators.iter().step_by(step).take(SIZE_SAMPLE).map(|a| a.size()).sum();
                sampled * n / SIZE_SAMPLE
            }
        };
        keys + accs + self.index.capacity() * 4
    }

    /// Forgets every group (`truncate_continuous_view`).
    pub fn clear(&mut self) -> Result<()> {
        let mut fresh = Self::try_new(&self.key_types, self.aggregates.clone())?;
        fresh.session = self.session.take();
        if let Some(mode) = self.retract.take() {
            fresh.start_retracting(mode.kinds)?;
        }
        fresh.generation = self.generation + 1;
        *self = fresh;
        Ok(())
    }

    fn push_accumulators(&mut self) -> Result<()> {
        for a in 0..self.aggregates.len() {
            let accumulator = self.new_accumulator(a)?;
            self.accumulators.push(accumulator);
        }
        self.groups += 1;
        if let Some(mode) = self.retract.as_mut() {
            mode.weights.push(0);
        }
        self.is_dirty.push(false);
        Ok(())
    }

    /// Finds the group of each row of `keys`, creating missing groups.
    fn intern(&mut self, key_columns: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
        let (Some(converter), Some(_)) = (&self.converter, &self.keys) else {
            return Ok(vec![0; rows]);
        };
        let encoded = converter.convert_columns(key_columns)?;
        let mut out = Vec::with_capacity(rows);
        for row in encoded.iter() {
            let bytes = row.as_ref();
            let hash = self.hasher.hash_one(bytes);
            let keys = self.keys.as_ref().map(|k| k as &Rows);
            let found = self.index.find(hash, |&g| keys.is_some_and(|k| k.row(g as usize).as_ref() == bytes)).copied();
            let group = match found {
                Some(g) => g as usize,
                None => {
                    let g = self.groups;
                    if let Some(keys) = self.keys.as_mut() {
                        keys.push(row);
                    }
                    let (hasher, keys) = (&self.hasher, self.keys.as_ref());
                    self.index.insert_unique(hash, g as u32, |&other| {
                        keys.map_or(0, |k| hasher.hash_one(k.row(other as usize).as_ref()))
                    });
                    self.push_accumulators()?;
                    g
                }
            };
            out.push(group);
        }
        Ok(out)
    }

    /// The group of each row of `keys`, if it exists.
    fn find_groups(&self, keys: &[ArrayRef]) -> Result<Vec<Option<usize>>> {
        let (Some(converter), Some(stored)) = (&self.converter, &self.keys) else {
            return Ok(vec![None; keys.first().map_or(0, |k| k.len())]);
        };
        let rows = converter.convert_columns(keys)?;
        Ok(rows
            .iter()
            .map(|row| {
                let hash = self.hasher.hash_one(row.as_ref());
                self.index.find(hash, |&g| stored.row(g as usize).as_ref() == row.as_ref()).map(|&g| g as usize)
            })
            .collect())
    }

    /// The group whose key is the one row of `key`.
    fn find_group(&self, key: &[ArrayRef]) -> Result<Option<usize>> {
        Ok(self.find_groups(key)?.into_iter().next().flatten())
    }

    /// Merges one partial-aggregate batch into the state.
    pub fn merge_partial(&mut self, batch: &RecordBatch, layout: &PartialLayout) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let groups = self.intern(&batch.columns()[..layout.group_columns], rows)?;
        for &g in &groups {
            self.mark_dirty(g);
        }
        let n = self.aggregates.len();
        for (a, range) in layout.state_columns.iter().enumerate() {
            let columns = &batch.columns()[range.clone()];
            for (row, &g) in groups.iter().enumerate() {
                let slices: Vec<ArrayRef> = columns.iter().map(|c| c.slice(row, 1)).collect();
                self.accumulators[g * n + a].merge_batch(&slices)?;
            }
        }
        Ok(())
    }

    fn mark_dirty(&mut self, g: usize) {
        if !self.is_dirty[g] {
            self.is_dirty[g] = true;
            self.dirty.push(g as u32);
        }
    }

    /// The numbering of the groups: it changes when groups are removed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Evaluates groups `start..start + count` (fewer at the end); `None`
    /// once `start` is past the last group.
    pub fn evaluate_range(&mut self, start: usize, count: usize, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        if start >= self.groups && !(start == 0 && self.groups == 0) {
            return Ok(None);
        }
        let groups: Vec<usize> = (start..(start + count).min(self.groups)).collect();
        self.evaluate_groups(&groups, schema).map(Some)
    }

    /// Evaluates every group into one batch with the view's aggregate schema.
    pub fn evaluate_all(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let groups: Vec<usize> = (0..self.groups).collect();
        self.evaluate_groups(&groups, schema)
    }

    /// Evaluates the groups whose keys are the rows of `keys` (a point
    /// lookup); missing keys produce no row.
    pub fn evaluate_keys(&mut self, keys: &[ArrayRef], schema: &SchemaRef) -> Result<RecordBatch> {
        let Some(converter) = &self.converter else {
            return self.evaluate_all(schema);
        };
        let wanted = converter.convert_columns(keys)?;
        let mut groups = Vec::new();
        if let Some(stored) = &self.keys {
            for row in wanted.iter() {
                let bytes = row.as_ref();
                let hash = self.hasher.hash_one(bytes);
                if let Some(&g) = self.index.find(hash, |&g| stored.row(g as usize).as_ref() == bytes) {
                    groups.push(g as usize);
                }
            }
        }
        self.evaluate_groups(&groups, schema)
    }

    fn evaluate_groups(&mut self, groups: &[usize], schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        if let (Some(converter), Some(keys)) = (&self.converter, &self.keys) {
            columns.extend(converter.convert_rows(groups.iter().map(|&g| keys.row(g)))?);
        }
        let n = self.aggregates.len();
        for a in 0..n {
            let mut values = Vec::with_capacity(groups.len());
            for &g in groups {
                values.push(self.value_intact(g, a)?);
            }
            let field_type = schema.field(columns.len()).data_type();
            let array =
                if values.is_empty() { new_empty_array(field_type) } else { ScalarValue::iter_to_array(values)? };
            columns.push(array);
        }
        if columns.len() != schema.fields().len() {
            return internal_err!("view state has {} columns, schema {}", columns.len(), schema.fields().len());
        }
        typed_batch(schema, columns)
    }
}

/// A batch of `schema` from evaluated columns, each cast to its field's type
/// where the aggregate's own type differs (DataFusion may widen).
fn typed_batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { cast(&c, f.data_type()) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
