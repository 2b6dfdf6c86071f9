//! A consumer's options: pipeline_kafka's `consume_begin` arguments, or a
//! ksqlDB stream's `WITH (kafka_topic = ..., value_format = ...)`.

use super::KafkaError;
use crate::ingest::decode::{CopyFormat, FormatKind};

/// Messages per micro-batch unless `batchsize` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Bytes of messages per micro-batch unless `maxbytes` says otherwise.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// How long a micro-batch waits to fill before it is applied anyway.
pub const DEFAULT_TIMEOUT_MS: u64 = 10;
/// Most partition readers one consumer may run.
pub const MAX_PARALLELISM: usize = 64;

/// How messages are decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MessageFormat {
    /// Each message holds COPY rows, in text or csv form.
    Copy(CopyFormat),
    /// Each message is one JSON value.
    Json,
}

impl MessageFormat {
    /// The name pipeline_kafka uses for it.
    pub fn name(&self) -> &'static str {
        match self {
            MessageFormat::Copy(f) if f.kind == FormatKind::Csv => "csv",
            MessageFormat::Copy(_) => "text",
            MessageFormat::Json => "json",
        }
    }
}

/// Where a consumer starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StartOffset {
    /// `NULL`: where this topic and stream left off; the beginning if never read.
    Stored,
    /// `-1`: only messages produced from now on.
    Latest,
    /// `-2`: every message in the topic.
    Earliest,
    /// `N`: this exact offset, in every partition.
    Exact(i64),
}

impl StartOffset {
    /// Reads pipeline_kafka's encoding (NULL, -1, -2, N).
    pub fn from_number(n: Option<i64>) -> Result<Self, KafkaError> {
        match n {
            None => Ok(StartOffset::Stored),
            Some(-1) => Ok(StartOffset::Latest),
            Some(-2) => Ok(StartOffset::Earliest),
            Some(n) if n >= 0 => Ok(StartOffset::Exact(n)),
            Some(n) => Err(KafkaError::InvalidOption(format!(
                "start_offset {n} is not valid; use NULL (resume), -1 (latest), -2 (earliest) or an offset >= 0"
            ))),
        }
    }

    /// Reads ksqlDB's words (`earliest`, `latest`) or a number.
    pub fn from_text(text: &str) -> Result<Self, KafkaError> {
        match text.to_ascii_lowercase().as_str() {
            "earliest" | "beginning" => Ok(StartOffset::Earliest),
            "latest" | "end" => Ok(StartOffset::Latest),
            "" | "null" | "stored" => Ok(StartOffset::Stored),
            other => other
                .parse::<i64>()
                .map_err(|_| {
                    KafkaError::InvalidOption(format!(
                        "start_offset '{text}' is not valid; use earliest, latest or an offset"
                    ))
                })
                .and_then(|n| Self::from_number(Some(n))),
        }
    }

    /// As shown in `pipeline_kafka.consumers`.
    pub fn describe(&self) -> String {
        match self {
            StartOffset::Stored => "stored".into(),
            StartOffset::Latest => "latest".into(),
            StartOffset::Earliest => "earliest".into(),
            StartOffset::Exact(n) => n.to_string(),
        }
    }
}

/// Everything that says how one topic is consumed into one stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsumerOptions {
    /// How each message is decoded.
    pub format: MessageFormat,
    /// Most messages per micro-batch.
    pub batch_size: usize,
    /// Most message bytes per micro-batch.
    pub max_bytes: usize,
    /// Partition readers run at once.
    pub parallelism: usize,
    /// Where to start.
    pub start_offset: StartOffset,
    /// Kafka consumer group, used only to commit offsets for monitoring tools.
    pub group_id: Option<String>,
    /// How long a micro-batch waits to fill, in milliseconds.
    pub timeout_ms: u64,
    /// Brokers for this consumer; empty means those added with `add_broker`.
    pub brokers: Option<String>,
    /// How a table's message keys are decoded (streams ignore keys).
    #[serde(default)]
    pub key_format: KeyFormat,
}

/// How the key of a message to a table is decoded into its primary key,
/// as ksqlDB's `key_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyFormat {
    /// Kafka's own serializers: UTF-8 text for text columns, big-endian
    /// binary for `smallint`, `integer`, `bigint`, `real` and `double
    /// precision` (Java's `IntegerSerializer`, `LongSerializer`, ...); any
    /// other type as text.
    #[default]
    Kafka,
    /// The key's text, as one COPY field: `42`, `alice`.
    Delimited,
    /// JSON: the bare value for a one-column key (`42`, `"alice"`), or an
    /// object with the key's columns.
    Json,
}

impl KeyFormat {
    /// Reads `key_format = '...'`.
    pub fn from_text(text: &str) -> Result<Self, KafkaError> {
        match text.to_ascii_lowercase().as_str() {
            "kafka" => Ok(KeyFormat::Kafka),
            "delimited" | "text" | "csv" => Ok(KeyFormat::Delimited),
            "json" => Ok(KeyFormat::Json),
            other => Err(KafkaError::InvalidOption(format!(
                "key_format '{other}' is not supported; use 'kafka' (Kafka's serializers), 'delimited' (the key as text) or 'json'"
            ))),
        }
    }

