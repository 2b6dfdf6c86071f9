//! Text to Arrow: COPY's `text` and `csv` formats (and Kafka messages in
//! the same formats), and COPY's `binary` format, whose values are turned
//! into the same text (`binary`).
//!
//! Fields are split into per-column UTF-8 builders without allocating per
//! value, then each column is cast to its type in one vectorized Arrow cast.
//! A cast failure is traced back to the first bad value so the error names
//! the line, the column and the value.

mod binary;
mod csv;
pub mod json;
mod text;

use std::borrow::Cow;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;

use super::IngestError;
use crate::catalog::types::pg_type_name;

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 65_536;

/// The longest single record (one line, or one CSV record with its quoted
/// newlines) a decoder accepts by default: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Which COPY format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum FormatKind {
    /// PostgreSQL's text format: tab-separated, `\N` for NULL, backslash escapes.
    #[default]
    Text,
    /// CSV: comma-separated, quoted fields, unquoted empty for NULL.
    Csv,
    /// PostgreSQL's binary format: each value in its type's binary form.
    Binary,
}

/// A COPY format with its options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyFormat {
    /// text or csv.
    pub kind: FormatKind,
    /// Field separator; `None` means the format's default.
    pub delimiter: Option<u8>,
    /// The NULL marker; `None` means the format's default.
    pub null: Option<String>,
    /// Skip the first line.
    pub header: bool,
    /// CSV quote character.
    pub quote: u8,
    /// CSV escape character; `None` means the quote character.
    pub escape: Option<u8>,
}

impl Default for CopyFormat {
    fn default() -> Self {
        Self { kind: FormatKind::Text, delimiter: None, null: None, header: false, quote: b'"', escape: None }
    }
}

impl CopyFormat {
    /// Resets the options that depend on the format kind.
    pub fn apply_kind_defaults(&mut self) {
        self.quote = b'"';
    }

    fn delimiter_byte(&self) -> u8 {
        self.delimiter.unwrap_or(match self.kind {
            FormatKind::Text | FormatKind::Binary => b'\t',
            FormatKind::Csv => b',',
        })
    }

    fn null_marker(&self) -> &str {
        match (&self.null, self.kind) {
            (Some(n), _) => n,
            (None, FormatKind::Text | FormatKind::Binary) => "\\N",
            (None, FormatKind::Csv) => "",
        }
    }
}

/// Decodes COPY data for one stream into batches of its full schema.
#[derive(Debug)]
pub struct RowDecoder {
    format: CopyFormat,
    schema: SchemaRef,
    /// For each input column, its index in `schema`.
    positions: Vec<usize>,
    builders: Vec<StringBuilder>,
    rows: usize,
    /// Line number of the first row in `builders` (1-based), for errors.
    first_line: u64,
    line: u64,
    pending: Vec<u8>,
    skip_header: bool,
    finished: bool,
    scratch: Vec<u8>,
    /// Where the search for the current record's end resumes in `pending`,
    /// and whether that point is inside a CSV quoted field: each byte is
    /// scanned once, however many chunks a record spans.
    scan: usize,
    in_quotes: bool,
    /// Longest record accepted, in bytes.
    max_record_bytes: usize,
    /// Whether a line `\.` ends the data (COPY); in a Kafka message it is data.
    end_marker: bool,
}

impl RowDecoder {
    /// A decoder for `columns` (names in `schema`) in `format`.
    pub fn new(format: CopyFormat, schema: SchemaRef, columns: &[String]) -> Result<Self, IngestError> {
        let positions = columns
            .iter()
            .map(|c| schema.index_of(c).map_err(|_| IngestError::BadCopyData(format!("column \"{c}\" does not exist"))))
            .collect::<Result<Vec<_>, _>>()?;
        let builders = positions.iter().map(|_| StringBuilder::new()).collect();
        // The binary format's header is skipped as it arrives.
        let skip_header = format.header || format.kind == FormatKind::Binary;
        Ok(Self {
            format,
            schema,
            positions,
            builders,
            rows: 0,
            first_line: 1,
            line: 0,
            pending: Vec::new(),
            skip_header,
            finished: false,
            scratch: Vec::new(),
            scan: 0,
            in_quotes: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            end_marker: true,
        })
    }

