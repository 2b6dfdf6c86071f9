//! A micro-batch of Kafka messages, and its decoding into one Arrow batch of
//! the stream's rows plus an error for each message that did not decode.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;

use super::options::MessageFormat;
use crate::ingest::IngestError;
use crate::ingest::decode::json::JsonDecoder;
use crate::ingest::decode::{CopyFormat, RowDecoder};

/// Where one message sits in its partition and in the batch's buffer.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    start: usize,
    end: usize,
    /// Where its key sits in the buffer, if it has one.
    key: Option<(usize, usize)>,
    /// Its value is null (a tombstone), not merely empty.
    null_value: bool,
}

/// Messages copied out of the consumer, back to back in one buffer.
#[derive(Debug, Default)]
pub struct MessageBatch {
    data: Vec<u8>,
    messages: Vec<MessageRef>,
}

impl MessageBatch {
    /// Appends one message's payload, without a key.
    pub fn push(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        self.push_keyed(partition, offset, None, Some(payload));
    }

    /// Appends one message: its key and its value, either of which may be
    /// null. Streams read a null value as empty; tables as a tombstone.
    pub fn push_keyed(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let key = key.map(|k| {
            let start = self.data.len();
            self.data.extend_from_slice(k);
            (start, self.data.len())
        });
        let start = self.data.len();
        self.data.extend_from_slice(payload.unwrap_or_default());
        let end = self.data.len();
        self.messages.push(MessageRef { partition, offset, start, end, key, null_value: payload.is_none() });
    }

