//! Kafka topics as streams, as PipelineDB's pipeline_kafka extension and
//! ksqlDB's `CREATE STREAM ... WITH (kafka_topic = ...)` bind them.
//!
//! [`Kafka`] owns the brokers added with `add_broker`, every consumer (one
//! per topic and stream, running or stopped), the offsets each consumer has
//! applied, and a bounded log of messages that did not decode. The offsets
//! here, not Kafka's committed offsets, say where a consumer resumes.
//!
//! How one consumer runs is in [`consumer`]; micro-batches and their
//! decoding in [`batch`]; options in [`options`]; the `pipeline_kafka.*`
//! relations in [`relations`].

pub mod batch;
mod consumer;
pub mod keyed;
pub mod options;
pub mod produce;
pub mod relations;
pub mod target;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::batch::BadMessage;
use self::consumer::{Probe, StatusCell};
use self::options::ConsumerOptions;
use self::target::Target;
use crate::catalog::Catalog;
use crate::checkpoint::manifest::ConsumerRecord;
use crate::error::Result;

/// How long `consume_begin` waits for the broker before it lets the consumer
/// keep trying in the background.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// Bad messages remembered in `pipeline_kafka.errors` (the oldest go first).
pub const MAX_ERRORS_KEPT: usize = 10_000;

/// Errors of the Kafka functions.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// No broker was added, and the stream names none.
    #[error("no Kafka broker is configured; call pipeline_kafka.add_broker('host:port') first")]
    NoBrokers,
    /// `remove_broker` of a broker that was never added.
    #[error("Kafka broker \"{0}\" was not added; see SELECT * FROM pipeline_kafka.brokers")]
    UnknownBroker(String),
    /// The broker answered, and has no such topic.
    #[error("Kafka topic \"{0}\" does not exist; create it on the broker first")]
    UnknownTopic(String),
    /// `consume_end` of a topic and stream nobody consumes.
    #[error(
        "there is no consumer of topic \"{topic}\" into stream \"{stream}\"; see SELECT * FROM pipeline_kafka.consumers"
    )]
    UnknownConsumer {
        /// The topic.
        topic: String,
        /// The stream.
        stream: String,
    },
    /// `consume_begin` of a topic and stream already being consumed.
    #[error(
        "topic \"{topic}\" is already being consumed into stream \"{stream}\"; call pipeline_kafka.consume_end first"
    )]
    AlreadyConsuming {
        /// The topic.
        topic: String,
        /// The stream.
        stream: String,
    },
    /// A bad argument or option.
    #[error("{0}")]
    InvalidOption(String),
    /// librdkafka refused the configuration.
    #[error("could not create a Kafka client: {0}")]
    Client(String),
    /// `produce_message` could not deliver its message.
    #[error("could not produce a message to Kafka topic \"{topic}\": {reason}")]
    Produce {
        /// The topic.
        topic: String,
        /// The broker's or librdkafka's error.
        reason: String,
    },
}

/// A bad message, as `pipeline_kafka.errors` shows it.
#[derive(Debug, Clone)]
pub struct ErrorRecord {
    /// The consumer that read it.
    pub consumer_id: u64,
    /// Its topic.
    pub topic: String,
    /// The stream it was for.
    pub stream: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset; NULL when a whole batch failed in a view.
    pub offset: Option<i64>,
    /// Why it was left out.
    pub error: String,
    /// Its first bytes.
    pub prefix: String,
    /// When, in microseconds since the epoch.
    pub at_micros: i64,
}

/// Counters of one consumer.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages read, good and bad.
    pub messages: AtomicU64,
    /// Payload bytes read.
    pub bytes: AtomicU64,
    /// Rows applied to the stream.
    pub rows: AtomicU64,
    /// Messages that did not decode.
    pub errors: AtomicU64,
    /// Micro-batches applied.
    pub batches: AtomicU64,
}