    /// Refuses a record longer than `bytes` (with 54000) instead of
    /// buffering it.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Reads a line `\.` as data, not as the end of the data: for Kafka
    /// messages, where one message must never end its batch.
    pub fn without_end_marker(mut self) -> Self {
        self.end_marker = false;
        self
    }

    /// Consumes a chunk of COPY data; returns the batches that filled up.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<RecordBatch>, IngestError> {
        if self.format.kind == FormatKind::Binary {
            return self.feed_binary(data);
        }
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        let mut start = 0;
        while !self.finished {
            let Some(end) = self.record_end(start) else {
                break;
            };
            let mut line_end = end;
            if line_end > start && self.pending[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let line = std::mem::take(&mut self.pending);
            let result = self.record(&line[start..line_end]);
            self.pending = line;
            result?;
            start = end + 1;
            if self.rows >= BATCH_ROWS {
                out.push(self.flush()?);
            }
        }
        let partial = self.pending.len() - start;
        if !self.finished && partial > self.max_record_bytes {
            return Err(IngestError::TooLarge(format!(
                "a record at line {} is over {} bytes without its end; check for a missing newline or an \
                 unterminated CSV quote, or raise --max-record-bytes",
                self.line + 1,
                self.max_record_bytes
            )));
        }
        self.pending.drain(..start);
        self.scan = self.scan.saturating_sub(start);
        Ok(out)
    }

    /// Ends the data: decodes a last line without a newline and returns the
    /// remaining rows.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, IngestError> {
        if self.format.kind == FormatKind::Binary {
            self.finish_binary()?;
        } else if !self.finished && !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            if self.kind_is_csv() && csv::unterminated_quote(&line, self.format.quote, self.escape()) {
                return Err(IngestError::BadCopyData(format!(
                    "unterminated CSV quoted field at line {}",
                    self.line + 1
                )));
            }
            self.record(&line)?;
        }
        if self.rows == 0 {
            return Ok(None);
        }
        self.flush().map(Some)
    }

    fn kind_is_csv(&self) -> bool {
        self.format.kind == FormatKind::Csv
    }

    fn escape(&self) -> u8 {
        self.format.escape.unwrap_or(self.format.quote)
    }

    /// Where the record starting at `start` ends (the index of its
    /// newline), resuming the scan where the last call stopped.
    fn record_end(&mut self, start: usize) -> Option<usize> {
        if self.scan < start {
            (self.scan, self.in_quotes) = (start, false);
        }
        let found = match self.format.kind {
            FormatKind::Text | FormatKind::Binary => match self.pending[self.scan..].iter().position(|&b| b == b'\n') {
                Some(o) => Ok(self.scan + o),
                None => Err(self.pending.len()),
            },
            FormatKind::Csv => {
                let (quote, escape) = (self.format.quote, self.escape());
                csv::scan(&self.pending, self.scan, quote, escape, &mut self.in_quotes)
            }
        };
        match found {
            Ok(end) => {
                (self.scan, self.in_quotes) = (end + 1, false);
                Some(end)
            }
            Err(resume) => {
                self.scan = resume;
                None
            }
        }
    }

    fn record(&mut self, line: &[u8]) -> Result<(), IngestError> {
        self.line += 1;
        if self.skip_header {
            self.skip_header = false;
            self.first_line = self.line + 1;
            return Ok(());
        }
        if self.end_marker && line == b"\\." {
            self.finished = true;
            return Ok(());
        }
        let fields = match self.format.kind {
            FormatKind::Text | FormatKind::Binary => text::split(
                line,
                self.format.delimiter_byte(),
                self.format.null_marker(),
                &mut self.builders,
                &mut self.scratch,
            ),
            FormatKind::Csv => csv::split(
                line,
                self.format.delimiter_byte(),
                self.format.quote,
                self.escape(),
                self.format.null_marker(),
                &mut self.builders,
                &mut self.scratch,
            ),
        };
        let fields = fields.map_err(|m| IngestError::BadCopyData(format!("{m} at line {}", self.line)))?;
        if fields != self.builders.len() {
            return Err(self.field_count_error(fields));
        }
        self.rows += 1;
        Ok(())
    }

    fn field_count_error(&self, fields: usize) -> IngestError {
        let n = self.builders.len();
        if fields < n {
            let missing = self.schema.field(self.positions[fields]).name();
            IngestError::BadCopyData(format!("missing data for column \"{missing}\" at line {}", self.line))
        } else {
            IngestError::BadCopyData(format!(
                "extra data after last expected column at line {} (expected {n} columns, found {fields})",
                self.line
            ))
        }
    }

    /// Casts the buffered columns to the stream's types.
    fn flush(&mut self) -> Result<RecordBatch, IngestError> {
        let rows = self.rows;
        let mut columns: Vec<ArrayRef> =
            self.schema.fields().iter().map(|f| new_null_array(f.data_type(), rows)).collect();
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let strings = builder.finish();
            let position = self.positions[i];
            columns[position] = cast_column(&strings, &self.schema, position, self.first_line)?;
        }
        self.rows = 0;
        self.first_line = self.line + 1;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| IngestError::BadCopyData(e.to_string()))
    }
}

