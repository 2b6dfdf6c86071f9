//! Messages to a table, ksqlDB style: a message's key is a row's primary
//! key, its value the row's other columns, and a message whose value is
//! null (a tombstone) deletes its key.
//!
//! A micro-batch decodes into one batch of the table's rows in message
//! order, with, for each row, the message it came from and whether it is a
//! deletion (then only its key columns are filled). A message whose key or
//! value does not decode, has no key, or leaves a `NOT NULL` column empty is
//! a [`BadMessage`]; the rest of the batch is kept. Which message wins for a
//! key (the last) is the table's business ([`crate::table::rows`]).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::batch::{BadMessage, Decoded, MessageBatch, decode_rows};
use super::options::{KeyFormat, MessageFormat};
use crate::catalog::types::pg_type_name;
use crate::ingest::IngestError;
use crate::ingest::decode::json::JsonDecoder;
use crate::ingest::decode::{CopyFormat, cast_lenient};

/// For each decoded row: the message it came from, and whether it deletes.
#[derive(Debug, Default, Clone)]
pub struct KeyedRows {
    /// The row deletes its key (its message was a tombstone).
    pub deleted: Vec<bool>,
    /// The index of its message in the micro-batch.
    pub message: Vec<usize>,
}

/// Decodes keyed messages into rows of one table.
#[derive(Debug)]
pub struct KeyedDecoder {
    schema: SchemaRef,
    key: Vec<usize>,
    not_null: Vec<bool>,
    key_format: KeyFormat,
    key_json: JsonDecoder,
    value: ValueDecoder,
}

#[derive(Debug)]
enum ValueDecoder {
    /// A JSON object with the columns (the key's columns in it are ignored).
    Json(JsonDecoder),
    /// One COPY row of the columns outside the key.
    Copy(CopyFormat, SchemaRef, Vec<String>),
}

/// Per message of a micro-batch: where its decoded part is, or why not.
type Slots = Vec<Result<u32, String>>;

/// Per message: where its value's row is, or why not (`None`: it has no
/// value to decode, being a tombstone or without a good key).
type ValueSlots = Vec<Option<Result<u32, String>>>;

/// `fields` and a last column the JSON decoder leaves empty (it stands
/// where a stream's `arrival_timestamp` is).
fn with_end(fields: impl Iterator<Item = Field>) -> SchemaRef {
    let mut fields: Vec<Field> = fields.map(|f| f.with_nullable(true)).collect();
    fields.push(Field::new("__eddy_end", DataType::Null, true));
    Arc::new(Schema::new(fields))
}

impl KeyedDecoder {
    /// A decoder for a table of `schema` keyed by the columns `key`, whose
    /// columns flagged in `not_null` may not be NULL.
    pub fn new(
        schema: SchemaRef,
        key: Vec<usize>,
        not_null: Vec<bool>,
        key_format: KeyFormat,
        value: &MessageFormat,
    ) -> Self {
        let key_json = JsonDecoder::new(with_end(key.iter().map(|&i| schema.field(i).clone())));
        let value = match value {
            MessageFormat::Json => {
                // The key's columns come from the key: renamed so that no
                // field of the value fills them.
                let fields = schema.fields().iter().enumerate().map(|(i, f)| match key.contains(&i) {
                    true => Field::new(format!("\0key {i}"), DataType::Utf8, true),
                    false => f.as_ref().clone(),
                });
                ValueDecoder::Json(JsonDecoder::new(with_end(fields)))
            }
            MessageFormat::Copy(format) => {
                let columns = (0..schema.fields().len())
                    .filter(|i| !key.contains(i))
                    .map(|i| schema.field(i).name().clone())
                    .collect();
                ValueDecoder::Copy(format.clone(), schema.clone(), columns)
            }
        };
        Self { schema, key, not_null, key_format, key_json, value }
    }

