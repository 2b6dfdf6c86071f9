//! A sink's Kafka side: the topic, the (transactional) producer that writes
//! it, and the reader that rebuilds what the topic holds.
//!
//! Every call here blocks (librdkafka's transaction calls do); the sink's
//! task runs them on tokio's blocking pool.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::SinkError;
use super::envelope::{Envelope, Message, Sent};
use super::outbox::SEQ_HEADER;

/// How long one Kafka call (a commit, a metadata request) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long creating the topic may take (an unreachable broker shows as
/// `retrying` after it).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading a topic may go without a message before it fails.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn kafka(what: &str, e: KafkaError) -> SinkError {
    SinkError::Kafka(format!("{what}: {e}"))
}

fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "eddy-sink")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000")
        .set("log_level", "3");
    config
}

/// Creates `topic` with `partitions` if it does not exist, with the
/// broker's default replication (or 1 where the broker has no default).
/// An upsert topic is compacted (its last value per key is the relation);
/// an append or debezium topic keeps its messages forever, since the sink
/// reads them all back to know what the topic holds.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32, envelope: Envelope) -> Result<(), SinkError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(brokers).create().map_err(|e| kafka("cannot make a Kafka admin client", e))?;
    let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT)).operation_timeout(Some(ADMIN_TIMEOUT));
    for replication in [-1, 1] {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let new = match envelope {
            Envelope::Upsert => new.set("cleanup.policy", "compact"),
            Envelope::Append | Envelope::Debezium => new.set("retention.ms", "-1"),
        };
        let results = admin.create_topics([&new], &options).await.map_err(|e| kafka("cannot create the topic", e))?;
        match results.into_iter().next() {
            Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => return Ok(()),
            Some(Err((_, RDKafkaErrorCode::InvalidReplicationFactor | RDKafkaErrorCode::InvalidRequest)))
                if replication < 0 => {}
            Some(Err((_, code))) => return Err(SinkError::Kafka(format!("cannot create topic \"{topic}\": {code}"))),
        }
    }
    Ok(())
}

/// Remembers the first failed delivery (for writes without transactions).
#[derive(Default)]
pub struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.lock().get_or_insert_with(|| e.to_string());
        }
    }
}

/// The producer of one sink.
pub struct Output {
    producer: BaseProducer<Deliveries>,
    topic: String,
    transactional: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("topic", &self.topic).field("transactional", &self.transactional).finish()
    }
}

impl Output {
    /// A producer for `topic`. With `transactional_id`, its transactions
    /// are started: any earlier producer with the same id (a previous run
    /// of the sink) is fenced off and its open transaction aborted.
    pub fn connect(brokers: &str, topic: &str, transactional_id: Option<&str>) -> Result<Self, SinkError> {
        let mut config = base_config(brokers);
        config.set("acks", "all").set("linger.ms", "5").set("message.timeout.ms", "30000");
        if let Some(id) = transactional_id {
            config.set("transactional.id", id).set("transaction.timeout.ms", "60000");
        }
        let producer: BaseProducer<Deliveries> =
            config.create_with_context(Deliveries::default()).map_err(|e| kafka("cannot make a Kafka producer", e))?;
        if transactional_id.is_some() {
            producer.init_transactions(CALL_TIMEOUT).map_err(|e| kafka("cannot start transactions", e))?;
        }
        Ok(Self { producer, topic: topic.to_string(), transactional: transactional_id.is_some() })
    }

    /// Writes `messages`: in one transaction, or (without transactions)
    /// acknowledged by the broker. Either all of them are written, or an
    /// error says the topic may hold some (without transactions) or none.
    /// With `first_seq`, the messages carry their numbers from it, in the
    /// header [`SEQ_HEADER`].
    pub fn write(&self, messages: &[Message], first_seq: Option<u64>) -> Result<(), SinkError> {
        if messages.is_empty() {
            return Ok(());
        }
        if self.transactional {
            self.producer.begin_transaction().map_err(|e| kafka("cannot begin a transaction", e))?;
        }
        let sent = self.send_all(messages, first_seq).and_then(|()| self.finish());
        if sent.is_err() && self.transactional {
            // Best effort: a producer that cannot abort is dropped, which
            // aborts the transaction when the next one fences it.
            let _ = self.producer.abort_transaction(CALL_TIMEOUT);
        }
        sent
    }

