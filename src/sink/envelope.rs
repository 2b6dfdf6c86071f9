//! What a sink writes: a relation's changes as Kafka messages in one of
//! three envelopes, and what a topic says the relation holds.
//!
//! - **upsert**: the key is the key columns as a JSON object; the value is
//!   the row, or a tombstone (no value) once the key's row is removed.
//! - **append**: each change as an event, `{"diff": 1 | -1, ...row}`; a
//!   stream's (or derived stream's) events as the bare rows.
//! - **debezium**: `{"before": row | null, "after": row | null, "op": ...}`,
//!   an update (a −1 and a +1 of one key) as one message with both.
//!
//! [`Sent`] is the other direction: the rows a topic holds, rebuilt from
//! its messages, so that a restarted sink writes only the difference
//! between the topic and the relation (see `super::task`).

use std::collections::HashMap;

use datafusion::arrow::array::{Array, Int32Array, RecordBatch};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::SinkError;
use crate::push::json::JsonRows;

/// How changes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// The latest row per key; a tombstone removes the key.
    Upsert,
    /// Every change, with its `diff`.
    Append,
    /// Debezium's `before` and `after`.
    Debezium,
}

impl Envelope {
    /// The envelope named `name`.
    pub fn parse(name: &str) -> Result<Self, SinkError> {
        match name.to_lowercase().as_str() {
            "upsert" => Ok(Envelope::Upsert),
            "append" => Ok(Envelope::Append),
            "debezium" => Ok(Envelope::Debezium),
            other => Err(SinkError::InvalidOption(format!(
                "envelope '{other}' is not supported; use envelope = 'upsert', 'append' or 'debezium'"
            ))),
        }
    }

    /// Its name, as options and `pipelinedb.sinks` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Envelope::Upsert => "upsert",
            Envelope::Append => "append",
            Envelope::Debezium => "debezium",
        }
    }
}

/// One changed row: its key (the key columns as a JSON object, when the
/// sink has key columns), the row as a JSON object, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key, as written in the message key.
    pub key: Option<String>,
    /// The row.
    pub row: String,
    /// +n for added copies, −n for removed ones.
    pub weight: i64,
}

/// One Kafka message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
}

/// The changes in `batch`, rows as a subscription gives them (`epoch`,
/// `diff`, then the relation's columns). `columns` (the row written) and
/// `keys` index the relation's columns.
pub fn changes(batch: &RecordBatch, columns: &[usize], keys: Option<&[usize]>) -> Result<Vec<Change>, SinkError> {
    let diff = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or_else(|| SinkError::Internal("a subscription's diff column is not int".into()))?;
    Ok(as_changes(batch, 2, columns, keys, |i| i64::from(diff.value(i))))
}

/// A stream's events (`rows` of the stream's columns) as changes, each
/// added once.
pub fn inserted(rows: &RecordBatch, columns: &[usize], keys: Option<&[usize]>) -> Vec<Change> {
    as_changes(rows, 0, columns, keys, |_| 1)
}

/// `batch`'s rows as changes; the relation's columns start at `first`.
fn as_changes(
    batch: &RecordBatch,
    first: usize,
    columns: &[usize],
    keys: Option<&[usize]>,
    weight: impl Fn(usize) -> i64,
) -> Vec<Change> {
    let json = JsonRows::new(batch);
    let columns: Vec<usize> = columns.iter().map(|i| i + first).collect();
    let keys: Option<Vec<usize>> = keys.map(|k| k.iter().map(|i| i + first).collect());
    (0..batch.num_rows())
        .map(|i| Change {
            key: keys.as_ref().map(|k| json.object(i, k, "")),
            row: json.object(i, &columns, ""),
            weight: weight(i),
        })
        .collect()
}

/// The messages that write `changes`, in order.
pub fn encode(envelope: Envelope, changes: &[Change]) -> Vec<Message> {
    match envelope {
        Envelope::Upsert => upserts(changes),
        Envelope::Append => changes
            .iter()
            .map(|c| Message { key: bytes(&c.key), payload: Some(append_value(c).into_bytes()) })
            .collect(),
        Envelope::Debezium => debezium(changes),
    }
}

/// A stream's events as messages: each the bare row, as ksqlDB writes a
/// derived stream's topic (an event is never retracted, so no `diff`).
pub fn events(changes: &[Change]) -> Vec<Message> {
    changes.iter().map(|c| Message { key: bytes(&c.key), payload: Some(c.row.clone().into_bytes()) }).collect()
}

fn bytes(text: &Option<String>) -> Option<Vec<u8>> {
    text.as_ref().map(|t| t.clone().into_bytes())
}