    /// Decodes a whole micro-batch.
    pub fn decode(&self, batch: &MessageBatch) -> Result<Decoded, IngestError> {
        let (keys, key_slots) = self.keys(batch)?;
        let (values, value_slots) = self.values(batch, &key_slots)?;
        let mut bad = Vec::new();
        let (mut key_rows, mut value_rows, mut keyed) = (Vec::new(), Vec::new(), KeyedRows::default());
        for (i, (k, v)) in key_slots.into_iter().zip(value_slots).enumerate() {
            match (k, v) {
                (Err(e), _) | (Ok(_), Some(Err(e))) => bad.push(BadMessage::new(batch, i, e)),
                (Ok(k), v) => {
                    key_rows.push(k);
                    value_rows.push(v.and_then(Result::ok));
                    keyed.deleted.push(batch.is_tombstone(i));
                    keyed.message.push(i);
                }
            }
        }
        let rows = self.assemble(&keys, &key_rows, values.as_ref(), &value_rows)?;
        let (rows, keyed) = self.check_not_null(batch, rows, keyed, &mut bad)?;
        bad.sort_by_key(|b| (b.partition, b.offset));
        Ok(Decoded {
            rows: Some(rows).filter(|r| r.num_rows() > 0),
            bad,
            next_offsets: batch.next_offsets(),
            messages: batch.len() as u64,
            partition_messages: batch.partition_counts(),
            bytes: batch.bytes() as u64,
            source: MessageBatch::default(),
            keyed: Some(keyed),
        })
    }

    /// The key columns of every message that has a good key (one array per
    /// key column), and where each message's key is in them.
    fn keys(&self, batch: &MessageBatch) -> Result<(Vec<ArrayRef>, Slots), IngestError> {
        if self.key_format == KeyFormat::Json {
            return self.json_keys(batch);
        }
        debug_assert_eq!(self.key.len(), 1, "checked by CREATE TABLE");
        let field = self.schema.field(self.key[0]);
        let raw: Vec<Option<&[u8]>> = (0..batch.len()).map(|i| batch.key(i)).collect();
        let (array, mut slots) = match (self.key_format, binary_width(field.data_type())) {
            (KeyFormat::Kafka, Some(width)) => binary_keys(&raw, field, width),
            _ => text_keys(&raw, field),
        };
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_ok() && array.is_null(i) {
                *slot = Err(null_key(field.name()));
            }
        }
        Ok((vec![array], slots))
    }

    fn json_keys(&self, batch: &MessageBatch) -> Result<(Vec<ArrayRef>, Slots), IngestError> {
        let single = (self.key.len() == 1).then(|| self.schema.field(self.key[0]).name());
        let wrapped: Vec<Vec<u8>> = (0..batch.len())
            .map(|i| match (batch.key(i), single) {
                (Some(k), Some(name)) => {
                    let name = serde_json::to_string(name).unwrap_or_default();
                    [b"{", name.as_bytes(), b":", k, b"}"].concat()
                }
                (Some(k), None) => k.to_vec(),
                (None, _) => Vec::new(),
            })
            .collect();
        let (rows, errors) = self.key_json.decode(wrapped.iter().map(Vec::as_slice))?;
        let mut slots = kept_slots(batch.len(), errors.into_iter().map(|e| (e.index, e.error)));
        for (i, slot) in slots.iter_mut().enumerate() {
            if batch.key(i).is_none() {
                *slot = Err(no_key());
            } else if let Ok(row) = *slot
                && let Some(c) = (0..self.key.len()).find(|&c| rows.column(c).is_null(row as usize))
            {
                *slot = Err(null_key(self.schema.field(self.key[c]).name()));
            }
        }
        let columns = rows.columns()[..self.key.len()].to_vec();
        Ok((columns, slots))
    }

    /// The rows of every message with a good key and a value, and where
    /// each message's row is (`None`: a tombstone, or no good key).
    fn values(&self, batch: &MessageBatch, keys: &Slots) -> Result<(Option<RecordBatch>, ValueSlots), IngestError> {
        let wanted: Vec<usize> = (0..batch.len()).filter(|&i| keys[i].is_ok() && !batch.is_tombstone(i)).collect();
        let mut out: ValueSlots = vec![None; batch.len()];
        let (rows, slots) = match &self.value {
            ValueDecoder::Json(decoder) => {
                let (rows, errors) = decoder.decode(wanted.iter().map(|&i| batch.payload(i)))?;
                (rows, kept_slots(wanted.len(), errors.into_iter().map(|e| (e.index, e.error))))
            }
            ValueDecoder::Copy(format, schema, columns) => copy_values(format, schema, columns, batch, &wanted)?,
        };
        for (slot, i) in slots.into_iter().zip(&wanted) {
            out[*i] = Some(slot);
        }
        Ok((Some(rows), out))
    }

    /// The table's rows: key columns from the keys, the others from the
    /// values (NULL for a tombstone).
    fn assemble(
        &self,
        keys: &[ArrayRef],
        key_rows: &[u32],
        values: Option<&RecordBatch>,
        value_rows: &[Option<u32>],
    ) -> Result<RecordBatch, IngestError> {
        let key_index = UInt32Array::from(key_rows.to_vec());
        let value_index = UInt32Array::from(value_rows.to_vec());
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let column = match (self.key.iter().position(|&k| k == c), values) {
                (Some(pos), _) => take(keys[pos].as_ref(), &key_index, None),
                (None, Some(v)) if value_index.null_count() < value_index.len() => {
                    take(v.column(c).as_ref(), &value_index, None)
                }
                (None, _) => Ok(new_null_array(field.data_type(), key_rows.len())),
            };
            columns.push(column.map_err(decoding)?);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(decoding)
    }

    /// Leaves out rows with a NULL in a `NOT NULL` column (a deletion
    /// needs only its key, which is never NULL here).
    fn check_not_null(
        &self,
        batch: &MessageBatch,
        rows: RecordBatch,
        keyed: KeyedRows,
        bad: &mut Vec<BadMessage>,
    ) -> Result<(RecordBatch, KeyedRows), IngestError> {
        let mut keep = vec![true; rows.num_rows()];
        for (c, field) in self.schema.fields().iter().enumerate() {
            if !self.not_null.get(c).copied().unwrap_or(false) || rows.column(c).null_count() == 0 {
                continue;
            }
            for (r, kept) in keep.iter_mut().enumerate() {
                if *kept && !keyed.deleted[r] && rows.column(c).is_null(r) {
                    *kept = false;
                    let error = format!("null value in column \"{}\" violates not-null constraint", field.name());
                    bad.push(BadMessage::new(batch, keyed.message[r], error));
                }
            }
        }
        if keep.iter().all(|&k| k) {
            return Ok((rows, keyed));
        }
        let rows = filter_record_batch(&rows, &BooleanArray::from(keep.clone())).map_err(decoding)?;
        let kept = |r: &usize| keep[*r];
        let deleted = (0..keep.len()).filter(kept).map(|r| keyed.deleted[r]).collect();
        let message = (0..keep.len()).filter(kept).map(|r| keyed.message[r]).collect();
        Ok((rows, KeyedRows { deleted, message }))
    }
}

