//! ksqlDB's binding of a stream or a table to a Kafka topic, read from
//! `CREATE STREAM ... WITH (...)` and `CREATE TABLE ... WITH (...)`:
//! `kafka_topic = 't', value_format = 'json' | 'delimited' | 'text',
//! kafka_brokers = 'host:port', start_offset = 'earliest' | 'latest' | N,
//! value_delimiter = ','`, the consumer's tuning (`batchsize`, `parallelism`,
//! `maxbytes`, `timeout`, `group_id`), and for a table `key_format`.
//!
//! A stream starts at the end of its topic (ksqlDB's default); a table reads
//! its topic from the beginning, since it is the topic's latest value per key.

use crate::checkpoint::manifest::CatalogChange;
use crate::error::Result;
use crate::ingest::decode::{CopyFormat, FormatKind};
use crate::ingest::kafka::Begun;
use crate::ingest::kafka::options::{ConsumerOptions, KeyFormat, MessageFormat, StartOffset};
use crate::server::Session;
use crate::sql::SqlError;

/// What the topic feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A stream: keys are ignored.
    Stream,
    /// A table: the key is the primary key.
    Table,
}

impl Bound {
    fn noun(self) -> &'static str {
        match self {
            Bound::Stream => "stream",
            Bound::Table => "table",
        }
    }
}

/// Starts consuming `topic` into the relation `name` just created; if the
/// topic cannot be consumed, the relation is dropped again (`undo`) and the
/// statement fails. A broker that does not answer yet is a warning: the
/// consumer keeps retrying.
pub async fn start(
    session: &Session,
    bound: Bound,
    name: &str,
    (topic, options): (String, ConsumerOptions),
    undo: CatalogChange,
) -> Result<()> {
    let engine = session.engine();
    match engine.kafka.consume_begin(&engine.catalog, &topic, name, options).await {
        Ok(Begun::Started) => Ok(()),
        Ok(Begun::Retrying(why)) => {
            session.warn(format!(
                "Kafka broker not reachable ({why}); the {}'s consumer keeps retrying in the background, see pipeline_kafka.consumers",
                bound.noun()
            ));
            Ok(())
        }
        Err(e) => {
            engine.change_catalog(undo).await?;
            Err(e)
        }
    }
}

/// The topic and how to consume it, or `None` without `kafka_topic`.
/// `options` are the ones left after the caller took its own.
pub fn binding(options: &[(String, String)], bound: Bound) -> Result<Option<(String, ConsumerOptions)>> {
    let mut topic = None;
    let mut tuning = Vec::new();
    let mut consumer = ConsumerOptions {
        start_offset: if bound == Bound::Table { StartOffset::Earliest } else { StartOffset::Latest },
        ..ConsumerOptions::default()
    };
    let mut format = "json".to_string();
    let mut delimiter = None;
    for (key, value) in options {
        match key.as_str() {
            "kafka_topic" => topic = Some(value.clone()),
            "value_format" | "format" => format = value.to_ascii_lowercase(),
            "key_format" if bound == Bound::Table => consumer.key_format = KeyFormat::from_text(value)?,
            "kafka_brokers" => consumer.brokers = Some(value.clone()),
            "start_offset" | "auto.offset.reset" => consumer.start_offset = StartOffset::from_text(value)?,
            "value_delimiter" => delimiter = Some(delimiter_byte(value)?),
            "batchsize" | "parallelism" | "group_id" | "maxbytes" | "timeout" => {
                tuning.push((key.clone(), Some(value.clone())));
            }
            other => return Err(unknown_option(other, bound)),
        }
    }
    let Some(topic) = topic else {
        if let Some((key, _)) = options.first() {
            return Err(SqlError::Unsupported(format!(
                "{} option \"{key}\" needs kafka_topic to bind the {} to a topic",
                bound.noun(),
                bound.noun()
            ))
            .into());
        }
        return Ok(None);
    };
    let tuned = ConsumerOptions::from_args(&tuning)?;
    consumer.batch_size = tuned.batch_size;
    consumer.parallelism = tuned.parallelism;
    consumer.group_id = tuned.group_id;
    consumer.max_bytes = tuned.max_bytes;
    consumer.timeout_ms = tuned.timeout_ms;
    consumer.format = value_format(&format, delimiter)?;
    Ok(Some((topic, consumer)))
}

fn unknown_option(name: &str, bound: Bound) -> crate::error::EddyError {
    let own = match bound {
        Bound::Stream => "timestamp, lateness, idle_timeout, ",
        Bound::Table => "key_format, ",
    };
    SqlError::Unsupported(format!(
        "{} option \"{name}\" is not supported; a {} takes {own}kafka_topic, value_format, kafka_brokers, start_offset, value_delimiter, batchsize, parallelism, maxbytes, timeout and group_id",
        bound.noun(),
        bound.noun()
    ))
    .into()
}

fn delimiter_byte(value: &str) -> Result<u8> {
    match value.to_ascii_lowercase().as_str() {
        "tab" => Ok(b'\t'),
        "space" => Ok(b' '),
        d if d.len() == 1 => Ok(d.as_bytes()[0]),
        d => {
            Err(SqlError::InvalidParameter(format!("value_delimiter '{d}' must be one character, TAB or SPACE")).into())
        }
    }
}

fn value_format(format: &str, delimiter: Option<u8>) -> Result<MessageFormat> {
    match format {
        "json" => Ok(MessageFormat::Json),
        "delimited" | "csv" => {
            Ok(MessageFormat::Copy(CopyFormat { kind: FormatKind::Csv, delimiter, ..CopyFormat::default() }))
        }
        "text" => Ok(MessageFormat::Copy(CopyFormat { kind: FormatKind::Text, delimiter, ..CopyFormat::default() })),
        other => Err(SqlError::Unsupported(format!(
            "value_format '{other}' is not supported; use 'json', 'delimited' (csv) or 'text'"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_table_reads_from_the_beginning_and_takes_a_key_format() {
        let (topic, o) =
            binding(&opts(&[("kafka_topic", "accounts"), ("key_format", "json")]), Bound::Table).unwrap().unwrap();
        assert_eq!(topic, "accounts");
        assert_eq!((o.start_offset, o.key_format, o.format.name()), (StartOffset::Earliest, KeyFormat::Json, "json"));
        let (_, o) = binding(&opts(&[("kafka_topic", "s")]), Bound::Stream).unwrap().unwrap();
        assert_eq!(o.start_offset, StartOffset::Latest);
    }

    #[test]
    fn a_stream_takes_no_key_format_and_options_need_a_topic() {
        assert!(binding(&opts(&[("kafka_topic", "s"), ("key_format", "json")]), Bound::Stream).is_err());
        assert!(binding(&opts(&[("value_format", "json")]), Bound::Table).is_err());
        assert!(binding(&opts(&[("kafka_topic", "t"), ("key_format", "avro")]), Bound::Table).is_err());
        assert!(binding(&[], Bound::Table).unwrap().is_none());
    }
}