/// Casts a column of text to the type of `schema`'s field `position`; on
/// failure, names the first value that does not parse. `first_line` is the
/// line of row 0, for the message.
pub fn cast_column(
    strings: &StringArray,
    schema: &SchemaRef,
    position: usize,
    first_line: u64,
) -> Result<ArrayRef, IngestError> {
    let field = schema.field(position);
    if let DataType::List(_) = field.data_type() {
        return array_column(strings, field, first_line);
    }
    let strings = &*postgres_intervals(strings, field);
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    match cast_with_options(strings, field.data_type(), &options) {
        Ok(array) => Ok(array),
        Err(e) => {
            for row in 0..strings.len() {
                if strings.is_null(row) {
                    continue;
                }
                let one = strings.slice(row, 1);
                if cast_with_options(&one, field.data_type(), &options).is_err() {
                    return Err(IngestError::InvalidText(format!(
                        "invalid input syntax for type {}: \"{}\" (column \"{}\", line {})",
                        pg_type_name(field),
                        strings.value(row),
                        field.name(),
                        first_line + row as u64
                    )));
                }
            }
            Err(IngestError::InvalidText(e.to_string()))
        }
    }
}

/// A column of PostgreSQL array text (`{1,2,NULL}`) as `field`'s list type.
fn array_column(strings: &StringArray, field: &Field, first_line: u64) -> Result<ArrayRef, IngestError> {
    let bad = |row: usize, why: String| {
        IngestError::InvalidText(format!("{why} (column \"{}\", line {})", field.name(), first_line + row as u64))
    };
    let lists = crate::catalog::pg_array::parse_column(strings).map_err(|e| {
        let row = (0..strings.len())
            .find(|&r| strings.is_valid(r) && crate::catalog::pg_array::parse(strings.value(r)).is_err())
            .unwrap_or(0);
        bad(row, e.to_string())
    })?;
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    cast_with_options(&lists, field.data_type(), &options).map_err(|e| {
        let row = (0..lists.len())
            .find(|&r| lists.is_valid(r) && cast_with_options(&lists.slice(r, 1), field.data_type(), &options).is_err())
            .unwrap_or(0);
        bad(row, format!("invalid input syntax for type {}: \"{}\" ({e})", pg_type_name(field), strings.value(row)))
    })
}

/// Casts a column of text to `field`'s type, turning values that do not
/// parse into NULLs; returns the cast column and the rows that failed.
pub fn cast_lenient(strings: &StringArray, field: &Field) -> (ArrayRef, Vec<usize>) {
    if let DataType::List(_) = field.data_type() {
        return arrays_lenient(strings, field);
    }
    let strings = &*postgres_intervals(strings, field);
    let too_long: Vec<usize> = match crate::catalog::types::char_limit(field) {
        Some(limit) => (0..strings.len())
            .filter(|&r| strings.is_valid(r) && crate::catalog::types::longer_than(strings.value(r), limit))
            .collect(),
        None => Vec::new(),
    };
    if !too_long.is_empty() {
        return (std::sync::Arc::new(strings.clone()), too_long);
    }
    if is_json_field(field) {
        let bad = (0..strings.len())
            .filter(|&r| {
                strings.is_valid(r) && serde_json::from_str::<serde::de::IgnoredAny>(strings.value(r)).is_err()
            })
            .collect();
        return (std::sync::Arc::new(strings.clone()), bad);
    }
    let options = CastOptions { safe: true, format_options: FormatOptions::default() };
    match cast_with_options(strings, field.data_type(), &options) {
        Ok(array) => {
            let bad = if array.null_count() == strings.null_count() {
                Vec::new()
            } else {
                (0..strings.len()).filter(|&r| strings.is_valid(r) && array.is_null(r)).collect()
            };
            (array, bad)
        }
        Err(_) => {
            let bad = (0..strings.len()).filter(|&r| strings.is_valid(r)).collect();
            (new_null_array(field.data_type(), strings.len()), bad)
        }
    }
}