fn append_value(change: &Change) -> String {
    // `{"diff":n,` then the row's members.
    let members = change.row.strip_prefix('{').unwrap_or(&change.row);
    match members {
        "}" => format!(r#"{{"diff":{}}}"#, change.weight),
        _ => format!(r#"{{"diff":{},{members}"#, change.weight),
    }
}

/// Per key, the row it ends with, or a tombstone; keys in the order they
/// first changed.
fn upserts(changes: &[Change]) -> Vec<Message> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, Option<&str>> = HashMap::new();
    for change in changes {
        let key = change.key.as_deref().unwrap_or("{}");
        let entry = last.entry(key).or_insert_with(|| {
            order.push(key);
            None
        });
        if change.weight > 0 {
            *entry = Some(&change.row);
        } else if entry.is_none_or(|row| row == change.row) {
            // Removing the row the key holds; a removal of an older row
            // (already replaced) changes nothing.
            *entry = None;
        }
    }
    order
        .into_iter()
        .map(|key| Message { key: Some(key.as_bytes().to_vec()), payload: last[key].map(|r| r.as_bytes().to_vec()) })
        .collect()
}

/// Removals and additions paired by key into updates; the rest as deletes
/// and creates.
fn debezium(changes: &[Change]) -> Vec<Message> {
    let message = |key: &Option<String>, before: Option<&str>, after: Option<&str>| {
        let op = match (before, after) {
            (Some(_), Some(_)) => "u",
            (Some(_), None) => "d",
            _ => "c",
        };
        let value =
            format!(r#"{{"before":{},"after":{},"op":"{op}"}}"#, before.unwrap_or("null"), after.unwrap_or("null"));
        Message { key: bytes(key), payload: Some(value.into_bytes()) }
    };
    let mut out = Vec::new();
    let mut removed: HashMap<&str, Vec<&Change>> = HashMap::new();
    let mut added: Vec<&Change> = Vec::new();
    for change in changes {
        for _ in 0..change.weight.unsigned_abs() {
            match (change.weight < 0, &change.key) {
                (true, Some(key)) => removed.entry(key).or_default().push(change),
                (true, None) => out.push(message(&None, Some(&change.row), None)),
                (false, _) => added.push(change),
            }
        }
    }
    for change in added {
        let before = change.key.as_deref().and_then(|k| removed.get_mut(k)).and_then(|r| r.pop());
        out.push(message(&change.key, before.map(|b| b.row.as_str()), Some(&change.row)));
    }
    let mut left: Vec<_> = removed.into_values().flatten().collect();
    left.sort_by(|a, b| (&a.key, &a.row).cmp(&(&b.key, &b.row)));
    out.extend(left.into_iter().map(|c| message(&c.key, Some(&c.row), None)));
    out
}

/// The rows a topic holds (or should hold): each row with its key and how
/// many copies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    rows: HashMap<String, (Option<String>, i64)>,
}

#[derive(Deserialize)]
struct DebeziumValue<'a> {
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
}

impl Sent {
    /// The rows of `changes`, all of them added (a snapshot).
    pub fn of(changes: &[Change]) -> Self {
        let mut sent = Self::default();
        sent.apply(changes);
        sent
    }

    /// How many distinct rows it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Applies changes that were written.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            self.add(change.key.clone(), &change.row, change.weight);
        }
    }

    fn add(&mut self, key: Option<String>, row: &str, weight: i64) {
        let entry = self.rows.entry(row.to_string()).or_insert((key, 0));
        entry.1 += weight;
        if entry.1 == 0 {
            self.rows.remove(row);
        }
    }

    /// The changes that turn `self` into `target`: removals first.
    pub fn changes_to(&self, target: &Sent) -> Vec<Change> {
        let mut out = Vec::new();
        for (row, (key, n)) in &self.rows {
            let want = target.rows.get(row).map_or(0, |t| t.1);
            if want < *n {
                out.push(Change { key: key.clone(), row: row.clone(), weight: want - n });
            }
        }
        for (row, (key, want)) in &target.rows {
            let have = self.rows.get(row).map_or(0, |s| s.1);
            if have < *want {
                out.push(Change { key: key.clone(), row: row.clone(), weight: want - have });
            }
        }
        out.sort_by_key(|c| c.weight > 0);
        out
    }

    /// Rebuilds what a topic holds from its messages, in offset order per
    /// partition (each key stays in its partition).
    pub fn from_messages<'a>(
        envelope: Envelope,
        messages: impl IntoIterator<Item = (Option<&'a [u8]>, Option<&'a [u8]>)>,
    ) -> Result<Self, SinkError> {
        let text =
            |b: &'a [u8]| std::str::from_utf8(b).map_err(|_| SinkError::Topic("a message is not UTF-8 JSON".into()));
        let mut sent = Self::default();
        let mut by_key: HashMap<String, String> = HashMap::new();
        for (key, value) in messages {
            let key = key.map(text).transpose()?.map(str::to_string);
            let value = value.map(text).transpose()?;
            match envelope {
                Envelope::Upsert => {
                    let key = key.ok_or_else(|| SinkError::Topic("an upsert message has no key".into()))?;
                    match value {
                        Some(row) => by_key.insert(key, row.to_string()),
                        None => by_key.remove(&key),
                    };
                }
                Envelope::Append => {
                    let value = value.ok_or_else(|| SinkError::Topic("an append message has no value".into()))?;
                    let (row, diff) = split_append(value)?;
                    sent.add(key, &row, diff);
                }
                Envelope::Debezium => {
                    let Some(value) = value else { continue };
                    let parsed: DebeziumValue = serde_json::from_str(value)
                        .map_err(|e| SinkError::Topic(format!("a debezium message is not valid: {e}")))?;
                    if let Some(before) = parsed.before.filter(|v| v.get() != "null") {
                        sent.add(key.clone(), before.get(), -1);
                    }
                    if let Some(after) = parsed.after.filter(|v| v.get() != "null") {
                        sent.add(key, after.get(), 1);
                    }
                }
            }
        }
        for (key, row) in by_key {
            sent.add(Some(key), &row, 1);
        }
        Ok(sent)
    }
}

