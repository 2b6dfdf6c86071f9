//! How one consumer runs.
//!
//! A supervisor task finds the topic's partitions (retrying with backoff
//! while the broker is unreachable or the topic is missing), then splits
//! them among `parallelism` readers. Each reader is a blocking thread with
//! its own librdkafka client, assigned its partitions at the start offsets
//! (no consumer-group rebalancing: Eddy owns the offsets). A reader fills a
//! micro-batch until `batchsize` messages, `maxbytes` bytes or `timeout`,
//! decodes it to Arrow, and sends it over a bounded channel to the writer.
//! The writer applies each batch to the stream's views, as `INSERT` does,
//! and only then advances the consumer's offsets. While views are slow the
//! channel is full, readers wait, and librdkafka stops fetching once its
//! bounded prefetch queue is full: memory stays bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::batch::{BadMessage, Decoded, MessageBatch, MessageDecoder};
use super::options::{ConsumerOptions, StartOffset};
use super::target::{Decoder, Target};
use super::{Consumer, ErrorSink};
use crate::catalog::StreamEntry;
use crate::ingest::{IngestError, apply_unlogged_batch};
use crate::table::TableEntry;

/// How long a reader waits for a message when its batch is empty.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// First and longest wait between attempts to reach the broker.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a lag query waits for a watermark.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(1);
/// librdkafka's prefetch queue per partition, in KiB.
const PREFETCH_KIB: &str = "8192";

/// A consumer's state and last problem, shared with its librdkafka clients.
#[derive(Debug, Default)]
pub struct StatusCell(Mutex<(String, Option<String>)>);

impl StatusCell {
    /// Sets the state and the detail.
    pub fn set(&self, state: &str, detail: Option<String>) {
        let mut s = self.0.lock();
        if s.0 != state || s.1 != detail {
            *s = (state.to_string(), detail);
        }
    }

    /// The state and the detail.
    pub fn get(&self) -> (String, Option<String>) {
        let s = self.0.lock();
        (if s.0.is_empty() { "starting".to_string() } else { s.0.clone() }, s.1.clone())
    }

    fn running(&self) {
        let mut s = self.0.lock();
        if s.0 != "running" {
            *s = ("running".to_string(), None);
        }
    }
}

/// The librdkafka client context: client-level errors (an unreachable
/// broker, say) become the consumer's status.
#[derive(Debug, Clone)]
pub struct Reporting(Arc<StatusCell>);

impl ClientContext for Reporting {
    fn error(&self, error: RdKafkaError, reason: &str) {
        tracing::debug!("kafka client error: {error}: {reason}");
        self.0.set("retrying", Some(format!("{error}: {reason}")));
    }
}

impl ConsumerContext for Reporting {}

type Client = BaseConsumer<Reporting>;

/// A connected client kept for lag queries and offset commits.
pub type Probe = Arc<Client>;

fn client_config(brokers: &str, group_id: Option<&str>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id.unwrap_or("eddy"))
        .set("client.id", "eddy")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", PREFETCH_KIB)
        .set("fetch.wait.max.ms", "10")
        .set("fetch.queue.backoff.ms", "5")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000")
        .set("log_level", "3");
    config
}

fn new_client(brokers: &str, group_id: Option<&str>, status: Arc<StatusCell>) -> Result<Client, String> {
    client_config(brokers, group_id).create_with_context(Reporting(status)).map_err(|e| e.to_string())
}

/// Connects a client for `status` and asks the broker for the topic's
/// partitions: `None` if the topic does not exist, `Err` if the broker could
/// not be reached. The client can then serve the consumer as its [`Probe`].
pub async fn probe_topic(
    brokers: &str,
    topic: &str,
    group_id: Option<&str>,
    status: Arc<StatusCell>,
    timeout: Duration,
) -> Result<(Probe, Option<Vec<i32>>), String> {
    let client = Arc::new(new_client(brokers, group_id, status)?);
    let found = partitions(client.clone(), topic.to_string(), timeout).await?;
    Ok((client, found))
}

async fn partitions(client: Arc<Client>, topic: String, timeout: Duration) -> Result<Option<Vec<i32>>, String> {
    let lookup = tokio::task::spawn_blocking(move || {
        let metadata = client.fetch_metadata(Some(&topic), timeout).map_err(|e| e.to_string())?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return Ok(None);
        }
        Ok(Some(t.partitions().iter().map(|p| p.id()).collect()))
    });
    lookup.await.map_err(|e| format!("metadata lookup failed: {e}"))?
}