/// [`cast_lenient`] for an array column: each value that is not array text
/// of the element type is NULL, and its row is returned.
fn arrays_lenient(strings: &StringArray, field: &Field) -> (ArrayRef, Vec<usize>) {
    let converted: StringArray =
        strings.iter().map(|v| v.map(|v| json_array_text(v).unwrap_or_else(|| v.into()))).collect();
    let strings = &converted;
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    let one = |r: usize| -> Option<ArrayRef> {
        let lists = crate::catalog::pg_array::parse_column(&strings.slice(r, 1)).ok()?;
        cast_with_options(&lists, field.data_type(), &options).ok()
    };
    let bad: Vec<usize> = (0..strings.len()).filter(|&r| strings.is_valid(r) && one(r).is_none()).collect();
    let good: StringArray =
        strings.iter().enumerate().map(|(r, v)| v.filter(|_| bad.binary_search(&r).is_err())).collect();
    let array = crate::catalog::pg_array::parse_column(&good)
        .ok()
        .and_then(|lists| cast_with_options(&lists, field.data_type(), &options).ok())
        .unwrap_or_else(|| new_null_array(field.data_type(), strings.len()));
    (array, bad)
}

/// A JSON array (`["a", null, 2]`, as a Kafka message carries an array
/// column) as PostgreSQL's array text; `None` for any other text.
fn json_array_text(text: &str) -> Option<String> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    let values: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    let texts: Vec<Option<String>> = values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            other => Some(other.to_string()),
        })
        .collect();
    Some(crate::catalog::pg_array::format(texts.iter().map(|t| t.as_deref())))
}

/// For an interval or timestamp column, the values in the form Arrow parses
/// ([`crate::catalog::types::interval_text`], [`crate::catalog::types::timestamp_text`]); any
/// other column as it is.
fn postgres_intervals<'a>(strings: &'a StringArray, field: &Field) -> Cow<'a, StringArray> {
    match field.data_type() {
        DataType::Interval(_) => {
            Cow::Owned(strings.iter().map(|v| v.map(crate::catalog::types::interval_text)).collect())
        }
        DataType::Timestamp(..) => {
            let timestamp_text = crate::catalog::types::timestamp_text;
            if strings.iter().flatten().all(|v| matches!(timestamp_text(v), Cow::Borrowed(_))) {
                return Cow::Borrowed(strings);
            }
            Cow::Owned(strings.iter().map(|v| v.map(|v| timestamp_text(v).into_owned())).collect())
        }
        _ => Cow::Borrowed(strings),
    }
}

