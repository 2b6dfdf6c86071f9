//! `CREATE SINK ... WITH (...)`: the options, checked.

use super::SinkError;
use super::envelope::Envelope;

/// A sink's settings, from its `WITH (...)` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// The topic written.
    pub topic: String,
    /// The brokers (`kafka_brokers`, else those added with `add_broker`).
    pub brokers: String,
    /// How changes are written.
    pub envelope: Envelope,
    /// The key columns given with `key = 'a, b'` (else the relation's own key).
    pub key: Option<Vec<String>>,
    /// Whether each write is one Kafka transaction (`exactly_once`, on by default).
    pub exactly_once: bool,
    /// Partitions of the topic when the sink creates it.
    pub partitions: i32,
}

impl SinkOptions {
    /// Checks `options`; `added_brokers` stand in for a missing `kafka_brokers`.
    /// The envelope defaults to upsert when the relation has a key (`has_key`),
    /// else to append.
    pub fn parse(options: &[(String, String)], added_brokers: &[String], has_key: bool) -> Result<Self, SinkError> {
        let mut topic = None;
        let mut brokers = None;
        let mut envelope = None;
        let mut key = None;
        let mut exactly_once = true;
        let mut partitions = 1;
        for (name, value) in options {
            match name.as_str() {
                "kafka_topic" | "topic" => topic = Some(value.clone()),
                "kafka_brokers" | "brokers" => brokers = Some(value.clone()),
                "envelope" => envelope = Some(Envelope::parse(value)?),
                "value_format" | "format" if value.eq_ignore_ascii_case("json") => {}
                "value_format" | "format" => {
                    return Err(SinkError::Unsupported(format!(
                        "value_format '{value}' is not supported; sinks write value_format = 'json'"
                    )));
                }
                "key" => {
                    let columns: Vec<String> =
                        value.split(',').map(|c| c.trim().to_lowercase()).filter(|c| !c.is_empty()).collect();
                    if columns.is_empty() {
                        return Err(SinkError::InvalidOption("key names no column; write key = 'col, ...'".into()));
                    }
                    key = Some(columns);
                }
                "exactly_once" => exactly_once = boolean(name, value)?,
                "partitions" => {
                    partitions = value.parse().ok().filter(|p| (1..=10_000).contains(p)).ok_or_else(|| {
                        SinkError::InvalidOption(format!("partitions must be a number from 1 to 10000, not '{value}'"))
                    })?;
                }
                other => {
                    return Err(SinkError::InvalidOption(format!(
                        "sink option \"{other}\" is not supported; sinks take kafka_topic, kafka_brokers, value_format, envelope, key, exactly_once and partitions"
                    )));
                }
            }
        }
        let topic = topic.filter(|t| !t.is_empty()).ok_or_else(|| {
            SinkError::InvalidOption("a sink needs a topic: CREATE SINK s FROM v WITH (kafka_topic = '...')".into())
        })?;
        let brokers = match brokers {
            Some(b) => b,
            None if !added_brokers.is_empty() => added_brokers.join(","),
            None => {
                return Err(SinkError::InvalidOption(
                    "a sink needs brokers: add kafka_brokers = 'host:port' to WITH, or SELECT pipeline_kafka.add_broker('host:port') first".into(),
                ));
            }
        };
        let has_key = has_key || key.is_some();
        let envelope = envelope.unwrap_or(if has_key { Envelope::Upsert } else { Envelope::Append });
        if envelope == Envelope::Upsert && !has_key {
            return Err(SinkError::InvalidOption(
                "an upsert sink needs a key, and this relation has none; name its key columns with key = 'col, ...', or use envelope = 'append'".into(),
            ));
        }
        Ok(Self { topic, brokers, envelope, key, exactly_once, partitions })
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, SinkError> {
    match value.to_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(SinkError::InvalidOption(format!("{name} must be true or false, not '{value}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_refusals() {
        let o = SinkOptions::parse(&opts(&[("kafka_topic", "t")]), &["b:9092".into()], true).unwrap();
        assert_eq!(
            (o.brokers.as_str(), o.envelope, o.exactly_once, o.partitions),
            ("b:9092", Envelope::Upsert, true, 1)
        );
        let o = SinkOptions::parse(&opts(&[("kafka_topic", "t"), ("kafka_brokers", "x:1")]), &[], false).unwrap();
        assert_eq!(o.envelope, Envelope::Append);
        let err = |pairs: &[(&str, &str)], has_key| {
            SinkOptions::parse(&opts(pairs), &["b:1".into()], has_key).unwrap_err().to_string()
        };
        assert!(err(&[], true).contains("needs a topic"));
        assert!(err(&[("kafka_topic", "t"), ("envelope", "upsert")], false).contains("needs a key"));
        assert!(err(&[("kafka_topic", "t"), ("value_format", "avro")], true).contains("json"));
        assert!(err(&[("kafka_topic", "t"), ("nope", "1")], true).contains("\"nope\""));
        assert!(err(&[("kafka_topic", "t"), ("partitions", "0")], true).contains("partitions"));
        let none = SinkOptions::parse(&opts(&[("kafka_topic", "t")]), &[], true).unwrap_err().to_string();
        assert!(none.contains("add_broker"));
    }
}