    /// The name `key_format` takes.
    pub fn name(&self) -> &'static str {
        match self {
            KeyFormat::Kafka => "kafka",
            KeyFormat::Delimited => "delimited",
            KeyFormat::Json => "json",
        }
    }
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            format: MessageFormat::Copy(CopyFormat::default()),
            batch_size: DEFAULT_BATCH_SIZE,
            max_bytes: DEFAULT_MAX_BYTES,
            parallelism: 1,
            start_offset: StartOffset::Stored,
            group_id: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            brokers: None,
            key_format: KeyFormat::Kafka,
        }
    }
}

/// Options as given, before they are checked: name and text value (`None` for SQL NULL).
pub type RawOptions = Vec<(String, Option<String>)>;

impl ConsumerOptions {
    /// Builds options from `consume_begin`'s named arguments.
    pub fn from_args(args: &RawOptions) -> Result<Self, KafkaError> {
        let mut options = ConsumerOptions::default();
        let mut copy = CopyFormat::default();
        let mut format = "text".to_string();
        for (name, value) in args {
            let text = value.as_deref();
            match name.as_str() {
                "format" => format = required(name, text)?.to_ascii_lowercase(),
                "delimiter" => copy.delimiter = one_byte(name, text)?,
                "quote" => copy.quote = one_byte(name, text)?.unwrap_or(b'"'),
                "escape" => copy.escape = one_byte(name, text)?,
                "batchsize" => options.batch_size = positive(name, text, DEFAULT_BATCH_SIZE)?,
                "maxbytes" => options.max_bytes = positive(name, text, DEFAULT_MAX_BYTES)?,
                "parallelism" => options.parallelism = positive(name, text, 1)?.min(MAX_PARALLELISM),
                "timeout" => options.timeout_ms = positive(name, text, DEFAULT_TIMEOUT_MS as usize)? as u64,
                "start_offset" => {
                    let n = text.map(|t| t.parse::<i64>()).transpose().map_err(|_| {
                        KafkaError::InvalidOption(format!(
                            "start_offset must be an integer, not '{}'",
                            text.unwrap_or("")
                        ))
                    })?;
                    options.start_offset = StartOffset::from_number(n)?;
                }
                "group_id" => options.group_id = text.map(str::to_string),
                other => {
                    return Err(KafkaError::InvalidOption(format!(
                        "consume_begin has no argument \"{other}\"; it takes format, delimiter, quote, escape, batchsize, maxbytes, parallelism, timeout, start_offset and group_id"
                    )));
                }
            }
        }
        options.format = match format.as_str() {
            "text" => MessageFormat::Copy(CopyFormat { kind: FormatKind::Text, ..copy }),
            "csv" => MessageFormat::Copy(CopyFormat { kind: FormatKind::Csv, ..copy }),
            "json" => MessageFormat::Json,
            other => {
                return Err(KafkaError::InvalidOption(format!(
                    "format '{other}' is not supported; use 'text', 'csv' or 'json'"
                )));
            }
        };
        Ok(options)
    }
}

fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, KafkaError> {
    value.ok_or_else(|| KafkaError::InvalidOption(format!("{name} must not be NULL")))
}

fn one_byte(name: &str, value: Option<&str>) -> Result<Option<u8>, KafkaError> {
    match value {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v.as_bytes()[0])),
        Some(v) => Err(KafkaError::InvalidOption(format!("{name} must be a single one-byte character, not '{v}'"))),
    }
}

fn positive(name: &str, value: Option<&str>, default: usize) -> Result<usize, KafkaError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(KafkaError::InvalidOption(format!("{name} must be a positive integer, not '{v}'"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, Option<&str>)]) -> RawOptions {
        pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn reads_pipeline_kafka_arguments() {
        let o = ConsumerOptions::from_args(&args(&[
            ("format", Some("csv")),
            ("delimiter", Some("|")),
            ("batchsize", Some("500")),
            ("parallelism", Some("4")),
            ("start_offset", Some("-2")),
        ]))
        .unwrap();
        assert_eq!(o.format.name(), "csv");
        assert!(matches!(&o.format, MessageFormat::Copy(f) if f.delimiter == Some(b'|')));
        assert_eq!((o.batch_size, o.parallelism, o.start_offset), (500, 4, StartOffset::Earliest));
        assert_eq!(
            ConsumerOptions::from_args(&args(&[("start_offset", None)])).unwrap().start_offset,
            StartOffset::Stored
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            args(&[("format", Some("avro"))]),
            args(&[("batchsize", Some("0"))]),
            args(&[("start_offset", Some("-3"))]),
            args(&[("delimiter", Some("ab"))]),
            args(&[("colour", Some("red"))]),
        ] {
            assert!(matches!(ConsumerOptions::from_args(&bad), Err(KafkaError::InvalidOption(_))), "{bad:?}");
        }
        assert_eq!(StartOffset::from_text("EARLIEST").unwrap(), StartOffset::Earliest);
        assert_eq!(StartOffset::from_text("42").unwrap(), StartOffset::Exact(42));
    }
}