/// The high watermark of each of `partitions`, where the broker answers.
pub fn high_watermarks(probe: &Mutex<Option<Probe>>, topic: &str, partitions: &[i32]) -> BTreeMap<i32, i64> {
    let Some(client) = probe.lock().clone() else {
        return BTreeMap::new();
    };
    partitions
        .iter()
        .filter_map(|&p| client.fetch_watermarks(topic, p, WATERMARK_TIMEOUT).ok().map(|(_, high)| (p, high)))
        .collect()
}

/// Everything one run of a consumer needs.
pub struct Runner {
    /// The consumer.
    pub consumer: Arc<Consumer>,
    /// The stream or table it feeds.
    pub target: Target,
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Cancelled by `consume_end`, `DROP STREAM` and shutdown.
    pub stop: CancellationToken,
    /// Filled with a client once connected.
    pub probe: Arc<Mutex<Option<Probe>>>,
    /// The partitions, if `consume_begin` already found them (with the probe).
    pub partitions: Option<Vec<i32>>,
    /// Where reader threads are tracked.
    pub tasks: TaskTracker,
    /// Where bad messages go.
    pub errors: ErrorSink,
}

impl Runner {
    /// Runs until stopped.
    pub async fn run(mut self) {
        let span = tracing::info_span!("kafka consumer", topic = %self.consumer.topic, stream = %self.consumer.stream);
        async move {
            let options = self.consumer.options();
            let status = self.consumer.status.clone();
            let Some(partitions) = self.find_partitions(&options).await else {
                return;
            };
            let starts = self.start_offsets(&partitions, options.start_offset).await;
            let parallelism = options.parallelism.clamp(1, partitions.len().max(1));
            let (tx, rx) = mpsc::channel::<Decoded>(2 * parallelism);
            let mut readers = Vec::new();
            for group in 0..parallelism {
                let mine: Vec<(i32, Offset)> =
                    starts.iter().enumerate().filter(|(i, _)| i % parallelism == group).map(|(_, s)| *s).collect();
                match self.reader(&options, &mine, tx.clone(), status.clone()) {
                    Ok(handle) => readers.push(handle),
                    Err(e) => {
                        status.set("failed", Some(e));
                        self.stop.cancel();
                    }
                }
            }
            drop(tx);
            if status.get().0 == "starting" {
                status.set("running", None);
            }
            self.write(rx, &options).await;
            self.stop.cancel();
            for r in readers {
                let _ = r.await;
            }
            self.probe.lock().take();
            tracing::info!("consumer stopped");
        }
        .instrument(span)
        .await
    }