/// How long the high watermarks asked of a broker are reused.
const WATERMARKS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// One topic consumed into one stream.
#[derive(Debug)]
pub struct Consumer {
    /// Its number, as `pipeline_kafka.consumers.id`.
    pub id: u64,
    /// The topic.
    pub topic: String,
    /// The stream.
    pub stream: String,
    options: Mutex<ConsumerOptions>,
    status: Arc<StatusCell>,
    /// Per partition, the offset of the next message to apply.
    offsets: Mutex<BTreeMap<i32, i64>>,
    /// Counters.
    pub stats: Stats,
    /// Per partition, messages read and messages that did not decode.
    partition_stats: Mutex<BTreeMap<i32, (u64, u64)>>,
    /// The high watermarks last asked of the broker, and when.
    watermarks: Mutex<Option<(std::time::Instant, BTreeMap<i32, i64>)>>,
    run: Mutex<Option<Run>>,
    /// Consuming was asked for (by `consume_begin`), and not ended since:
    /// what a checkpoint records, so a restart resumes it.
    active: std::sync::atomic::AtomicBool,
}

/// A running consumer's handles.
struct Run {
    stop: CancellationToken,
    done: JoinHandle<()>,
    probe: Arc<Mutex<Option<Probe>>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("stopped", &self.stop.is_cancelled()).finish_non_exhaustive()
    }
}

impl Consumer {
    /// Its current options.
    pub fn options(&self) -> ConsumerOptions {
        self.options.lock().clone()
    }

    /// Its state (`starting`, `running`, `retrying`, `waiting`, `stopped`)
    /// and the last problem, if any.
    pub fn status(&self) -> (String, Option<String>) {
        self.status.get()
    }

    /// The applied offsets, by partition.
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.offsets.lock().clone()
    }

    /// Per partition, messages read and messages that did not decode, since
    /// the server started.
    pub fn partition_stats(&self) -> BTreeMap<i32, (u64, u64)> {
        self.partition_stats.lock().clone()
    }

    /// Counts messages read, per partition.
    pub fn count_partition_messages(&self, counts: &[(i32, u64)]) {
        let mut stats = self.partition_stats.lock();
        for (p, n) in counts {
            stats.entry(*p).or_default().0 += n;
        }
    }

    /// The high watermark of each partition, if a client is connected.
    /// Asked of the broker at most every [`WATERMARKS_FRESH`], and only
    /// while the consumer runs: a scrape or the status page must not wait
    /// on a broker that is not answering.
    pub fn high_watermarks(&self) -> BTreeMap<i32, i64> {
        if self.status().0 != "running" {
            return BTreeMap::new();
        }
        if let Some((at, marks)) = self.watermarks.lock().as_ref()
            && at.elapsed() < WATERMARKS_FRESH
        {
            return marks.clone();
        }
        let marks = self.fetch_high_watermarks();
        *self.watermarks.lock() = Some((std::time::Instant::now(), marks.clone()));
        marks
    }

    fn fetch_high_watermarks(&self) -> BTreeMap<i32, i64> {
        let probe = self.run.lock().as_ref().map(|r| r.probe.clone());
        let partitions: Vec<i32> = self.offsets.lock().keys().copied().collect();
        match probe {
            Some(probe) => consumer::high_watermarks(&probe, &self.topic, &partitions),
            None => BTreeMap::new(),
        }
    }

    fn advance(&self, next: &[(i32, i64)]) {
        let mut offsets = self.offsets.lock();
        for (p, o) in next {
            offsets.insert(*p, *o);
        }
    }

    fn is_running(&self) -> bool {
        self.run.lock().as_ref().is_some_and(|r| !r.done.is_finished())
    }
}

/// What `consume_begin` found when it asked the broker.
#[derive(Debug)]
pub enum Begun {
    /// Consuming.
    Started,
    /// The broker did not answer; the consumer keeps trying, and this says why.
    Retrying(String),
}

/// Brokers, consumers and bad messages.
#[derive(Debug)]
pub struct Kafka {
    brokers: Mutex<Vec<String>>,
    consumers: Mutex<BTreeMap<(String, String), Arc<Consumer>>>,
    errors: Arc<Mutex<VecDeque<ErrorRecord>>>,
    next_id: AtomicU64,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    producer: produce::Producer,
}

