//! `output_of('v')`: a view's changes as a stream (PipelineDB's output
//! streams).
//!
//! Each row of the stream is one changed row of `v`, as three composites:
//! `old`, the row before the write (NULL for a new row), `new`, the row
//! after it (NULL for a row that went), and `delta`: each numeric column's
//! `new − old` (an absent row counting as 0), and the key and other
//! columns' values (new, or old for a row that went). For `count` and `sum` the delta is
//! what the write added, as in PipelineDB. A view's −1/+1 change batch is
//! paired up by the view's group key: a −1 and a +1 with the same key are
//! one update. Rows that did not change are left out. Views read the
//! stream as any stream, for example
//! `SELECT (new).url FROM output_of('v') WHERE (new).n >= 100 AND (old).n < 100`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray, UInt32Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};

use datafusion::common::ScalarValue;

use crate::stream::change::ChangeBatch;

/// How `output_of('v')` is named inside a view's plan.
const PREFIX: &str = "__eddy_output_of__";

/// The name `output_of('view')` is planned under.
pub fn relation_name(view: &str) -> String {
    format!("{PREFIX}{view}")
}

/// The view whose output stream `name` is, if it is one.
pub fn view_of(name: &str) -> Option<&str> {
    name.strip_prefix(PREFIX)
}

/// The output stream's columns for a view with columns `view`: `old`,
/// `new` and `delta`, each a composite of the view's columns.
pub fn schema(view: &Schema) -> SchemaRef {
    let fields: Fields = view.fields().iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
    let composite = DataType::Struct(fields);
    Arc::new(Schema::new(vec![
        Field::new("old", composite.clone(), true),
        Field::new("new", composite.clone(), true),
        Field::new("delta", composite, true),
    ]))
}