/// Decodes one COPY row per message; a message that is not exactly one
/// good row is bad.
fn copy_values(
    format: &CopyFormat,
    schema: &SchemaRef,
    columns: &[String],
    batch: &MessageBatch,
    wanted: &[usize],
) -> Result<(RecordBatch, Slots), IngestError> {
    if let Ok(Some(rows)) = decode_rows(format, schema, columns, wanted.iter().map(|&i| batch.payload(i)))
        && rows.num_rows() == wanted.len()
    {
        return Ok((rows, (0..wanted.len() as u32).map(Ok).collect()));
    }
    let mut good = Vec::new();
    let mut slots = Vec::with_capacity(wanted.len());
    for &i in wanted {
        let slot = match decode_rows(format, schema, columns, std::iter::once(batch.payload(i))) {
            Ok(Some(rows)) if rows.num_rows() == 1 => {
                good.push(rows);
                Ok(good.len() as u32 - 1)
            }
            Ok(rows) => Err(format!(
                "a message to a table holds one row of its columns outside the key; this one holds {}",
                rows.map_or(0, |r| r.num_rows())
            )),
            Err(e) => Err(e.to_string()),
        };
        slots.push(slot);
    }
    let rows = concat_batches(schema, &good).map_err(decoding)?;
    Ok((rows, slots))
}

/// Slots for `n` inputs of which those in `errors` were left out and the
/// others kept, in order.
fn kept_slots(n: usize, errors: impl Iterator<Item = (usize, String)>) -> Slots {
    let mut slots: Slots = vec![Ok(0); n];
    for (i, e) in errors {
        slots[i] = Err(e);
    }
    for (next, slot) in slots.iter_mut().filter(|s| s.is_ok()).enumerate() {
        *slot = Ok(next as u32);
    }
    slots
}