impl Kafka {
    /// No brokers and no consumers; consumer tasks go to `tasks` and stop on `shutdown`.
    pub fn new(tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        Self {
            brokers: Mutex::new(Vec::new()),
            consumers: Mutex::new(BTreeMap::new()),
            errors: Arc::new(Mutex::new(VecDeque::new())),
            next_id: AtomicU64::new(1),
            tasks,
            shutdown,
            producer: produce::Producer::default(),
        }
    }

    /// `produce_message`: one message to `topic` of the added brokers.
    pub async fn produce(&self, message: produce::Message<'_>) -> Result<(), KafkaError> {
        let brokers = self.brokers();
        if brokers.is_empty() {
            return Err(KafkaError::NoBrokers);
        }
        self.producer.produce(&brokers.join(","), message).await
    }

    /// `add_broker`: idempotent.
    pub fn add_broker(&self, broker: &str) -> Result<(), KafkaError> {
        let broker = broker.trim();
        if broker.is_empty() || broker.contains(char::is_whitespace) {
            return Err(KafkaError::InvalidOption(format!("\"{broker}\" is not a broker address; use 'host:port'")));
        }
        let mut brokers = self.brokers.lock();
        if !brokers.iter().any(|b| b == broker) {
            brokers.push(broker.to_string());
        }
        Ok(())
    }

    /// `remove_broker`.
    pub fn remove_broker(&self, broker: &str) -> Result<(), KafkaError> {
        let mut brokers = self.brokers.lock();
        let before = brokers.len();
        brokers.retain(|b| b != broker.trim());
        if brokers.len() == before {
            return Err(KafkaError::UnknownBroker(broker.to_string()));
        }
        Ok(())
    }

    /// The brokers added, in order.
    pub fn brokers(&self) -> Vec<String> {
        self.brokers.lock().clone()
    }

    /// The brokers and consumers as a checkpoint records them. Called at the
    /// checkpoint barrier, so the offsets match the views' state.
    pub fn records(&self) -> (Vec<String>, Vec<ConsumerRecord>) {
        let consumers = self
            .consumers()
            .iter()
            .map(|c| ConsumerRecord {
                topic: c.topic.clone(),
                stream: c.stream.clone(),
                options: c.options(),
                offsets: c.offsets(),
                running: c.active.load(Ordering::Relaxed),
            })
            .collect();
        (self.brokers(), consumers)
    }

    /// Puts back a consumer from a checkpoint, stopped, at its offsets.
    pub fn restore(&self, record: ConsumerRecord) {
        let mut options = record.options;
        if !record.offsets.is_empty() {
            options.start_offset = options::StartOffset::Stored;
        }
        let key = (record.topic, record.stream);
        let status = Arc::new(StatusCell::default());
        let consumer = self.new_consumer(&key, options, status, record.offsets, record.running);
        consumer.status.set("stopped", None);
        self.consumers.lock().insert(key, Arc::new(consumer));
    }