/// Pairs a view's change batch into `(old, new)` rows: `keys` are the
/// view's columns that hold its group key (none for a view of one row).
pub fn pair(changes: &ChangeBatch, keys: &[usize], out: &SchemaRef) -> Result<Option<ChangeBatch>, ArrowError> {
    let (added, removed) = changes.split()?;
    let key_rows = |batch: &RecordBatch| -> Result<Vec<Vec<u8>>, ArrowError> {
        let columns: Vec<ArrayRef> = keys.iter().map(|&i| batch.column(i).clone()).collect();
        if columns.is_empty() {
            return Ok(vec![Vec::new(); batch.num_rows()]);
        }
        let converter = RowConverter::new(columns.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
        let rows = converter.convert_columns(&columns)?;
        Ok(rows.iter().map(|r| r.as_ref().to_vec()).collect())
    };
    let whole = |batch: &RecordBatch| -> Result<Vec<Vec<u8>>, ArrowError> {
        let all: Vec<usize> = (0..batch.num_columns()).collect();
        let columns: Vec<ArrayRef> = all.iter().map(|&i| batch.column(i).clone()).collect();
        let converter = RowConverter::new(columns.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
        Ok(converter.convert_columns(&columns)?.iter().map(|r| r.as_ref().to_vec()).collect())
    };
    let mut unmatched: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    for (i, key) in key_rows(&removed)?.into_iter().enumerate() {
        unmatched.entry(key).or_default().push(i as u32);
    }
    let (old_whole, new_whole) = (whole(&removed)?, whole(&added)?);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for (i, key) in key_rows(&added)?.into_iter().enumerate() {
        let before = unmatched.get_mut(&key).and_then(|rows| (!rows.is_empty()).then(|| rows.remove(0)));
        if let Some(b) = before
            && old_whole[b as usize] == new_whole[i]
        {
            continue; // touched, but unchanged
        }
        old.push(before);
        new.push(Some(i as u32));
    }
    let mut gone: Vec<u32> = unmatched.into_values().flatten().collect();
    gone.sort_unstable();
    for b in gone {
        old.push(Some(b));
        new.push(None);
    }
    if old.is_empty() {
        return Ok(None);
    }
    let (old, new) = (composite(&removed, &old, out, 0)?, composite(&added, &new, out, 1)?);
    let delta = delta(&old, &new, keys)?;
    let rows = RecordBatch::try_new(out.clone(), vec![old, new, delta])?;
    Ok(Some(ChangeBatch::inserts(rows, changes.epoch)))
}

/// `new − old` per numeric column that is not a key column (an absent
/// row's value is 0), and the other columns from `new`, or from `old` where
/// `new` is absent.
fn delta(old: &ArrayRef, new: &ArrayRef, keys: &[usize]) -> Result<ArrayRef, ArrowError> {
    let (Some(old), Some(new)) =
        (old.as_any().downcast_ref::<StructArray>(), new.as_any().downcast_ref::<StructArray>())
    else {
        return Err(ArrowError::SchemaError("an output stream's column is not a composite".into()));
    };
    let absent = |a: &StructArray| -> BooleanArray { (0..a.len()).map(|i| Some(a.is_null(i))).collect() };
    let (old_absent, new_absent) = (absent(old), absent(new));
    let mut columns = Vec::with_capacity(new.num_columns());
    for (i, (o, n)) in old.columns().iter().zip(new.columns()).enumerate() {
        let column = if is_number(n.data_type()) && !keys.contains(&i) {
            let zero = ScalarValue::new_zero(n.data_type())
                .and_then(|z| z.to_array_of_size(n.len()))
                .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
            let zeroed = |a: &ArrayRef, gone: &BooleanArray| zip(gone, &zero, a);
            let difference = numeric::sub_wrapping(&zeroed(n, &new_absent)?, &zeroed(o, &old_absent)?)?;
            // A decimal difference gains a digit of precision: keep the
            // column's type.
            match difference.data_type() == n.data_type() {
                true => difference,
                false => cast(&difference, n.data_type())?,
            }
        } else {
            zip(&new_absent, o, n)?
        };
        columns.push(column);
    }
    Ok(Arc::new(StructArray::try_new(new.fields().clone(), columns, None)?))
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() && !matches!(t, DataType::Decimal256(..))
}

/// The rows `picks` of `batch` (None: a NULL composite) as column `at` of `out`.
fn composite(batch: &RecordBatch, picks: &[Option<u32>], out: &SchemaRef, at: usize) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(fields) = out.field(at).data_type() else {
        return Err(ArrowError::SchemaError("an output stream's column is not a composite".into()));
    };
    let indices = UInt32Array::from(picks.to_vec());
    let columns = batch.columns().iter().map(|c| take(c.as_ref(), &indices, None)).collect::<Result<Vec<_>, _>>()?;
    let nulls = NullBuffer::from(picks.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(StructArray::try_new(fields.clone(), columns, Some(nulls))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn rows(schema: &SchemaRef, keys: Vec<&str>, n: Vec<i64>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(keys)), Arc::new(Int64Array::from(n))])
            .unwrap()
    }

    #[test]
    fn pairs_removed_and_added_rows_by_key() {
        let view =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let out = schema(&view);
        let before = rows(&view, vec!["a", "b", "c"], vec![1, 2, 3]);
        let after = rows(&view, vec!["a", "d", "c"], vec![5, 1, 3]);
        let changes = ChangeBatch::of(&before, &after, 4).unwrap();
        let paired = pair(&changes, &[0], &out).unwrap().unwrap();
        assert_eq!(paired.epoch, 4);
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[paired.rows]).unwrap().to_string();
        // a updated, d new, b gone; c touched but unchanged is left out.
        assert!(text.contains("| {k: a, n: 1} | {k: a, n: 5} | {k: a, n: 4}  |"), "{text}");
        assert!(text.contains("|              | {k: d, n: 1} | {k: d, n: 1}  |"), "{text}");
        assert!(text.contains("| {k: b, n: 2} |              | {k: b, n: -2} |"), "{text}");
        assert_eq!(text.lines().count(), 7, "{text}");
    }

    #[test]
    fn a_view_of_one_row_pairs_its_only_rows() {
        let view = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let out = schema(&view);
        let one = |n: i64| RecordBatch::try_new(view.clone(), vec![Arc::new(Int64Array::from(vec![n]))]).unwrap();
        let paired = pair(&ChangeBatch::of(&one(1), &one(2), 1).unwrap(), &[], &out).unwrap().unwrap();
        assert_eq!(paired.len(), 1);
        assert!(pair(&ChangeBatch::of(&one(2), &one(2), 2).unwrap(), &[], &out).unwrap().is_none());
    }

    #[test]
    fn names_the_output_stream() {
        assert_eq!(view_of(&relation_name("v")), Some("v"));
        assert_eq!(view_of("v"), None);
    }
}