    /// The key of message `i`, if it has one.
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        self.messages[i].key.map(|(start, end)| &self.data[start..end])
    }

    /// Whether message `i`'s value is null: a tombstone.
    pub fn is_tombstone(&self, i: usize) -> bool {
        self.messages[i].null_value
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Key and payload bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The payload of message `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        let m = &self.messages[i];
        &self.data[m.start..m.end]
    }

    /// The messages, in arrival order.
    pub fn messages(&self) -> &[MessageRef] {
        &self.messages
    }

    /// For each partition in the batch, the offset after its last message.
    pub fn next_offsets(&self) -> Vec<(i32, i64)> {
        let mut next: Vec<(i32, i64)> = Vec::new();
        for m in &self.messages {
            match next.iter_mut().find(|(p, _)| *p == m.partition) {
                Some((_, o)) => *o = (*o).max(m.offset + 1),
                None => next.push((m.partition, m.offset + 1)),
            }
        }
        next
    }

    /// For each partition in the batch, how many messages it has.
    pub fn partition_counts(&self) -> Vec<(i32, u64)> {
        let mut counts: Vec<(i32, u64)> = Vec::new();
        for m in &self.messages {
            match counts.iter_mut().find(|(p, _)| *p == m.partition) {
                Some((_, n)) => *n += 1,
                None => counts.push((m.partition, 1)),
            }
        }
        counts
    }
}

/// A message that did not decode.
#[derive(Debug, Clone)]
pub struct BadMessage {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Why.
    pub error: String,
    /// Its first bytes, as text.
    pub prefix: String,
}

/// How many payload bytes an error keeps.
const PREFIX_BYTES: usize = 200;

impl BadMessage {
    /// Message `i` of `batch`, refused for `error`.
    pub fn new(batch: &MessageBatch, i: usize, error: String) -> Self {
        let m = batch.messages()[i];
        let payload = batch.payload(i);
        let prefix = String::from_utf8_lossy(&payload[..payload.len().min(PREFIX_BYTES)]).into_owned();
        BadMessage { partition: m.partition, offset: m.offset, error, prefix }
    }
}

/// A decoded micro-batch.
#[derive(Debug)]
pub struct Decoded {
    /// The rows of every message that decoded, with the stream's schema.
    pub rows: Option<RecordBatch>,
    /// The messages that did not.
    pub bad: Vec<BadMessage>,
    /// Per partition, the offset after the batch.
    pub next_offsets: Vec<(i32, i64)>,
    /// Messages in the batch, good and bad.
    pub messages: u64,
    /// Messages in the batch per partition.
    pub partition_messages: Vec<(i32, u64)>,
    /// Payload bytes in the batch.
    pub bytes: u64,
    /// The messages themselves, kept so that a batch a view cannot apply
    /// can be applied again in parts (empty until the reader
    /// hands them over).
    pub source: MessageBatch,
    /// For a table: each row's message, and whether it deletes its key.
    pub keyed: Option<super::keyed::KeyedRows>,
}

/// Decodes messages into rows of one stream.
#[derive(Debug)]
pub enum MessageDecoder {
    /// text or csv: each message holds COPY rows of the stream's user columns.
    Copy(CopyFormat, SchemaRef, Vec<String>),
    /// json: one row per message.
    Json(JsonDecoder),
}

impl MessageDecoder {
    /// A decoder for `format` into a stream with `schema`.
    pub fn new(format: &MessageFormat, schema: SchemaRef) -> Self {
        match format {
            MessageFormat::Copy(f) => {
                let user = crate::catalog::user_fields(&schema).iter().map(|f| f.name().clone()).collect();
                MessageDecoder::Copy(f.clone(), schema, user)
            }
            MessageFormat::Json => MessageDecoder::Json(JsonDecoder::new(schema)),
        }
    }

    /// Decodes a whole micro-batch.
    pub fn decode(&self, batch: &MessageBatch) -> Result<Decoded, IngestError> {
        let (rows, errors) = match self {
            MessageDecoder::Json(d) => {
                let (rows, errors) = d.decode((0..batch.len()).map(|i| batch.payload(i)))?;
                (Some(rows), errors.into_iter().map(|e| (e.index, e.error)).collect())
            }
            MessageDecoder::Copy(format, schema, columns) => decode_copy(format, schema, columns, batch)?,
        };
        let bad = errors.into_iter().map(|(i, error): (usize, String)| BadMessage::new(batch, i, error)).collect();
        let rows = rows.filter(|r| r.num_rows() > 0);
        Ok(Decoded {
            rows,
            bad,
            next_offsets: batch.next_offsets(),
            messages: batch.len() as u64,
            partition_messages: batch.partition_counts(),
            bytes: batch.bytes() as u64,
            source: MessageBatch::default(),
            keyed: None,
        })
    }

    /// Decodes message `i` of `batch` on its own: its rows, if any, or why
    /// it is bad.
    pub fn decode_message(&self, batch: &MessageBatch, i: usize) -> Result<Option<RecordBatch>, String> {
        let payload = std::iter::once(batch.payload(i));
        match self {
            MessageDecoder::Json(d) => match d.decode(payload) {
                Ok((_, errors)) if !errors.is_empty() => Err(errors.into_iter().map(|e| e.error).collect()),
                Ok((rows, _)) => Ok(Some(rows).filter(|r| r.num_rows() > 0)),
                Err(e) => Err(e.to_string()),
            },
            MessageDecoder::Copy(format, schema, columns) => {
                decode_rows(format, schema, columns, payload).map_err(|e| e.to_string())
            }
        }
    }
}

type CopyResult = (Option<RecordBatch>, Vec<(usize, String)>);

/// Decodes the batch as one COPY; if any message is bad, decodes each
/// message on its own to find the bad ones and keep the rest.
fn decode_copy(
    format: &CopyFormat,
    schema: &SchemaRef,
    columns: &[String],
    batch: &MessageBatch,
) -> Result<CopyResult, IngestError> {
    let all = (0..batch.len()).map(|i| batch.payload(i));
    if let Ok(rows) = decode_rows(format, schema, columns, all) {
        return Ok((rows, Vec::new()));
    }
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for i in 0..batch.len() {
        match decode_rows(format, schema, columns, std::iter::once(batch.payload(i))) {
            Ok(Some(rows)) => good.push(rows),
            Ok(None) => {}
            Err(e) => errors.push((i, e.to_string())),
        }
    }
    let rows = if good.is_empty() {
        None
    } else {
        Some(concat_batches(schema, &good).map_err(|e| IngestError::InvalidText(e.to_string()))?)
    };
    Ok((rows, errors))
}

/// Decodes messages as consecutive COPY data; a message without a final
/// newline ends its last row anyway.
pub(super) fn decode_rows<'a>(
    format: &CopyFormat,
    schema: &SchemaRef,
    columns: &[String],
    payloads: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<RecordBatch>, IngestError> {
    // A message is data through and through: a line `\.` in it is a row
    // (or a bad one), never the end of the batch.
    let mut decoder = RowDecoder::new(format.clone(), schema.clone(), columns)?.without_end_marker();
    let mut out = Vec::new();
    for payload in payloads {
        if payload.is_empty() {
            continue;
        }
        out.extend(decoder.feed(payload)?);
        if payload.last() != Some(&b'\n') {
            out.extend(decoder.feed(b"\n")?);
        }
    }
    out.extend(decoder.finish()?);
    match out.len() {
        0 => Ok(None),
        1 => Ok(out.pop()),
        _ => concat_batches(schema, &out).map(Some).map_err(|e| IngestError::InvalidText(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::types::timestamptz;
    use crate::ingest::decode::FormatKind;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("arrival_timestamp", timestamptz(), true),
        ]))
    }

    #[test]
    fn copy_messages_keep_good_rows_around_bad_ones() {
        let mut batch = MessageBatch::default();
        batch.push(0, 10, b"1,a");
        batch.push(1, 3, b"x,b\n");
        batch.push(0, 11, b"2,c\n3,d\n");
        batch.push(1, 4, b"4");
        let format = CopyFormat { kind: FormatKind::Csv, ..CopyFormat::default() };
        let decoded = MessageDecoder::new(&MessageFormat::Copy(format), schema()).decode(&batch).unwrap();
        assert_eq!(decoded.rows.as_ref().unwrap().num_rows(), 3);
        assert_eq!(decoded.bad.len(), 2);
        assert_eq!((decoded.bad[0].partition, decoded.bad[0].offset), (1, 3));
        assert_eq!(decoded.bad[0].prefix, "x,b\n");
        assert_eq!(decoded.next_offsets, vec![(0, 12), (1, 5)]);
    }

    /// A message that is exactly `\.` is data, not the end of the batch:
    /// the rows after it are kept, and it is a bad row of its own.
    #[test]
    fn an_end_of_copy_marker_in_a_message_is_data() {
        for kind in [FormatKind::Text, FormatKind::Csv] {
            let mut batch = MessageBatch::default();
            let sep = if kind == FormatKind::Csv { "," } else { "\t" };
            for i in 0..99 {
                if i == 49 {
                    batch.push(0, i, b"\\.");
                } else {
                    batch.push(0, i, format!("{i}{sep}x").as_bytes());
                }
            }
            let format = CopyFormat { kind, ..CopyFormat::default() };
            let decoded = MessageDecoder::new(&MessageFormat::Copy(format), schema()).decode(&batch).unwrap();
            assert_eq!(decoded.rows.unwrap().num_rows(), 98, "{kind:?}");
            assert_eq!(decoded.bad.len(), 1, "{kind:?}");
            assert_eq!((decoded.bad[0].offset, decoded.bad[0].prefix.as_str()), (49, "\\."), "{kind:?}");
            assert!(decoded.bad[0].error.contains("missing data"), "{}", decoded.bad[0].error);
        }
    }

    #[test]
    fn text_messages_all_good() {
        let mut batch = MessageBatch::default();
        batch.push(0, 0, b"1\ta\n");
        batch.push(0, 1, b"2\t\\N");
        let format = MessageFormat::Copy(CopyFormat::default());
        let decoded = MessageDecoder::new(&format, schema()).decode(&batch).unwrap();
        assert_eq!(decoded.rows.unwrap().num_rows(), 2);
        assert!(decoded.bad.is_empty());
    }
}