    /// A consumer record, not yet running.
    fn new_consumer(
        &self,
        (topic, stream): &(String, String),
        options: ConsumerOptions,
        status: Arc<StatusCell>,
        offsets: BTreeMap<i32, i64>,
        active: bool,
    ) -> Consumer {
        Consumer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            topic: topic.clone(),
            stream: stream.clone(),
            options: Mutex::new(options),
            status,
            offsets: Mutex::new(offsets),
            stats: Stats::default(),
            partition_stats: Mutex::new(BTreeMap::new()),
            watermarks: Mutex::new(None),
            run: Mutex::new(None),
            active: std::sync::atomic::AtomicBool::new(active),
        }
    }

    /// Starts the restored consumers that were consuming when the checkpoint
    /// was taken, from its offsets. One that cannot start says why in
    /// `pipeline_kafka.consumers`.
    pub fn start_restored(&self, catalog: &Catalog) {
        for consumer in self.consumers() {
            if !consumer.active.load(Ordering::Relaxed) || consumer.is_running() {
                continue;
            }
            let started = Target::resolve(catalog, &consumer.stream)
                .map_err(crate::error::EddyError::from)
                .and_then(|entry| Ok((entry, self.brokers_for(&consumer.options())?)));
            match started {
                Ok((entry, brokers)) => self.start(consumer, entry, brokers, None),
                Err(e) => consumer.status.set("failed", Some(e.to_string())),
            }
        }
    }

    /// Every consumer, running or stopped, by topic and stream.
    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.consumers.lock().values().cloned().collect()
    }

    /// The bad messages remembered, oldest first.
    pub fn errors(&self) -> Vec<ErrorRecord> {
        self.errors.lock().iter().cloned().collect()
    }

    /// `consume_begin(topic, stream, ...)`: starts consuming, or restarts a
    /// stopped consumer with new options (keeping its offsets).
    pub async fn consume_begin(
        &self,
        catalog: &Catalog,
        topic: &str,
        stream: &str,
        mut options: ConsumerOptions,
    ) -> Result<Begun> {
        let entry = Target::resolve(catalog, stream)?;
        let key = (topic.to_string(), stream.to_string());
        let existing = self.consumers.lock().get(&key).cloned();
        if existing.as_ref().is_some_and(|c| c.is_running()) {
            return Err(KafkaError::AlreadyConsuming { topic: key.0, stream: key.1 }.into());
        }
        if let Some(old) = existing.as_ref().map(|c| c.options()) {
            // What consume_begin's arguments cannot say stays as declared
            // (by CREATE STREAM or CREATE TABLE ... WITH).
            options.brokers = options.brokers.or(old.brokers);
            options.key_format = old.key_format;
        }
        let status = existing.map_or_else(|| Arc::new(StatusCell::default()), |c| c.status.clone());
        let brokers = self.brokers_for(&options)?;
        let group_id = options.group_id.as_deref();
        let (begun, known) =
            match consumer::probe_topic(&brokers, topic, group_id, status.clone(), METADATA_TIMEOUT).await {
                Ok((client, Some(partitions))) => (Begun::Started, Some((client, partitions))),
                Ok((_, None)) => return Err(KafkaError::UnknownTopic(topic.to_string()).into()),
                Err(e) => (Begun::Retrying(e), None),
            };
        let consumer = {
            let mut consumers = self.consumers.lock();
            let consumer = consumers.entry(key.clone()).or_insert_with(|| {
                Arc::new(self.new_consumer(&key, options.clone(), status.clone(), BTreeMap::new(), false))
            });
            *consumer.options.lock() = options;
            consumer.clone()
        };
        self.start(consumer.clone(), entry, brokers, known);
        if let Begun::Retrying(why) = &begun {
            consumer.status.set("retrying", Some(why.clone()));
        }
        Ok(begun)
    }

    /// `consume_begin()`: restarts every stopped consumer with its options,
    /// from the offsets it had applied.
    pub fn consume_begin_all(&self, catalog: &Catalog) -> Result<usize> {
        let mut started = 0;
        for consumer in self.consumers() {
            if consumer.is_running() {
                continue;
            }
            let entry = Target::resolve(catalog, &consumer.stream)?;
            let brokers = self.brokers_for(&consumer.options())?;
            consumer.options.lock().start_offset = options::StartOffset::Stored;
            self.start(consumer, entry, brokers, None);
            started += 1;
        }
        Ok(started)
    }

    /// `consume_end(topic, stream)`: stops the consumer once its current
    /// micro-batch is applied. Its offsets are kept for a later `consume_begin`.
    pub async fn consume_end(&self, topic: &str, stream: &str) -> Result<(), KafkaError> {
        let consumer = self.consumers.lock().get(&(topic.to_string(), stream.to_string())).cloned();
        match consumer {
            Some(c) if c.is_running() => {
                c.active.store(false, Ordering::Relaxed);
                stop(&c).await;
                Ok(())
            }
            _ => Err(KafkaError::UnknownConsumer { topic: topic.to_string(), stream: stream.to_string() }),
        }
    }

    /// `consume_end()`: stops every consumer.
    pub async fn consume_end_all(&self) -> usize {
        let running: Vec<_> = self.consumers().into_iter().filter(|c| c.is_running()).collect();
        for c in &running {
            c.active.store(false, Ordering::Relaxed);
            stop(c).await;
        }
        running.len()
    }

    /// A stream or table was dropped: its consumers stop and are forgotten.
    pub async fn relation_dropped(&self, stream: &str) {
        let gone: Vec<Arc<Consumer>> = {
            let mut consumers = self.consumers.lock();
            let keys: Vec<_> = consumers.keys().filter(|(_, s)| s == stream).cloned().collect();
            keys.iter().filter_map(|k| consumers.remove(k)).collect()
        };
        for c in &gone {
            stop(c).await;
        }
    }

    fn brokers_for(&self, options: &ConsumerOptions) -> Result<String, KafkaError> {
        if let Some(b) = &options.brokers {
            return Ok(b.clone());
        }
        let brokers = self.brokers.lock();
        if brokers.is_empty() {
            return Err(KafkaError::NoBrokers);
        }
        Ok(brokers.join(","))
    }

    /// Starts `consumer`'s run; `known` is a connected client and the
    /// partitions it found, if `consume_begin` asked the broker already.
    fn start(&self, consumer: Arc<Consumer>, target: Target, brokers: String, known: Option<(Probe, Vec<i32>)>) {
        let stop = self.shutdown.child_token();
        let (client, partitions) = known.unzip();
        let probe = Arc::new(Mutex::new(client));
        consumer.status.set("starting", None);
        consumer.active.store(true, Ordering::Relaxed);
        let run = consumer::Runner {
            consumer: consumer.clone(),
            target,
            brokers,
            stop: stop.clone(),
            probe: probe.clone(),
            partitions,
            tasks: self.tasks.clone(),
            errors: ErrorSink { log: self.errors.clone() },
        };
        let done = self.tasks.spawn(run.run());
        *consumer.run.lock() = Some(Run { stop, done, probe });
    }
}