/// Whether a stream column is `json` or `jsonb`.
pub fn is_json_field(field: &Field) -> bool {
    field.metadata().contains_key(crate::catalog::types::PG_TYPE_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
        ]))
    }

    fn cols() -> Vec<String> {
        vec!["k".into(), "s".into(), "v".into()]
    }

    /// A record that spans many chunks is scanned once: each chunk resumes
    /// where the last stopped, inside a CSV quote too, and a record past the
    /// limit fails with 54000 instead of being buffered.
    #[test]
    fn long_records_are_scanned_once_and_bounded() {
        for (kind, head) in [(FormatKind::Text, &b"1\t"[..]), (FormatKind::Csv, &b"1,\"a\n"[..])] {
            let format = CopyFormat { kind, ..CopyFormat::default() };
            let mut d = RowDecoder::new(format, schema(), &cols()).unwrap().with_max_record_bytes(1000);
            assert!(d.feed(head).unwrap().is_empty());
            for _ in 0..10 {
                assert!(d.feed(b"xxxxxxxxxx").unwrap().is_empty());
                assert_eq!(d.scan, d.pending.len(), "{kind:?}: the next chunk starts where this one ended");
            }
            assert_eq!(d.in_quotes, kind == FormatKind::Csv);
            let tail: &[u8] = if kind == FormatKind::Csv { b"\",2\n" } else { b"\t2\n" };
            d.feed(tail).unwrap();
            let rows = d.finish().unwrap().unwrap();
            assert_eq!(rows.num_rows(), 1);
            let text = rows.column(1).as_any().downcast_ref::<StringArray>().unwrap().value(0).to_string();
            let expected = if kind == FormatKind::Csv { 102 } else { 100 }; // CSV's s starts "a\n"
            assert_eq!(text.len(), expected, "{kind:?}: {text}");

            let mut d = RowDecoder::new(CopyFormat { kind, ..CopyFormat::default() }, schema(), &cols())
                .unwrap()
                .with_max_record_bytes(1000);
            d.feed(if kind == FormatKind::Csv { b"1,2,3\n" } else { b"1\t2\t3\n" }).unwrap();
            let err = d.feed(&[b'x'; 1001]).unwrap_err();
            assert!(matches!(err, IngestError::TooLarge(_)), "{err}");
            assert!(err.to_string().contains("line 2"), "{err}");
        }
    }

    #[test]
    fn text_format_with_nulls_and_escapes() {
        let mut d = RowDecoder::new(CopyFormat::default(), schema(), &cols()).unwrap();
        let mut batches = d.feed(b"1\ta\\tb\t1.5\n2\t\\N\t\\N\n3\tx\t3").unwrap();
        batches.extend(d.finish().unwrap());
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        let k = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(k.values(), &[1, 2, 3]);
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "a\tb");
        assert!(s.is_null(1));
        let v = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(v.value(0), 1.5);
    }

    #[test]
    fn postgres_interval_text() {
        assert_eq!(crate::catalog::types::interval_text("1 day 02:03:04.5"), "1 day 02 hours 03 minutes 04.5 seconds");
        assert_eq!(crate::catalog::types::interval_text("-01:30"), "-01 hours -30 minutes");
        assert_eq!(crate::catalog::types::interval_text("3 mons"), "3 mons");
    }

    #[test]
    fn missing_column_is_an_error() {
        let mut d = RowDecoder::new(CopyFormat::default(), schema(), &cols()).unwrap();
        d.feed(b"1\ta\t2\n").unwrap();
        let err = d.feed(b"5\tb\n").unwrap_err();
        assert!(err.to_string().contains("missing data for column \"v\""), "{err}");
    }

    #[test]
    fn bad_integer_names_line_and_value() {
        let mut d = RowDecoder::new(CopyFormat::default(), schema(), &cols()).unwrap();
        d.feed(b"1\ta\t2\nabc\tb\t3\n").unwrap();
        let err = d.finish().unwrap_err();
        assert!(matches!(err, IngestError::InvalidText(_)));
        assert!(err.to_string().contains("\"abc\"") && err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn csv_quotes_nulls_and_header() {
        let format = CopyFormat { kind: FormatKind::Csv, header: true, ..CopyFormat::default() };
        let mut d = RowDecoder::new(format, schema(), &cols()).unwrap();
        let mut batches = d.feed(b"k,s,v\n1,\"a,\"\"b\"\"\nc\",2\n2,,\n3,\"\",1e3\n").unwrap();
        batches.extend(d.finish().unwrap());
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "a,\"b\"\nc");
        assert!(s.is_null(1));
        assert!(!s.is_null(2));
        assert_eq!(s.value(2), "");
    }

    #[test]
    fn chunks_split_anywhere() {
        let data = b"1\ta\t1\n2\tb\t2\n3\tc\t3\n";
        for cut in 0..data.len() {
            let mut d = RowDecoder::new(CopyFormat::default(), schema(), &cols()).unwrap();
            let mut batches = d.feed(&data[..cut]).unwrap();
            batches.extend(d.feed(&data[cut..]).unwrap());
            batches.extend(d.finish().unwrap());
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 3, "cut at {cut}");
        }
    }
}
