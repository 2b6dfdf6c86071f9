//! `eddy generate`: a load generator that produces realistic events to a
//! Kafka topic, for users, tests and benchmarks (Debian's kcat cannot talk to
//! every broker we test with).
//!
//! The `logs` schema gives JSON objects of about 200 bytes with five fields:
//! `ts` (microseconds since the epoch, the produce time), `service`,
//! `user_id` (one of `keys` values), `latency_ms` and `message`. Messages go
//! round-robin over the topic's partitions, so each partition gets an equal
//! share. With `--rate` the producer paces itself; without, it goes as fast
//! as the broker takes them.
//!
//! The `nexmark` schemas give the Nexmark benchmark's events (see
//! [`nexmark`]), as JSON.
//!
//! The `customers` schema gives keyed messages for a table fed by the topic
//! (ksqlDB style): the key is a customer id (`c42`, one of `keys`), the
//! value a JSON object with `plan`, `seats` and `name`, and every tenth
//! message is a tombstone (a null value) that deletes its customer. Each
//! customer's messages go to one partition, so they keep their order.
//!
//! The `orders` schema gives the orders those customers place, to join with
//! their table: JSON objects with `customer_id` (`c42`, one of `keys`; some
//! may have been deleted) and `amount`.

pub mod nexmark;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// What to produce, and where.
#[derive(Debug, Clone)]
pub struct Generate {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The topic; created with `partitions` partitions if it does not exist.
    pub topic: String,
    /// Partitions of a topic this creates.
    pub partitions: i32,
    /// Messages to produce.
    pub count: u64,
    /// Messages per second; `None` for as fast as possible.
    pub rate: Option<u64>,
    /// Distinct `user_id` values.
    pub keys: u64,
    /// The first message's sequence number (to continue an earlier run).
    pub start: u64,
    /// `json`, `csv` or `text`.
    pub format: String,
    /// `logs`, `customers`, or one of the Nexmark schemas (`nexmark`,
    /// `nexmark-bid`, `nexmark-auction`, `nexmark-person`); all but `logs`
    /// are JSON only.
    pub schema: String,
}

/// Errors producing.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The broker refused or could not be reached.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

const TIMEOUT: Duration = Duration::from_secs(10);
const SERVICES: [&str; 5] = ["checkout", "search", "cart", "auth", "catalog"];

/// Message `seq` of the `logs` schema, in `format`.
pub fn logs_message(seq: u64, keys: u64, format: &str, ts_micros: i64) -> String {
    let service = SERVICES[(seq % SERVICES.len() as u64) as usize];
    let user = seq.wrapping_mul(2_654_435_761) % keys.max(1);
    let latency = (seq % 1000) as f64 / 10.0;
    match format {
        "csv" => format!("{ts_micros},{service},{user},{latency},request {seq} served"),
        "text" => format!("{ts_micros}\t{service}\t{user}\t{latency}\trequest {seq} served"),
        _ => format!(
            "{{\"ts\":{ts_micros},\"service\":\"{service}\",\"user_id\":{user},\"latency_ms\":{latency},\"message\":\"request {seq} served to user {user} by {service}; status ok, cache warm, payload padded to a realistic size\"}}"
        ),
    }
}

const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];

/// Message `seq` of the `customers` schema: the customer id `c<n>` (the
/// key), the number that picks its partition, and the value (`None`: a
/// tombstone). The last message of each key says what a table holds.
pub fn customers_message(seq: u64, keys: u64) -> (String, u64, Option<String>) {
    let id = seq.wrapping_mul(2_654_435_761) % keys.max(1);
    let value = (seq % 10 != 9).then(|| {
        let plan = PLANS[((seq / 7 + id) % PLANS.len() as u64) as usize];
        format!("{{\"plan\":\"{plan}\",\"seats\":{},\"name\":\"customer {id}\"}}", seq % 50 + 1)
    });
    (format!("c{id}"), id, value)
}

/// Message `seq` of the `orders` schema: an order of customer `c<n>` (one
/// of `keys`).
pub fn orders_message(seq: u64, keys: u64) -> String {
    let id = seq.wrapping_mul(40_503) % keys.max(1);
    format!("{{\"customer_id\":\"c{id}\",\"amount\":{}}}", seq % 97 + 3)
}

/// One message to produce.
struct Outgoing {
    key: Option<String>,
    /// `None`: a tombstone.
    value: Option<String>,
    /// Picks the partition: messages with one route keep their order.
    route: u64,
}