    /// The topic's partitions, retrying with backoff until the broker
    /// answers and has the topic; `None` if stopped first.
    async fn find_partitions(&mut self, options: &ConsumerOptions) -> Option<Vec<i32>> {
        if let Some(known) = self.partitions.take() {
            return Some(known);
        }
        let status = self.consumer.status.clone();
        let mut backoff = BACKOFF_MIN;
        loop {
            let client = match new_client(&self.brokers, options.group_id.as_deref(), status.clone()) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    status.set("failed", Some(e));
                    return None;
                }
            };
            match partitions(client.clone(), self.consumer.topic.clone(), super::METADATA_TIMEOUT).await {
                Ok(Some(p)) => {
                    *self.probe.lock() = Some(client);
                    return Some(p);
                }
                Ok(None) => status
                    .set("waiting", Some(format!("topic \"{}\" does not exist on the broker", self.consumer.topic))),
                Err(e) => status.set("retrying", Some(e)),
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Where each partition starts. The beginning and the end are resolved
    /// to numbers where the broker answers, so that `pipeline_kafka.offsets`
    /// and `lag` show every partition from the start.
    async fn start_offsets(&self, partitions: &[i32], start: StartOffset) -> Vec<(i32, Offset)> {
        let stored = self.consumer.offsets();
        let logical: Vec<(i32, Offset)> = partitions
            .iter()
            .map(|&p| {
                let offset = match start {
                    StartOffset::Stored => stored.get(&p).map_or(Offset::Beginning, |&o| Offset::Offset(o)),
                    StartOffset::Latest => Offset::End,
                    StartOffset::Earliest => Offset::Beginning,
                    StartOffset::Exact(n) => Offset::Offset(n),
                };
                (p, offset)
            })
            .collect();
        let Some(client) = self.probe.lock().clone() else {
            return logical;
        };
        let topic = self.consumer.topic.clone();
        let fallback = logical.clone();
        let resolve = move || {
            logical
                .into_iter()
                .map(|(p, offset)| {
                    let marks = || client.fetch_watermarks(&topic, p, WATERMARK_TIMEOUT).ok();
                    let resolved = match offset {
                        Offset::Beginning => marks().map(|(low, _)| Offset::Offset(low)),
                        Offset::End => marks().map(|(_, high)| Offset::Offset(high)),
                        other => Some(other),
                    };
                    (p, resolved.unwrap_or(offset))
                })
                .collect::<Vec<_>>()
        };
        let starts = tokio::task::spawn_blocking(resolve).await.unwrap_or(fallback);
        let known: Vec<(i32, i64)> =
            starts.iter().filter_map(|(p, o)| if let Offset::Offset(n) = o { Some((*p, *n)) } else { None }).collect();
        self.consumer.advance(&known);
        starts
    }

    /// Starts a reader thread for `partitions`.
    fn reader(
        &self,
        options: &ConsumerOptions,
        partitions: &[(i32, Offset)],
        tx: mpsc::Sender<Decoded>,
        status: Arc<StatusCell>,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let client = new_client(&self.brokers, options.group_id.as_deref(), status.clone())?;
        let mut assignment = TopicPartitionList::new();
        for (p, offset) in partitions {
            assignment.add_partition_offset(&self.consumer.topic, *p, *offset).map_err(|e| e.to_string())?;
        }
        client.assign(&assignment).map_err(|e| e.to_string())?;
        let reader = Reader {
            client,
            decoder: self.target.decoder(options),
            tx,
            stop: self.stop.clone(),
            status,
            batch_size: options.batch_size,
            max_bytes: options.max_bytes,
            linger: Duration::from_millis(options.timeout_ms),
        };
        let span = tracing::Span::current();
        Ok(self.tasks.spawn_blocking(move || span.in_scope(|| reader.run())))
    }

    /// Applies decoded batches in order, each with its offsets.
    async fn write(&self, mut rx: mpsc::Receiver<Decoded>, options: &ConsumerOptions) {
        let consumer = &self.consumer;
        loop {
            let mut decoded = tokio::select! {
                _ = self.stop.cancelled() => break,
                d = rx.recv() => match d {
                    Some(d) => d,
                    None => break,
                },
            };
            if !self.wait_for_memory().await {
                break;
            }
            let bad = std::mem::take(&mut decoded.bad);
            if !bad.is_empty() {
                self.errors.bad_messages(consumer, bad);
            }
            let applied = match &self.target {
                Target::Stream(stream) => self.write_stream(stream, &mut decoded, options).await,
                Target::Table(table) => self.write_table(table, &mut decoded).await,
            };
            if let Err(e) = applied {
                // The batch did not reach every view (the server is
                // stopping, or a view was dropped under it): the offsets
                // stay, and the batch is read again.
                self.errors.failed_batch(consumer, &decoded.next_offsets, e.to_string());
                if !self.stop.is_cancelled() {
                    let detail =
                        format!("stopped without moving its offsets, so consume_begin reads the batch again: {e}");
                    consumer.status.set("failed", Some(detail));
                }
                break;
            }
            if options.group_id.is_some() {
                self.commit(&decoded.next_offsets);
            }
        }
    }

    /// Waits while the state is over `--max-state-memory-mb`, with the
    /// consumer's status saying so; the offsets stay where they are, and
    /// the readers stop once the channel is full. False if the consumer is
    /// stopped meanwhile.
    async fn wait_for_memory(&self) -> bool {
        let durability = match &self.target {
            Target::Stream(stream) => stream.durability(),
            Target::Table(table) => table.durability(),
        };
        let mut paused = false;
        while let Err(over) = durability.budget().check() {
            if !paused {
                tracing::warn!("{over}; the consumer waits");
                paused = true;
            }
            self.consumer.status.set("paused", Some(over.to_string()));
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(crate::observe::budget::MEASURE_EVERY) => {}
            }
        }
        if paused {
            self.consumer.status.set("running", None);
        }
        true
    }

