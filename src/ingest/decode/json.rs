//! JSON messages to Arrow, one message per row, as pipeline_kafka decodes
//! them.
//!
//! - A stream with a single `json` column stores each whole message there.
//! - Otherwise each message must be a JSON object, whose top-level fields
//!   fill the columns of the same name. A missing field is NULL (an error for
//!   a `NOT NULL` column), and unknown fields are ignored.
//!
//! Each field is parsed without building a JSON tree: its raw text goes into
//! a per-column text builder, and each column is then cast to its type in
//! one vectorized cast, as COPY does. A message that does not parse, or whose
//! value does not fit its column, becomes a [`RowError`] and is left out;
//! every other message of the batch is kept.

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::compute::filter;
use datafusion::arrow::datatypes::SchemaRef;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

use super::{cast_lenient, is_json_field};
use crate::ingest::IngestError;

/// Why one message (by its index in the batch) was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The message's index among the messages decoded.
    pub index: usize,
    /// What was wrong, in PostgreSQL's words.
    pub error: String,
}

/// Decodes JSON messages into rows of one stream.
#[derive(Debug)]
pub struct JsonDecoder {
    schema: SchemaRef,
    /// Stream columns filled from the message (all but `arrival_timestamp`).
    columns: Vec<String>,
    /// Which of `columns` are json: they keep a field's JSON text as is.
    json: Vec<bool>,
    /// Whole messages go into the single json column.
    whole_message: bool,
}

impl JsonDecoder {
    /// A decoder for a stream whose full schema (ending in
    /// `arrival_timestamp`) is `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        let user = crate::catalog::user_fields(&schema);
        let whole_message = user.len() == 1 && is_json_field(&user[0]);
        let columns = user.iter().map(|f| f.name().clone()).collect();
        let json = user.iter().map(|f| is_json_field(f)).collect();
        Self { schema, columns, json, whole_message }
    }

    /// Decodes `messages`; returns the rows of the good ones and an error for
    /// each bad one.
    pub fn decode<'a>(
        &self,
        messages: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Result<(RecordBatch, Vec<RowError>), IngestError> {
        let n = messages.len();
        let mut builders: Vec<StringBuilder> =
            self.columns.iter().map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
        let mut errors = Vec::new();
        let mut keep = Vec::with_capacity(n);
        let mut slots: Vec<Option<Cow<'a, str>>> = vec![None; self.columns.len()];
        for (index, message) in messages.enumerate() {
            let parsed = if self.whole_message { whole_message(message) } else { self.fields(message, &mut slots) };
            match parsed {
                Ok(()) if self.whole_message => {
                    builders[0].append_value(String::from_utf8_lossy(message));
                    keep.push(true);
                }
                Ok(()) => {
                    for (slot, builder) in slots.iter_mut().zip(&mut builders) {
                        builder.append_option(slot.take());
                    }
                    keep.push(true);
                }
                Err(error) => {
                    slots.iter_mut().for_each(|s| *s = None);
                    for builder in &mut builders {
                        builder.append_null();
                    }
                    errors.push(RowError { index, error });
                    keep.push(false);
                }
            }
        }
        self.finish(builders, keep, errors)
    }

    /// Parses one object's fields into `slots`, by column.
    fn fields<'a>(&self, message: &'a [u8], slots: &mut [Option<Cow<'a, str>>]) -> Result<(), String> {
        let text =
            std::str::from_utf8(message).map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?;
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = ObjectSeed { columns: &self.columns, json: &self.json, slots };
        de.deserialize_map(seed).map_err(|e| format!("invalid input syntax for type json: {e}"))?;
        de.end().map_err(|e| format!("invalid input syntax for type json: {e}"))?;
        for (i, slot) in slots.iter().enumerate() {
            if slot.is_none() && !self.schema.field(i).is_nullable() {
                return Err(format!("missing required field \"{}\"", self.columns[i]));
            }
        }
        Ok(())
    }

    /// Casts the text columns, drops the messages that failed, and appends
    /// a NULL `arrival_timestamp` for the writer to stamp.
    fn finish(
        &self,
        builders: Vec<StringBuilder>,
        mut keep: Vec<bool>,
        mut errors: Vec<RowError>,
    ) -> Result<(RecordBatch, Vec<RowError>), IngestError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, mut builder) in builders.into_iter().enumerate() {
            let strings: StringArray = builder.finish();
            let field = self.schema.field(i);
            let (array, bad) = cast_lenient(&strings, field);
            for row in bad {
                if keep[row] {
                    keep[row] = false;
                    errors.push(RowError { index: row, error: bad_value(field, strings.value(row)) });
                }
            }
            columns.push(array);
        }
        let rows = keep.len();
        let last = self.schema.field(self.schema.fields().len() - 1);
        columns.push(datafusion::arrow::array::new_null_array(last.data_type(), rows));
        let build = |columns| {
            RecordBatch::try_new(self.schema.clone(), columns)
                .map_err(|e| IngestError::InvalidText(format!("could not build rows: {e}")))
        };
        errors.sort_by_key(|e| e.index);
        if errors.is_empty() {
            return Ok((build(columns)?, errors));
        }
        // Left-out rows may hold NULLs in NOT NULL columns: filter first.
        let mask = BooleanArray::from(keep);
        let kept = columns
            .iter()
            .map(|c| filter(c, &mask))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IngestError::InvalidText(format!("could not filter rows: {e}")))?;
        Ok((build(kept)?, errors))
    }
}