/// The width of Kafka's serializer for a numeric type.
fn binary_width(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::Int16 => Some(2),
        DataType::Int32 | DataType::Float32 => Some(4),
        DataType::Int64 | DataType::Float64 => Some(8),
        _ => None,
    }
}

/// Keys as Kafka's serializers write numbers: big-endian, of the type's width.
fn binary_keys(raw: &[Option<&[u8]>], field: &Field, width: usize) -> (ArrayRef, Slots) {
    let mut slots = Vec::with_capacity(raw.len());
    let mut bytes: Vec<Option<[u8; 8]>> = Vec::with_capacity(raw.len());
    for key in raw {
        match key {
            None => {
                slots.push(Err(no_key()));
                bytes.push(None);
            }
            Some(k) if k.len() == width => {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(k);
                slots.push(Ok(0));
                bytes.push(Some(b));
            }
            Some(k) => {
                slots.push(Err(format!(
                    "the key is {} bytes, and a {} key in key_format 'kafka' is {width} (big-endian, as Kafka's serializers write it); use key_format = 'delimited' for keys written as text",
                    k.len(),
                    pg_type_name(field)
                )));
                bytes.push(None);
            }
        }
    }
    let array: ArrayRef = match field.data_type() {
        DataType::Int16 => {
            Arc::new(bytes.iter().map(|b| b.map(|b| i16::from_be_bytes([b[0], b[1]]))).collect::<Int16Array>())
        }
        DataType::Int32 => Arc::new(
            bytes.iter().map(|b| b.map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))).collect::<Int32Array>(),
        ),
        DataType::Float32 => Arc::new(
            bytes.iter().map(|b| b.map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))).collect::<Float32Array>(),
        ),
        DataType::Float64 => Arc::new(bytes.iter().map(|b| b.map(f64::from_be_bytes)).collect::<Float64Array>()),
        _ => Arc::new(bytes.iter().map(|b| b.map(i64::from_be_bytes)).collect::<Int64Array>()),
    };
    (array, number_slots(slots))
}

/// Keys as text, cast to the column's type.
fn text_keys(raw: &[Option<&[u8]>], field: &Field) -> (ArrayRef, Slots) {
    let mut slots = Vec::with_capacity(raw.len());
    let texts: StringArray = raw
        .iter()
        .map(|key| match key.map(std::str::from_utf8) {
            None => {
                slots.push(Err(no_key()));
                None
            }
            Some(Ok(text)) => {
                slots.push(Ok(0));
                Some(text)
            }
            Some(Err(_)) => {
                slots.push(Err("the key is not valid UTF-8 text".to_string()));
                None
            }
        })
        .collect();
    let (array, bad) = cast_lenient(&texts, field);
    for row in bad {
        let shown: String = texts.value(row).chars().take(60).collect();
        slots[row] = Err(if crate::catalog::types::too_long(field, texts.value(row)) {
            format!("{} (the message key)", crate::catalog::types::too_long_message(field))
        } else {
            format!("invalid input syntax for type {}: \"{shown}\" (the message key)", pg_type_name(field))
        });
    }
    (array, number_slots(slots))
}

/// A key array holds every message (good or not): each good slot points
/// at its own row.
fn number_slots(slots: Slots) -> Slots {
    slots.into_iter().enumerate().map(|(i, s)| s.map(|_| i as u32)).collect()
}

fn no_key() -> String {
    "the message has no key; a table's messages carry their primary key as the Kafka key".to_string()
}

fn null_key(column: &str) -> String {
    format!("null value in column \"{column}\" of the message key violates not-null constraint")
}

