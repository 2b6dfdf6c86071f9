//! Rows as JSON objects, the one encoding that view notifications and Kafka
//! sinks share: numbers and booleans as themselves (numbers with their
//! exact text, so numeric keeps its scale, as PostgreSQL's `row_to_json`
//! writes it), NULL as `null`, everything else as a string of its text.
//!
//! The encoding is deterministic, so the same row always gives the same
//! bytes: a sink compares what it wrote to a topic with what it would write
//! now by comparing text.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// A batch's rows, ready to write as JSON objects.
pub struct JsonRows<'a> {
    rows: &'a RecordBatch,
    formatters: Vec<Option<ArrayFormatter<'a>>>,
    /// Each column's name as a JSON string.
    names: Vec<String>,
}

impl<'a> JsonRows<'a> {
    /// The encoder of `rows`.
    pub fn new(rows: &'a RecordBatch) -> Self {
        static OPTIONS: std::sync::LazyLock<FormatOptions<'static>> = std::sync::LazyLock::new(FormatOptions::default);
        let formatters = rows.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &OPTIONS).ok()).collect();
        let names =
            rows.schema().fields().iter().map(|f| serde_json::Value::from(f.name().as_str()).to_string()).collect();
        Self { rows, formatters, names }
    }

    /// Row `row` as an object of `columns` (indexes into the batch), in
    /// their order, after the members already written in `prefix` (such as
    /// `"diff":1`; empty for none).
    pub fn object(&self, row: usize, columns: &[usize], prefix: &str) -> String {
        let mut out = String::with_capacity(16 * columns.len() + prefix.len() + 2);
        out.push('{');
        out.push_str(prefix);
        for (n, &j) in columns.iter().enumerate() {
            if n > 0 || !prefix.is_empty() {
                out.push(',');
            }
            out.push_str(&self.names[j]);
            out.push(':');
            out.push_str(&self.value(row, j));
        }
        out.push('}');
        out
    }

    fn value(&self, row: usize, column: usize) -> String {
        let array = self.rows.column(column);
        match &self.formatters[column] {
            _ if array.is_null(row) => "null".to_string(),
            Some(f) => json_value(array.data_type(), f.value(row).to_string()),
            None => "null".to_string(),
        }
    }
}

/// A value's text as JSON: numbers and booleans as themselves, the rest as
/// strings.
fn json_value(data_type: &DataType, text: String) -> String {
    let plain = data_type.is_numeric() || *data_type == DataType::Boolean;
    match plain && serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| v.is_number() || v.is_boolean()) {
        true => text,
        false => serde_json::Value::String(text).to_string(),
    }
}