/// Creates the topic unless it exists; returns its partition count.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<i32, GenerateError> {
    if let Some(n) = partition_count(brokers, topic, Duration::ZERO).await? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(TIMEOUT))).await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(GenerateError::Invalid(format!("could not create topic {t}: {code}"))),
        }
    }
    partition_count(brokers, topic, TIMEOUT)
        .await?
        .ok_or_else(|| GenerateError::Invalid(format!("topic {topic} has no partitions after it was created")))
}

/// The topic's partition count, waiting up to `wait` for it to appear;
/// `None` if it has none.
async fn partition_count(brokers: &str, topic: &str, wait: Duration) -> Result<Option<i32>, GenerateError> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    let deadline = Instant::now() + wait;
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        loop {
            let metadata = client.fetch_metadata(Some(&topic), TIMEOUT)?;
            let n =
                metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len() as i32);
            if n > 0 {
                return Ok(Some(n));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .map_err(|e| GenerateError::Invalid(e.to_string()))?
}

/// Produces the messages; returns how many were delivered.
pub async fn run(g: Generate) -> Result<u64, GenerateError> {
    if !matches!(g.format.as_str(), "json" | "csv" | "text") {
        return Err(GenerateError::Invalid(format!("format {} is not one of json, csv, text", g.format)));
    }
    if !matches!(g.schema.as_str(), "logs" | "customers" | "orders") && nexmark::event_type(&g.schema).is_none() {
        return Err(GenerateError::Invalid(format!(
            "schema {} is not one of logs, customers, orders, nexmark, nexmark-bid, nexmark-auction, nexmark-person",
            g.schema
        )));
    }
    if g.schema != "logs" && g.format != "json" {
        return Err(GenerateError::Invalid(format!("schema {} is produced as json only", g.schema)));
    }
    let partitions = ensure_topic(&g.brokers, &g.topic, g.partitions).await?;
    tokio::task::spawn_blocking(move || produce(&g, partitions))
        .await
        .map_err(|e| GenerateError::Invalid(e.to_string()))?
}

/// Counts messages the broker did not take.
struct Failures(Arc<AtomicU64>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn produce(g: &Generate, partitions: i32) -> Result<u64, GenerateError> {
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Failures> = ClientConfig::new()
        .set("bootstrap.servers", &g.brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Failures(failed.clone()))?;
    let started = Instant::now();
    let mut payloads = payloads(g);
    for i in 0..g.count {
        if let Some(rate) = g.rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let Some(message) = payloads.next() else { break };
        let partition = (message.route % partitions as u64) as i32;
        let mut record = BaseRecord::<str, str>::to(&g.topic).partition(partition);
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        if let Some(value) = &message.value {
            record = record.payload(value.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    match failed.load(Ordering::Relaxed) {
        0 => Ok(g.count),
        n => Err(GenerateError::Invalid(format!("{n} of {} messages were not delivered", g.count))),
    }
}

/// The messages of `g`'s schema, in order.
fn payloads(g: &Generate) -> Box<dyn Iterator<Item = Outgoing> + '_> {
    let keyless = |(seq, value): (u64, String)| Outgoing { key: None, value: Some(value), route: seq };
    if g.schema == "customers" {
        return Box::new((g.start..).map(|seq| {
            let (key, route, value) = customers_message(seq, g.keys);
            Outgoing { key: Some(key), value, route }
        }));
    }
    if g.schema == "orders" {
        return Box::new((g.start..).map(|seq| (seq, orders_message(seq, g.keys))).map(keyless));
    }
    match nexmark::event_type(&g.schema) {
        Some(kind) => {
            Box::new((g.start..).zip(nexmark::events(kind, g.start).map(|e| nexmark::to_json(&e))).map(keyless))
        }
        None => Box::new(
            (g.start..)
                .map(|seq| (seq, logs_message(seq, g.keys, &g.format, chrono::Utc::now().timestamp_micros())))
                .map(keyless),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_messages_are_json_of_realistic_size() {
        let m = logs_message(7, 10_000, "json", 1_700_000_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 5);
        assert!((150..260).contains(&m.len()), "{} bytes", m.len());
        assert_eq!(logs_message(7, 10_000, "csv", 1).split(',').count(), 5);
    }

    #[test]
    fn customers_messages_are_keyed_with_a_tombstone_in_ten() {
        let messages: Vec<_> = (0..100).map(|seq| customers_message(seq, 20)).collect();
        assert_eq!(messages.iter().filter(|m| m.2.is_none()).count(), 10);
        assert!(messages.iter().all(|(key, route, _)| key == &format!("c{route}") && *route < 20));
        let v: serde_json::Value = serde_json::from_str(messages[0].2.as_deref().unwrap()).unwrap();
        assert!(PLANS.contains(&v["plan"].as_str().unwrap()));
    }
}