    /// Moves the offsets past `decoded`, and counts it.
    fn advance(&self, decoded: &Decoded, rows: u64) {
        // Counted before the offsets move, so that whoever sees the offsets
        // sees the counts.
        let stats = &self.consumer.stats;
        stats.rows.fetch_add(rows, Ordering::Relaxed);
        stats.messages.fetch_add(decoded.messages, Ordering::Relaxed);
        self.consumer.count_partition_messages(&decoded.partition_messages);
        stats.bytes.fetch_add(decoded.bytes, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        self.consumer.advance(&decoded.next_offsets);
    }

    /// Appends a batch's rows to the stream. The rows and the offsets move
    /// together past a checkpoint's barrier.
    async fn write_stream(
        &self,
        stream: &Arc<StreamEntry>,
        decoded: &mut Decoded,
        options: &ConsumerOptions,
    ) -> Result<(), IngestError> {
        let durability = stream.durability().clone();
        let _admitted = durability.admit().await;
        let mut applied = 0;
        if let Some(rows) = decoded.rows.take() {
            let n = rows.num_rows() as u64;
            applied = match apply_unlogged_batch(stream, rows).await {
                Ok(()) => n,
                Err(IngestError::ViewFailed { .. }) => self.apply_each(stream, decoded, options).await?,
                Err(e) => return Err(e),
            };
        }
        self.advance(decoded, applied);
        Ok(())
    }

    /// Upserts and deletes a batch's keys in the table; the offsets move
    /// inside the table's write (see [`crate::table::write::upsert`]).
    async fn write_table(&self, table: &Arc<TableEntry>, decoded: &mut Decoded) -> Result<(), IngestError> {
        let (Some(rows), Some(keyed)) = (decoded.rows.take(), decoded.keyed.take()) else {
            let durability = table.durability().clone();
            let _admitted = durability.admit().await;
            self.advance(decoded, 0);
            return Ok(());
        };
        let n = rows.num_rows() as u64;
        let done = &*decoded;
        match crate::table::write::upsert(table, &rows, &keyed.deleted, || self.advance(done, n)).await {
            Err(IngestError::ViewFailed { .. }) => {}
            other => return other,
        }
        // Some view failed on a row, and so nothing was applied: the rows
        // are applied in halves, down to the messages a view cannot apply.
        let (rows, keyed) = (&rows, &keyed);
        let apply = |r: std::ops::Range<usize>| -> BoxFuture<'_, Result<u64, IngestError>> {
            Box::pin(async move {
                let part = rows.slice(r.start, r.len());
                crate::table::write::upsert(table, &part, &keyed.deleted[r.clone()], || {})
                    .await
                    .map(|()| r.len() as u64)
            })
        };
        let (applied, bad) = bisect(keyed.message.len(), apply).await?;
        self.report(&decoded.source, bad.into_iter().map(|(r, e)| (keyed.message[r], e)));
        let durability = table.durability().clone();
        let _admitted = durability.admit().await;
        self.advance(decoded, applied);
        Ok(())
    }

    /// Applies a batch that some view could not apply (and so no view did)
    /// in halves, down to the messages a view cannot apply, which are
    /// reported with their offsets; the others are applied. Returns the
    /// rows applied; an error other than a view's stops it.
    async fn apply_each(
        &self,
        stream: &Arc<StreamEntry>,
        decoded: &Decoded,
        options: &ConsumerOptions,
    ) -> Result<u64, IngestError> {
        let decoder = MessageDecoder::new(&options.format, stream.def.schema.clone());
        let source = &decoded.source;
        // Bad messages were reported when the batch was decoded.
        let parts: Vec<(usize, RecordBatch)> = (0..source.len())
            .filter_map(|i| decoder.decode_message(source, i).ok().flatten().map(|r| (i, r)))
            .collect();
        let parts = &parts;
        let schema = stream.def.schema.clone();
        let apply = |r: std::ops::Range<usize>| -> BoxFuture<'_, Result<u64, IngestError>> {
            let schema = schema.clone();
            Box::pin(async move {
                let batch = concat_batches(&schema, parts[r].iter().map(|(_, b)| b))
                    .map_err(|e| IngestError::Internal(format!("could not join messages: {e}")))?;
                let n = batch.num_rows() as u64;
                apply_unlogged_batch(stream, batch).await.map(|()| n)
            })
        };
        let (applied, bad) = bisect(parts.len(), apply).await?;
        self.report(source, bad.into_iter().map(|(p, e)| (parts[p].0, e)));
        Ok(applied)
    }

    /// Reports messages (by index in `source`) that a view could not apply.
    fn report(&self, source: &MessageBatch, bad: impl Iterator<Item = (usize, IngestError)>) {
        let bad: Vec<BadMessage> = bad.map(|(i, e)| BadMessage::new(source, i, e.to_string())).collect();
        if !bad.is_empty() {
            self.errors.bad_messages(&self.consumer, bad);
        }
    }

    /// Commits offsets to Kafka for monitoring tools; Eddy never reads them back.
    fn commit(&self, next: &[(i32, i64)]) {
        let Some(client) = self.probe.lock().clone() else {
            return;
        };
        let mut list = TopicPartitionList::new();
        for (p, o) in next {
            if list.add_partition_offset(&self.consumer.topic, *p, Offset::Offset(*o)).is_err() {
                return;
            }
        }
        if let Err(e) = client.commit(&list, CommitMode::Async) {
            tracing::debug!("offset commit for monitoring failed: {e}");
        }
    }
}