/// Stops a consumer and waits until its current micro-batch is applied.
async fn stop(consumer: &Consumer) {
    let run = consumer.run.lock().take();
    if let Some(run) = run {
        run.stop.cancel();
        if let Err(e) = run.done.await {
            tracing::warn!(topic = %consumer.topic, stream = %consumer.stream, "consumer task ended badly: {e}");
        }
    }
    consumer.status.set("stopped", None);
}

/// Where consumers record the messages they leave out.
#[derive(Debug, Clone)]
pub(crate) struct ErrorSink {
    log: Arc<Mutex<VecDeque<ErrorRecord>>>,
}

impl ErrorSink {
    fn push(&self, record: ErrorRecord) {
        tracing::warn!(topic = %record.topic, partition = record.partition, offset = ?record.offset, "message left out: {}", record.error);
        let mut log = self.log.lock();
        if log.len() >= MAX_ERRORS_KEPT {
            log.pop_front();
        }
        log.push_back(record);
    }

    /// Messages that did not decode.
    fn bad_messages(&self, consumer: &Consumer, bad: Vec<BadMessage>) {
        let at_micros = chrono::Utc::now().timestamp_micros();
        consumer.stats.errors.fetch_add(bad.len() as u64, Ordering::Relaxed);
        {
            let mut stats = consumer.partition_stats.lock();
            bad.iter().for_each(|b| stats.entry(b.partition).or_default().1 += 1);
        }
        for b in bad {
            self.push(ErrorRecord {
                consumer_id: consumer.id,
                topic: consumer.topic.clone(),
                stream: consumer.stream.clone(),
                partition: b.partition,
                offset: Some(b.offset),
                error: b.error,
                prefix: b.prefix,
                at_micros,
            });
        }
    }

    /// A decoded batch that a view could not apply.
    fn failed_batch(&self, consumer: &Consumer, next_offsets: &[(i32, i64)], error: String) {
        let at_micros = chrono::Utc::now().timestamp_micros();
        for (partition, next) in next_offsets {
            self.push(ErrorRecord {
                consumer_id: consumer.id,
                topic: consumer.topic.clone(),
                stream: consumer.stream.clone(),
                partition: *partition,
                offset: None,
                error: format!("the batch ending before offset {next} was not applied: {error}"),
                prefix: String::new(),
                at_micros,
            });
        }
    }
}
