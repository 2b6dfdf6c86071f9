//! Sequences: the numbers of a table's `serial` and identity columns.
//!
//! Each numbered column has one [`Sequence`], and its default is a
//! [`NextVal`] call: DataFusion fills a column an INSERT leaves out with
//! the column's default, and `NextVal` hands out one number per row. As in
//! PostgreSQL, numbers are never given twice and never rolled back: an
//! INSERT that fails leaves a gap. The next value is saved with the table
//! in each checkpoint, and recovery moves it past every value the insert
//! log replays, so no number is handed out again after a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use datafusion::arrow::array::{ArrayRef, Int16Array, Int32Array, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::TableError;

/// One numbered column's counter.
#[derive(Debug)]
pub struct Sequence {
    /// PostgreSQL's name for it: `<table>_<column>_seq`.
    name: String,
    next: AtomicI64,
    max: i64,
}

impl Sequence {
    /// A sequence for values of `data_type` (an integer type), starting at
    /// `next`.
    pub fn new(table: &str, column: &str, data_type: &DataType, next: i64) -> Self {
        let max = match data_type {
            DataType::Int16 => i64::from(i16::MAX),
            DataType::Int32 => i64::from(i32::MAX),
            _ => i64::MAX,
        };
        Self { name: format!("{table}_{column}_seq"), next: AtomicI64::new(next.max(1)), max }
    }

    /// The value the next row gets.
    pub fn peek(&self) -> i64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Takes `n` numbers and returns the first.
    pub fn take(&self, n: usize) -> Result<i64, TableError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        match first.checked_add(n - 1) {
            Some(last) if n == 0 || last <= self.max => Ok(first),
            _ => {
                // Leave the counter past the end, so every later call fails too.
                self.next.store(self.max.saturating_add(1), Ordering::SeqCst);
                Err(TableError::SequenceExhausted { sequence: self.name.clone(), max: self.max })
            }
        }
    }

    /// Moves the counter past `value` (a value recovery saw in the log).
    pub fn saw(&self, value: i64) {
        self.next.fetch_max(value.saturating_add(1), Ordering::SeqCst);
    }
}

/// `nextval('<table>_<column>_seq')`: one number per row from a sequence,
/// as a column's default.
#[derive(Debug)]
pub struct NextVal {
    sequence: Arc<Sequence>,
    data_type: DataType,
    signature: Signature,
}

impl PartialEq for NextVal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sequence, &other.sequence)
    }
}

impl Eq for NextVal {}

impl std::hash::Hash for NextVal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sequence.name.hash(state);
    }
}

impl NextVal {
    /// The default expression of a column numbered by `sequence`.
    pub fn default_expr(sequence: Arc<Sequence>, data_type: DataType) -> Expr {
        let udf = Self { sequence, data_type, signature: Signature::exact(vec![], Volatility::Volatile) };
        Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            vec![],
        ))
    }
}

impl ScalarUDFImpl for NextVal {
    fn name(&self) -> &str {
        "nextval"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.data_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let first = self.sequence.take(rows).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let values = (0..rows as i64).map(|i| first + i);
        let array: ArrayRef = match self.data_type {
            DataType::Int16 => Arc::new(values.map(|v| v as i16).collect::<Int16Array>()),
            DataType::Int32 => Arc::new(values.map(|v| v as i32).collect::<Int32Array>()),
            DataType::Int64 => Arc::new(values.collect::<Int64Array>()),
            ref other => return exec_err!("a sequence cannot number a column of type {other}"),
        };
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_handed_out_once_and_stop_at_the_type_maximum() {
        let s = Sequence::new("t", "id", &DataType::Int16, 1);
        assert_eq!(s.take(3).ok(), Some(1));
        assert_eq!(s.take(1).ok(), Some(4));
        s.saw(100);
        assert_eq!(s.peek(), 101);
        s.saw(7);
        assert_eq!(s.peek(), 101, "recovery never moves a sequence back");
        s.saw(i64::from(i16::MAX) - 1);
        assert_eq!(s.take(1).ok(), Some(i64::from(i16::MAX)));
        let err = s.take(1).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("nextval: reached maximum value of sequence \"t_id_seq\" (32767)"));
        assert!(s.take(1).is_err(), "an exhausted sequence stays exhausted");
    }
}