    fn send_all(&self, messages: &[Message], first_seq: Option<u64>) -> Result<(), SinkError> {
        for (i, message) in messages.iter().enumerate() {
            let mut record = BaseRecord::to(&self.topic);
            if let Some(first) = first_seq {
                let seq = first.saturating_add(i as u64).to_string();
                let header = Header { key: SEQ_HEADER, value: Some(seq.as_bytes()) };
                record = record.headers(OwnedHeaders::new_with_capacity(1).insert(header));
            }
            if let Some(key) = &message.key {
                record = record.key(key.as_slice());
            }
            if let Some(payload) = &message.payload {
                record = record.payload(payload.as_slice());
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(kafka("cannot produce", e)),
                }
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), SinkError> {
        if self.transactional {
            return self.producer.commit_transaction(CALL_TIMEOUT).map_err(|e| kafka("cannot commit", e));
        }
        self.producer.flush(CALL_TIMEOUT).map_err(|e| kafka("cannot deliver", e))?;
        match self.producer.context().failed.lock().take() {
            Some(e) => Err(SinkError::Kafka(format!("a message was not delivered: {e}"))),
            None => Ok(()),
        }
    }
}

/// Reads `topic` from its start to its end (committed messages only) and
/// rebuilds what it holds.
pub fn read_topic(brokers: &str, topic: &str, envelope: Envelope) -> Result<Sent, SinkError> {
    let consumer = reader(brokers)?;
    let from: Vec<(i32, Offset)> = partitions(&consumer, topic)?.into_iter().map(|p| (p, Offset::Beginning)).collect();
    let mut messages: Vec<KeyAndValue> = Vec::new();
    read_to_end(&consumer, topic, &from, |m| {
        messages.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
    })?;
    Sent::from_messages(envelope, messages.iter().map(|(k, v)| (k.as_deref(), v.as_deref())))
}

/// Messages read back from the end of each partition first, when looking
/// for the last number a topic holds.
const TAIL: i64 = 1000;

/// The largest event number ([`SEQ_HEADER`]) among `topic`'s committed
/// messages, if any has one. Reads the end of each partition only, going
/// further back while none is found.
pub fn last_seq(brokers: &str, topic: &str) -> Result<Option<u64>, SinkError> {
    let consumer = reader(brokers)?;
    let partitions = partitions(&consumer, topic)?;
    let mut window = TAIL;
    loop {
        let mut from = Vec::with_capacity(partitions.len());
        let mut whole = true;
        for &p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, CALL_TIMEOUT)
                .map_err(|e| kafka("cannot read the topic's offsets", e))?;
            let start = low.max(high.saturating_sub(window));
            whole &= start <= low;
            from.push((p, Offset::Offset(start)));
        }
        let mut last: Option<u64> = None;
        read_to_end(&consumer, topic, &from, |m| {
            let seq = m.headers().and_then(|h| h.iter().find(|h| h.key == SEQ_HEADER)).and_then(|h| h.value);
            // Numbers are never near the top of the range; one that is was not ours.
            let seq = seq.and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok());
            let seq = seq.filter(|&s| s < 1 << 62);
            last = last.max(seq);
        })?;
        if last.is_some() || whole {
            return Ok(last);
        }
        window = window.saturating_mul(16);
    }
}

/// A consumer that reads committed messages only, and says where each
/// partition ends.
fn reader(brokers: &str) -> Result<BaseConsumer, SinkError> {
    base_config(brokers)
        .set("group.id", "eddy-sink-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| kafka("cannot make a Kafka consumer", e))
}

/// `topic`'s partitions; an error for a topic without any.
fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, SinkError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(|e| kafka(&format!("cannot read topic \"{topic}\""), e))?;
    let mut partitions: Vec<i32> = Vec::new();
    for t in metadata.topics() {
        if let Some(error) = t.error() {
            return Err(SinkError::Kafka(format!(
                "cannot read topic \"{topic}\": {:?}",
                RDKafkaErrorCode::from(error)
            )));
        }
        partitions.extend(t.partitions().iter().map(|p| p.id()));
    }
    if partitions.is_empty() {
        // Read as empty, it would have the whole relation written again.
        return Err(SinkError::Kafka(format!("topic \"{topic}\" has no partitions yet")));
    }
    Ok(partitions)
}

/// Reads each partition of `topic` from its offset in `from` to its end,
/// handing each message to `each`.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    from: &[(i32, Offset)],
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), SinkError> {
    let mut assignment = TopicPartitionList::new();
    for &(p, offset) in from {
        assignment.add_partition_offset(topic, p, offset).map_err(|e| kafka("cannot assign", e))?;
    }
    consumer.assign(&assignment).map_err(|e| kafka("cannot assign", e))?;
    let mut pending: std::collections::BTreeSet<i32> = from.iter().map(|(p, _)| *p).collect();
    let mut last_progress = Instant::now();
    while !pending.is_empty() {
        if last_progress.elapsed() > READ_IDLE_TIMEOUT {
            return Err(SinkError::Kafka(format!(
                "reading topic \"{topic}\" stalled for {}s before its end",
                READ_IDLE_TIMEOUT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                each(&m);
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(kafka(&format!("cannot read topic \"{topic}\""), e)),
        }
    }
    Ok(())
}

/// A message's key and value, as read back.
type KeyAndValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Drops a Kafka client off the async runtime: librdkafka's destroy
/// flushes and joins threads, which blocks.
pub fn drop_off_runtime<T: Send + 'static>(client: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(move || drop(client));
        }
        Err(_) => drop(client),
    }
}
