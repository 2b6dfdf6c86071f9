//! A table's rows: a map from key to row, in Arrow's row format.
//!
//! With a primary key, the key is the primary key's columns and each row
//! is held once; without one, the table is a multiset and the key is the
//! whole row, held with its count. Changes are applied all or nothing:
//! every constraint is checked before the first row moves.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;

use super::TableError;
use crate::stream::change::ChangeBatch;

/// The rows of one table.
#[derive(Debug)]
pub struct TableRows {
    name: String,
    schema: SchemaRef,
    primary_key: Vec<usize>,
    /// Per column: declared NOT NULL (or in the primary key).
    not_null: Vec<bool>,
    /// Shared with private copies, whose rows it must read.
    row_converter: Arc<RowConverter>,
    key_converter: Option<Arc<RowConverter>>,
    rows: HashMap<OwnedRow, (OwnedRow, u64)>,
    count: u64,
    changed: bool,
}

impl TableRows {
    /// An empty table `name` of `schema`, keyed by the columns `primary_key`
    /// (none: a multiset).
    pub fn try_new(
        name: &str,
        schema: SchemaRef,
        primary_key: Vec<usize>,
        not_null: Vec<bool>,
    ) -> Result<Self, TableError> {
        let fields = |columns: &mut dyn Iterator<Item = usize>| {
            RowConverter::new(columns.map(|i| SortField::new(schema.field(i).data_type().clone())).collect())
        };
        let row_converter = Arc::new(fields(&mut (0..schema.fields().len()))?);
        let key_converter =
            if primary_key.is_empty() { None } else { Some(Arc::new(fields(&mut primary_key.iter().copied())?)) };
        Ok(Self {
            name: name.to_string(),
            schema,
            primary_key,
            not_null,
            row_converter,
            key_converter,
            rows: HashMap::new(),
            count: 0,
            changed: true,
        })
    }

    /// A copy of the rows, for a transaction to change privately (see
    /// [`super::overlay`]).
    pub fn private_copy(&self) -> Self {
        Self {
            name: self.name.clone(),
            schema: self.schema.clone(),
            primary_key: self.primary_key.clone(),
            not_null: self.not_null.clone(),
            row_converter: self.row_converter.clone(),
            key_converter: self.key_converter.clone(),
            rows: self.rows.clone(),
            count: self.count,
            changed: self.changed,
        }
    }

    /// Rows held.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Approximate bytes held.
    pub fn size_bytes(&self) -> usize {
        self.rows.iter().map(|(k, (r, _))| k.as_ref().len() + r.as_ref().len() + 48).sum()
    }

    /// Whether the rows changed since [`Self::mark_saved`].
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// A checkpoint saved the rows as they are.
    pub fn mark_saved(&mut self) {
        self.changed = false;
    }

    /// The primary key's columns.
    pub fn primary_key(&self) -> &[usize] {
        &self.primary_key
    }

    /// Every row, as one batch.
    pub fn snapshot(&self) -> Result<RecordBatch, TableError> {
        let rows = self.rows.values().flat_map(|(row, n)| std::iter::repeat_n(row.row(), *n as usize));
        self.batch_of(rows)
    }

    /// The rows whose primary key is a row of `keys` (one array per key column).
    pub fn lookup(&self, keys: &[ArrayRef]) -> Result<RecordBatch, TableError> {
        let Some(converter) = &self.key_converter else {
            return self.snapshot();
        };
        let wanted = converter.convert_columns(keys)?;
        // A key asked for twice (`id IN (1, 1)`, two events of one user)
        // still gives its row once.
        let mut seen = std::collections::HashSet::new();
        let found: Vec<_> = wanted
            .iter()
            .filter(|k| seen.insert(*k))
            .filter_map(|k| self.rows.get(&k.owned()))
            .map(|(r, _)| r.row())
            .collect();
        self.batch_of(found.into_iter())
    }