fn decoding(e: impl std::fmt::Display) -> IngestError {
    IngestError::InvalidText(format!("could not build a table's rows from messages: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::FormatKind;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("plan", DataType::Utf8, true),
            Field::new("seats", DataType::Int32, true),
        ]))
    }

    fn decoder(key: KeyFormat, value: MessageFormat) -> KeyedDecoder {
        KeyedDecoder::new(schema(), vec![0], vec![true, true, false], key, &value)
    }

    fn ids(rows: &RecordBatch) -> Vec<i64> {
        rows.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn json_keys_and_values_with_tombstones_and_bad_messages() {
        let mut batch = MessageBatch::default();
        batch.push_keyed(0, 0, Some(b"1"), Some(br#"{"plan": "free", "seats": 1, "id": 99}"#));
        batch.push_keyed(0, 1, Some(b"2"), None);
        batch.push_keyed(0, 2, None, Some(br#"{"plan": "pro"}"#));
        batch.push_keyed(0, 3, Some(br#""x""#), Some(br#"{"plan": "pro"}"#));
        batch.push_keyed(0, 4, Some(b"3"), Some(br#"{"seats": 2}"#));
        batch.push_keyed(0, 5, Some(b"4"), Some(b"not json"));
        batch.push_keyed(0, 6, Some(b"5"), Some(br#"{"plan": "team"}"#));
        let decoded = decoder(KeyFormat::Json, MessageFormat::Json).decode(&batch).unwrap();
        let rows = decoded.rows.unwrap();
        assert_eq!(ids(&rows), vec![1, 2, 5], "the key wins over an id in the value");
        let keyed = decoded.keyed.unwrap();
        assert_eq!(keyed.deleted, vec![false, true, false]);
        assert_eq!(keyed.message, vec![0, 1, 6]);
        assert_eq!(rows.column(1).as_string::<i32>().value(0), "free");
        assert!(rows.column(1).is_null(1), "a tombstone carries only its key");
        let bad: Vec<(i64, &str)> = decoded.bad.iter().map(|b| (b.offset, b.error.as_str())).collect();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(bad[0].1.contains("no key"), "{bad:?}");
        assert!(bad[1].1.contains("invalid input syntax for type bigint"), "{bad:?}");
        assert!(bad[2].1.contains("\"plan\" violates not-null"), "{bad:?}");
        assert!(bad[3].1.contains("json"), "{bad:?}");
    }

    #[test]
    fn kafka_keys_are_big_endian_numbers_and_delimited_keys_are_text() {
        let mut batch = MessageBatch::default();
        batch.push_keyed(1, 7, Some(&7i64.to_be_bytes()), Some(br#"{"plan": "a"}"#));
        batch.push_keyed(1, 8, Some(b"7"), Some(br#"{"plan": "b"}"#));
        let decoded = decoder(KeyFormat::Kafka, MessageFormat::Json).decode(&batch).unwrap();
        assert_eq!(ids(decoded.rows.as_ref().unwrap()), vec![7]);
        assert!(decoded.bad[0].error.contains("key_format = 'delimited'"), "{}", decoded.bad[0].error);
        let decoded = decoder(KeyFormat::Delimited, MessageFormat::Json).decode(&batch).unwrap();
        assert_eq!(ids(decoded.rows.as_ref().unwrap()), vec![7]);
        assert!(decoded.bad[0].error.contains("bigint"), "{}", decoded.bad[0].error);
    }

    #[test]
    fn delimited_values_hold_the_columns_outside_the_key() {
        let mut batch = MessageBatch::default();
        batch.push_keyed(0, 0, Some(b"1"), Some(b"free,3"));
        batch.push_keyed(0, 1, Some(b"2"), Some(b"pro,3\nteam,4"));
        batch.push_keyed(0, 2, Some(b"3"), None);
        batch.push_keyed(0, 3, Some(b"4"), Some(b"team,x"));
        let csv = MessageFormat::Copy(CopyFormat { kind: FormatKind::Csv, ..CopyFormat::default() });
        let decoded = decoder(KeyFormat::Delimited, csv).decode(&batch).unwrap();
        let rows = decoded.rows.unwrap();
        assert_eq!(ids(&rows), vec![1, 3]);
        assert_eq!(decoded.keyed.unwrap().deleted, vec![false, true]);
        assert_eq!(decoded.bad.len(), 2);
        assert!(decoded.bad[0].error.contains("holds 2"), "{}", decoded.bad[0].error);
    }

    #[test]
    fn a_batch_of_tombstones_only() {
        let mut batch = MessageBatch::default();
        batch.push_keyed(0, 0, Some(b"1"), None);
        let decoded = decoder(KeyFormat::Delimited, MessageFormat::Json).decode(&batch).unwrap();
        assert_eq!(decoded.rows.unwrap().num_rows(), 1);
        assert!(decoded.bad.is_empty());
    }
}