/// One reader thread: polls, batches, decodes, sends.
struct Reader {
    client: Client,
    decoder: Decoder,
    tx: mpsc::Sender<Decoded>,
    stop: CancellationToken,
    status: Arc<StatusCell>,
    batch_size: usize,
    max_bytes: usize,
    linger: Duration,
}

impl Reader {
    fn run(self) {
        let mut batch = MessageBatch::default();
        let mut first_at: Option<Instant> = None;
        while !self.stop.is_cancelled() {
            let wait = first_at.map_or(IDLE_POLL, |t| self.linger.saturating_sub(t.elapsed()));
            match self.client.poll(wait) {
                Some(Ok(m)) => {
                    batch.push_keyed(m.partition(), m.offset(), m.key(), m.payload());
                    first_at.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => self.status.set("retrying", Some(e.to_string())),
                None => {}
            }
            let full = batch.len() >= self.batch_size || batch.bytes() >= self.max_bytes;
            let due = first_at.is_some_and(|t| t.elapsed() >= self.linger);
            if batch.is_empty() || !(full || due) {
                continue;
            }
            self.status.running();
            let decoded = match self.decoder.decode(&batch) {
                Ok(d) => d,
                Err(e) => {
                    self.status.set("failed", Some(format!("could not decode a batch: {e}")));
                    return;
                }
            };
            let mut decoded = decoded;
            decoded.source = std::mem::take(&mut batch);
            first_at = None;
            if self.tx.blocking_send(decoded).is_err() {
                return;
            }
        }
    }
}

/// Applies items `0..n`, in order, through `apply` (which says how many
/// rows it applied). A range that a view fails on is split in halves, down
/// to single items, which are returned as bad: one bad message in a batch
/// of 2,000 costs about 22 applies instead of 2,000.
async fn bisect<'a>(
    n: usize,
    mut apply: impl FnMut(std::ops::Range<usize>) -> BoxFuture<'a, Result<u64, IngestError>>,
) -> Result<(u64, Vec<(usize, IngestError)>), IngestError> {
    let mut pending: Vec<std::ops::Range<usize>> = Vec::with_capacity(64);
    pending.push(0..n);
    let (mut applied, mut bad) = (0, Vec::new());
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        match apply(range.clone()).await {
            Ok(rows) => applied += rows,
            Err(e @ IngestError::ViewFailed { .. }) if range.len() == 1 => bad.push((range.start, e)),
            Err(IngestError::ViewFailed { .. }) => {
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((applied, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bisect_finds_the_bad_items_in_order_with_few_applies() {
        let bad_items = [3usize, 1500];
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let seen = Mutex::new(Vec::new());
        let apply = |r: std::ops::Range<usize>| -> BoxFuture<'_, Result<u64, IngestError>> {
            calls.fetch_add(1, Ordering::Relaxed);
            let (seen, bad) = (&seen, &bad_items);
            Box::pin(async move {
                if bad.iter().any(|b| r.contains(b)) {
                    let source = Arc::new(datafusion::error::DataFusionError::Execution("divide by zero".into()));
                    return Err(IngestError::ViewFailed { view: "v".into(), source });
                }
                seen.lock().extend(r.clone());
                Ok(r.len() as u64)
            })
        };
        let (applied, bad) = bisect(2000, apply).await.unwrap();
        assert_eq!(applied, 1998);
        assert_eq!(bad.iter().map(|(i, _)| *i).collect::<Vec<_>>(), bad_items);
        let seen = seen.into_inner();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "applied in order");
        assert!(calls.load(Ordering::Relaxed) < 60, "{} applies", calls.load(Ordering::Relaxed));
    }
}