    fn batch_of<'a>(
        &self,
        rows: impl Iterator<Item = datafusion::arrow::row::Row<'a>>,
    ) -> Result<RecordBatch, TableError> {
        let columns = self.row_converter.convert_rows(rows)?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// The key of each row of `batch`.
    fn keys(&self, batch: &RecordBatch) -> Result<Rows, TableError> {
        match &self.key_converter {
            Some(converter) => {
                let columns: Vec<ArrayRef> = self.primary_key.iter().map(|&i| batch.column(i).clone()).collect();
                Ok(converter.convert_columns(&columns)?)
            }
            None => Ok(self.row_converter.convert_columns(batch.columns())?),
        }
    }

    /// Checks that `changes` apply: a removed row must be present; an added
    /// row must not collide with a primary key that stays or that an
    /// earlier added row took, and its primary key must not be NULL.
    pub fn check(&self, changes: &ChangeBatch) -> Result<(), TableError> {
        let (added, removed) = changes.split()?;
        self.check_not_null(&added)?;
        crate::catalog::types::check_lengths(&self.schema, &added).map_err(TableError::ValueTooLong)?;
        let removed_keys = self.keys(&removed)?;
        let mut gone: HashMap<&[u8], u64> = HashMap::new();
        for key in removed_keys.iter() {
            *gone.entry(key.data()).or_default() += 1;
        }
        for (key, n) in &gone {
            let held = self.rows.get(&self.parse_key(key)).map_or(0, |(_, n)| *n);
            if held < *n {
                return Err(TableError::Internal(format!("a removed row of \"{}\" is not there", self.name)));
            }
        }
        if self.key_converter.is_none() {
            return Ok(());
        }
        let added_keys = self.keys(&added)?;
        let mut taken: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        for (row, key) in added_keys.iter().enumerate() {
            let stays = self.rows.contains_key(&key.owned()) && !gone.contains_key(key.data());
            if stays || !taken.insert(key.data()) {
                return Err(self.duplicate(&added, row));
            }
        }
        Ok(())
    }

    fn parse_key(&self, bytes: &[u8]) -> OwnedRow {
        match &self.key_converter {
            Some(c) => c.parser().parse(bytes).owned(),
            None => self.row_converter.parser().parse(bytes).owned(),
        }
    }

    /// Applies `changes`, all or nothing (see [`Self::check`]).
    pub fn apply(&mut self, changes: &ChangeBatch) -> Result<(), TableError> {
        self.check(changes)?;
        self.apply_checked(changes)
    }

    /// Applies `changes` that [`Self::check`] passed, with no write since
    /// (the caller holds the table's write lock).
    pub fn apply_checked(&mut self, changes: &ChangeBatch) -> Result<(), TableError> {
        let (added, removed) = changes.split()?;
        let removed_keys = self.keys(&removed)?;
        let added_keys = self.keys(&added)?;
        let added_rows = self.row_converter.convert_columns(added.columns())?;
        for key in removed_keys.iter() {
            let owned = key.owned();
            match self.rows.get_mut(&owned) {
                Some((_, n)) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.rows.remove(&owned);
                }
                None => return Err(TableError::Internal(format!("a removed row of \"{}\" was not there", self.name))),
            }
            self.count -= 1;
        }
        for (key, row) in added_keys.iter().zip(added_rows.iter()) {
            self.rows.entry(key.owned()).and_modify(|(_, n)| *n += 1).or_insert_with(|| (row.owned(), 1));
            self.count += 1;
        }
        self.changed |= !changes.is_empty();
        Ok(())
    }

    /// The change that upserts each row of `batch` by its primary key, or
    /// deletes its key where `deleted`; of several rows with one key, the
    /// last wins. Returns the held rows it replaces or deletes, and the rows
    /// it adds. A row equal to the one held changes nothing, so applying
    /// the same messages twice changes nothing the second time.
    pub fn upsert_change(
        &self,
        batch: &RecordBatch,
        deleted: &[bool],
    ) -> Result<(RecordBatch, RecordBatch), TableError> {
        debug_assert!(self.key_converter.is_some(), "upserts need a primary key");
        debug_assert_eq!(deleted.len(), batch.num_rows(), "one flag per row");
        let keys = self.keys(batch)?;
        let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(batch.num_rows());
        for (i, key) in keys.iter().enumerate() {
            last.insert(key.data(), i);
        }
        let mut winners: Vec<usize> = last.into_values().collect();
        winners.sort_unstable();
        let new_rows = self.row_converter.convert_columns(batch.columns())?;
        let mut removed = Vec::new();
        let mut added: Vec<u32> = Vec::new();
        for i in winners {
            let held = self.rows.get(&keys.row(i).owned()).map(|(row, _)| row.row());
            match held {
                Some(row) if deleted[i] => removed.push(row),
                None if deleted[i] => {}
                Some(row) if row == new_rows.row(i) => {}
                Some(row) => {
                    removed.push(row);
                    added.push(i as u32);
                }
                None => added.push(i as u32),
            }
        }
        let removed = self.batch_of(removed.into_iter())?;
        let added = datafusion::arrow::compute::take_record_batch(batch, &UInt32Array::from(added))?;
        Ok((removed, added))
    }

    /// The key of each row of `batch`, encoded.
    pub fn key_rows(&self, batch: &RecordBatch) -> Result<Rows, TableError> {
        self.keys(batch)
    }

    /// Whether a row with this encoded key is held.
    pub fn holds_key(&self, key: datafusion::arrow::row::Row<'_>) -> bool {
        self.rows.contains_key(&key.owned())
    }

    /// The held rows whose primary keys are those of `batch`'s rows (in
    /// order, skipping keys not held).
    pub fn rows_with_keys_of(&self, batch: &RecordBatch) -> Result<RecordBatch, TableError> {
        let keys = self.keys(batch)?;
        let found: Vec<_> = keys.iter().filter_map(|k| self.rows.get(&k.owned())).map(|(r, _)| r.row()).collect();
        self.batch_of(found.into_iter())
    }

    fn check_not_null(&self, added: &RecordBatch) -> Result<(), TableError> {
        for (i, field) in self.schema.fields().iter().enumerate() {
            let not_null = self.not_null.get(i).copied().unwrap_or(false) || self.primary_key.contains(&i);
            if not_null && added.column(i).null_count() > 0 {
                return Err(TableError::NotNull { column: field.name().clone(), table: self.name.clone() });
            }
        }
        Ok(())
    }

    fn duplicate(&self, batch: &RecordBatch, row: usize) -> TableError {
        let names: Vec<&str> = self.primary_key.iter().map(|&i| self.schema.field(i).name().as_str()).collect();
        let values: Vec<String> = self
            .primary_key
            .iter()
            .map(|&i| ScalarValue::try_from_array(batch.column(i), row).map(|v| v.to_string()).unwrap_or_default())
            .collect();
        TableError::UniqueViolation {
            constraint: format!("{}_pkey", self.name),
            key: format!("({})=({})", names.join(", "), values.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("v", DataType::Utf8, true)]))
    }

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        let ids: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
        let vs: StringArray = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(vs)]).unwrap()
    }

    #[test]
    fn keyed_rows_reject_duplicates_and_update_all_or_nothing() {
        let mut t = TableRows::try_new("t", schema(), vec![0], vec![true, false]).unwrap();
        t.apply(&ChangeBatch::inserts(batch(&[(1, "a"), (2, "b")]), 1)).unwrap();
        let dup = t.apply(&ChangeBatch::inserts(batch(&[(3, "c"), (1, "x")]), 2));
        assert!(matches!(dup, Err(TableError::UniqueViolation { ref key, .. }) if key == "(id)=(1)"));
        assert_eq!(t.len(), 2, "nothing of a failed change is applied");
        t.apply(&ChangeBatch::of(&batch(&[(1, "a")]), &batch(&[(1, "z")]), 3).unwrap()).unwrap();
        let all = t.lookup(&[Arc::new(Int64Array::from(vec![1]))]).unwrap();
        assert_eq!(all.column(1).as_any().downcast_ref::<StringArray>().unwrap().value(0), "z");
    }

    #[test]
    fn a_table_without_a_key_is_a_multiset() {
        let mut t = TableRows::try_new("m", schema(), vec![], vec![false, false]).unwrap();
        t.apply(&ChangeBatch::inserts(batch(&[(1, "a"), (1, "a"), (2, "b")]), 1)).unwrap();
        assert_eq!(t.len(), 3);
        t.apply(&ChangeBatch::of(&batch(&[(1, "a")]), &batch(&[]), 2).unwrap()).unwrap();
        assert_eq!(t.snapshot().unwrap().num_rows(), 2);
    }

    #[test]
    fn upserts_keep_the_last_row_of_a_key_and_skip_rows_already_held() {
        let mut t = TableRows::try_new("t", schema(), vec![0], vec![true, false]).unwrap();
        t.apply(&ChangeBatch::inserts(batch(&[(1, "a"), (2, "b")]), 1)).unwrap();
        let messages = batch(&[(1, "x"), (3, "c"), (1, "y"), (2, ""), (4, "d"), (4, ""), (5, "")]);
        let deleted = [false, false, false, true, false, true, true];
        let (removed, added) = t.upsert_change(&messages, &deleted).unwrap();
        let ids = |b: &RecordBatch| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
        assert_eq!(ids(&removed), vec![1, 2], "1 is replaced, 2 deleted; 4 and 5 were never held");
        assert_eq!(ids(&added), vec![3, 1]);
        t.apply(&ChangeBatch::of(&removed, &added, 2).unwrap()).unwrap();
        let (removed, added) = t.upsert_change(&messages, &deleted).unwrap();
        assert_eq!((removed.num_rows(), added.num_rows()), (0, 0), "the same messages again change nothing");
    }
}