/// An append message's row and diff: `{"diff":n,rest}` is `{rest}` and n.
fn split_append(value: &str) -> Result<(String, i64), SinkError> {
    let bad = || SinkError::Topic(format!("an append message is not {{\"diff\": n, ...}}: {value}"));
    let rest = value.strip_prefix(r#"{"diff":"#).ok_or_else(bad)?;
    let end = rest.find([',', '}']).ok_or_else(bad)?;
    let diff: i64 = rest[..end].parse().map_err(|_| bad())?;
    let row = match &rest[end..] {
        "}" => "{}".to_string(),
        members => format!("{{{}", &members[1..]),
    };
    Ok((row, diff))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, row: &str, weight: i64) -> Change {
        Change { key: Some(key.to_string()), row: row.to_string(), weight }
    }

    fn text(m: &Message) -> (String, Option<String>) {
        let s = |b: &Vec<u8>| String::from_utf8(b.clone()).unwrap();
        (m.key.as_ref().map(s).unwrap_or_default(), m.payload.as_ref().map(s))
    }

    #[test]
    fn upsert_keeps_the_last_row_per_key_and_tombstones_removals() {
        let changes = [
            change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, 1),
            change(r#"{"k":2}"#, r#"{"k":2,"n":5}"#, -1),
            change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, -1),
            change(r#"{"k":1}"#, r#"{"k":1,"n":2}"#, 1),
            // A late removal of a row the key no longer holds.
            change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, -1),
        ];
        let out: Vec<_> = encode(Envelope::Upsert, &changes).iter().map(text).collect();
        assert_eq!(
            out,
            vec![(r#"{"k":1}"#.to_string(), Some(r#"{"k":1,"n":2}"#.to_string())), (r#"{"k":2}"#.to_string(), None),]
        );
    }

    #[test]
    fn each_envelope_rebuilds_what_it_wrote() {
        let first = [change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, 1), change(r#"{"k":2}"#, r#"{"k":2,"n":7}"#, 1)];
        let second = [change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, -1), change(r#"{"k":1}"#, r#"{"k":1,"n":3}"#, 1)];
        let third = [change(r#"{"k":2}"#, r#"{"k":2,"n":7}"#, -1)];
        let mut expected = Sent::default();
        for batch in [&first[..], &second[..], &third[..]] {
            expected.apply(batch);
        }
        for envelope in [Envelope::Upsert, Envelope::Append, Envelope::Debezium] {
            let messages: Vec<Message> =
                [&first[..], &second[..], &third[..]].into_iter().flat_map(|batch| encode(envelope, batch)).collect();
            let read = Sent::from_messages(envelope, messages.iter().map(|m| (m.key.as_deref(), m.payload.as_deref())))
                .unwrap();
            assert_eq!(read, expected, "{envelope:?}");
        }
    }

    #[test]
    fn debezium_pairs_an_update_and_append_carries_diff() {
        let update = [change(r#"{"k":1}"#, r#"{"k":1,"n":1}"#, -1), change(r#"{"k":1}"#, r#"{"k":1,"n":2}"#, 1)];
        let out: Vec<_> = encode(Envelope::Debezium, &update).iter().map(text).collect();
        assert_eq!(out[0].1.as_deref(), Some(r#"{"before":{"k":1,"n":1},"after":{"k":1,"n":2},"op":"u"}"#));
        assert_eq!(out.len(), 1);
        let out: Vec<_> = encode(Envelope::Append, &update).iter().map(text).collect();
        assert_eq!(out[0].1.as_deref(), Some(r#"{"diff":-1,"k":1,"n":1}"#));
        assert_eq!(split_append(r#"{"diff":-12,"a":"x,}"}"#).unwrap(), (r#"{"a":"x,}"}"#.to_string(), -12));
    }

    #[test]
    fn the_difference_between_a_topic_and_a_snapshot() {
        let topic = Sent::of(&[change("a", "ra", 1), change("b", "rb", 1), change("c", "rc", 2)]);
        let now = Sent::of(&[change("a", "ra", 1), change("b", "rb2", 1), change("c", "rc", 1)]);
        let diff = topic.changes_to(&now);
        let mut applied = topic.clone();
        applied.apply(&diff);
        assert_eq!(applied, now);
        assert!(diff.iter().take_while(|c| c.weight < 0).count() == 2);
        assert!(now.changes_to(&now).is_empty());
    }
}