fn bad_value(field: &datafusion::arrow::datatypes::Field, value: &str) -> String {
    if crate::catalog::types::too_long(field, value) {
        return format!("{} (field \"{}\")", crate::catalog::types::too_long_message(field), field.name());
    }
    let shown: String = value.chars().take(60).collect();
    format!(
        "invalid input syntax for type {}: \"{shown}\" (field \"{}\")",
        crate::catalog::types::pg_type_name(field),
        field.name()
    )
}

fn whole_message(message: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<IgnoredAny>(message)
        .map(|_| ())
        .map_err(|e| format!("invalid input syntax for type json: {e}"))
}

/// Walks the top-level object, keeping the raw text of the fields that are columns.
struct ObjectSeed<'s, 'a> {
    columns: &'s [String],
    json: &'s [bool],
    slots: &'s mut [Option<Cow<'a, str>>],
}

impl<'de, 's> DeserializeSeed<'de> for ObjectSeed<'s, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 's> Visitor<'de> for ObjectSeed<'s, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object whose fields are the stream's columns")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let Some(i) = self.columns.iter().position(|c| c.as_str() == key.0.as_ref()) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let raw: &'de RawValue = map.next_value()?;
            if self.slots[i].is_some() {
                continue; // a repeated key: the first one counts
            }
            self.slots[i] = field_text(raw, self.json[i]).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

/// The text a field's value gives its column: NULL for `null`, the string
/// itself for a string (except into json columns, which keep the JSON), and
/// the JSON text of numbers, booleans, objects and arrays.
fn field_text(raw: &RawValue, json_column: bool) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if json_column || !text.starts_with('"') {
        return Ok(Some(Cow::Borrowed(text)));
    }
    if !text.contains('\\') {
        return Ok(Some(Cow::Borrowed(&text[1..text.len() - 1])));
    }
    serde_json::from_str::<String>(text).map(|s| Some(Cow::Owned(s)))
}

/// An object key, borrowed from the message when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::types::{field_for_sql_type, timestamptz};
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn typed() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("userid", DataType::Utf8, true),
            Field::new("viewtime", DataType::Int64, false),
            field_for_sql_type("meta", "json").unwrap(),
            Field::new("arrival_timestamp", timestamptz(), true),
        ]))
    }

    fn decode(schema: SchemaRef, messages: &[&str]) -> (RecordBatch, Vec<RowError>) {
        JsonDecoder::new(schema).decode(messages.iter().map(|m| m.as_bytes())).unwrap()
    }

    #[test]
    fn maps_fields_by_name_and_reports_bad_messages() {
        let (batch, errors) = decode(
            typed(),
            &[
                r#"{"viewtime": 5, "userid": "a\"b", "extra": [1], "meta": {"x": 1}}"#,
                r#"{"viewtime": "oops", "userid": "b"}"#,
                r#"{"viewtime": 7"#,
                r#"{"userid": "c"}"#,
                r#"[1, 2]"#,
                r#"{"viewtime": "8", "userid": null}"#,
            ],
        );
        assert_eq!(batch.num_rows(), 2);
        let users = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(users.value(0), "a\"b");
        assert!(users.is_null(1));
        let times = batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(times.values(), &[5, 8]);
        let meta = batch.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(meta.value(0), r#"{"x": 1}"#);
        let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4]);
        assert!(errors[0].error.contains("bigint") && errors[0].error.contains("oops"), "{}", errors[0].error);
        assert!(errors[2].error.contains("missing required field \"viewtime\""), "{}", errors[2].error);
    }

    #[test]
    fn json_arrays_fill_array_columns() {
        let schema = Arc::new(Schema::new(vec![
            field_for_sql_type("tags", "text[]").unwrap(),
            field_for_sql_type("n", "int[]").unwrap(),
            Field::new("arrival_timestamp", timestamptz(), true),
        ]));
        let (batch, errors) = decode(
            schema,
            &[r#"{"tags": ["a b", null, "{x}"], "n": [1, 2]}"#, r#"{"tags": "{p,q}", "n": ["x"]}"#, r#"{"n": []}"#],
        );
        assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
        let text = crate::catalog::pg_array::format_column(batch.column(0)).unwrap();
        assert_eq!(text.iter().collect::<Vec<_>>(), [Some(r#"{"a b",NULL,"{x}"}"#), None]);
        let n = crate::catalog::pg_array::format_column(batch.column(1)).unwrap();
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some("{1,2}"), Some("{}")]);
    }

    #[test]
    fn a_value_too_long_for_its_varchar_is_a_bad_message() {
        let schema = Arc::new(Schema::new(vec![
            field_for_sql_type("code", "varchar(2)").unwrap(),
            Field::new("arrival_timestamp", timestamptz(), true),
        ]));
        let (batch, errors) = decode(schema, &[r#"{"code": "FR"}"#, r#"{"code": "FRA"}"#, r#"{"code": "ÉÉ"}"#]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
        assert_eq!(errors[0].error, "value too long for type character varying(2) (field \"code\")");
    }

    #[test]
    fn whole_messages_into_a_single_json_column() {
        let schema = Arc::new(Schema::new(vec![
            field_for_sql_type("payload", "json").unwrap(),
            Field::new("arrival_timestamp", timestamptz(), true),
        ]));
        assert!(JsonDecoder::new(schema.clone()).whole_message);
        let (batch, errors) = decode(schema, &[r#"{"a": 1}"#, "not json", "[1,2]"]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
        let payload = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(payload.value(1), "[1,2]");
    }
}
