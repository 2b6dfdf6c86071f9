//! A sink's task: what it writes, and how it recovers.
//!
//! **Exactly once.** The topic itself is the sink's progress. On start, the
//! sink's transactional producer fences any earlier one (its open
//! transaction is aborted), then the sink reads the topic back, committed
//! messages only, into what the topic says the relation holds
//! ([`Sent`]). It subscribes to the relation, and writes, in one
//! transaction, exactly the difference between the topic and the
//! relation's contents. After that each batch of epochs the subscription
//! delivers is one transaction. A crash at any point leaves the topic at
//! the end of some committed transaction, and the next start writes only
//! what is missing: no gap and no duplicate, for a `read_committed`
//! consumer. The relation's contents after a crash are exact (views and
//! tables survive `kill -9` exactly), so the difference is too.
//!
//! A stream or derived stream has no contents to compare: its sink keeps
//! an outbox of numbered events, saved with each checkpoint, and writes
//! each event after a checkpoint holds it ([`super::outbox`]).
//!
//! **Durable first.** A change is written only once no crash can undo it
//! (`crate::checkpoint::durable_epochs`): at once for a logged write, after
//! the next checkpoint for a Kafka batch, which recovery would otherwise
//! consume again and the sink retract and write twice.
//!
//! **Failures.** Any Kafka failure ends the session: the sink shows
//! `retrying` with the error, waits (1 s, doubling to 30 s), and starts
//! again from the top. Views and ingestion never wait for a sink; a sink
//! that falls more than the subscription's buffer behind starts again too.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::envelope::{self, Change, Message, Sent};
use super::kafka::{self, Output};
use super::outbox::{self, Outbox};
use super::{Sink, SinkError};
use crate::catalog::Catalog;
use crate::push::{PushError, Subscription};
use datafusion::arrow::datatypes::FieldRef;

/// The first wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Changed rows gathered into one transaction at most (more epochs wait for the next).
const MAX_BATCH_ROWS: usize = 50_000;

/// How a session ended without a failure.
enum End {
    /// The relation was dropped.
    Dropped,
}

/// Runs `sink` until it is dropped or the server shuts down.
pub async fn run(sink: Arc<Sink>, catalog: Arc<Catalog>, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    // What the topic holds, when known (for a relation with contents).
    let mut sent: Option<Sent> = None;
    loop {
        let outcome = tokio::select! {
            _ = sink.stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
            outcome = session(&sink, &catalog, &mut sent, &mut backoff) => outcome,
        };
        match outcome {
            Ok(End::Dropped) => {
                sink.update(|s| s.state = "stopped");
                break;
            }
            Err(e) => {
                tracing::warn!(sink = %sink.name, "sink failed, retrying in {backoff:?}: {e}");
                sink.update(|s| {
                    s.state = "retrying";
                    s.last_error = Some(e.to_string());
                });
                tokio::select! {
                    _ = sink.stop.cancelled() => break,
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SinkError::Internal(format!("a sink's Kafka call ended: {e}")))?
}

/// One run: connect, catch the topic up, then follow the relation.
async fn session(
    sink: &Arc<Sink>,
    catalog: &Catalog,
    sent: &mut Option<Sent>,
    backoff: &mut Duration,
) -> Result<End, SinkError> {
    sink.update(|s| {
        s.state = "starting";
        s.lag = 0;
    });
    let options = &sink.options;
    let (brokers, topic, id) = (options.brokers.clone(), options.topic.clone(), sink.transactional_id());
    let (partitions, envelope) = (options.partitions, options.envelope);
    let output = blocking(move || {
        // The admin client is made and dropped here too: both block.
        futures::executor::block_on(kafka::ensure_topic(&brokers, &topic, partitions, envelope))?;
        Output::connect(&brokers, &topic, id.as_deref())
    })
    .await?;
    let output = OffRuntime(Some(Arc::new(output)));
    let output = output.get()?;
    let Some(relation) = catalog.relation(&sink.relation) else {
        return Ok(End::Dropped);
    };
    if let Some(outbox) = &sink.outbox {
        return drain(sink, catalog, output, &outbox.events, backoff).await;
    }
    let stateful = !relation.is_stream_like();
    let epoch = catalog.durability().last_epoch();
    let mut subscription =
        relation.subscribe(stateful, epoch).await.map_err(|e| SinkError::Kafka(format!("cannot subscribe: {e}")))?;
    let schema = subscription.schema();
    let keys = key_indexes(sink, &schema.fields()[2..])?;
    let columns = written_columns(&schema.fields()[2..], stateful);
    let shape = Shape { columns: &columns, keys: keys.as_deref() };
    if stateful {
        // The snapshot holds writes merged before it, whose epochs were
        // all given out by now.
        catalog.durability().wait_durable(catalog.durability().last_epoch()).await;
        catch_up(sink, output, &mut subscription, shape, sent).await?;
    }
    sink.update(|s| {
        s.state = "running";
        s.last_error = None;
    });
    *backoff = MIN_BACKOFF;
    loop {
        let Some(batch) = next_batch(&mut subscription, shape).await? else {
            return Ok(End::Dropped);
        };
        // Lag counts the batch being written too, so 0 means all written.
        let lag = (batch.rows + subscription.pending_rows()) as u64;
        sink.update(|s| s.lag = lag);
        // A change a crash could still undo never reaches the topic.
        catalog.durability().wait_durable(batch.last_epoch).await;
        write(sink, output, messages(options.envelope, stateful, &batch.epochs), sent).await?;
        if stateful && let Some(sent) = sent.as_mut() {
            batch.epochs.iter().for_each(|changes| sent.apply(changes));
        }
        let lag = subscription.pending_rows() as u64;
        sink.update(|s| s.lag = lag);
    }
}

/// A stream's sink: aligns the outbox with the topic, then writes its
/// events once a checkpoint saved them, each batch in one transaction with
/// the events' numbers (see [`super::outbox`]).
async fn drain(
    sink: &Sink,
    catalog: &Catalog,
    output: &Arc<Output>,
    outbox: &Outbox,
    backoff: &mut Duration,
) -> Result<End, SinkError> {
    let (brokers, topic) = (sink.options.brokers.clone(), sink.options.topic.clone());
    let last = blocking(move || kafka::last_seq(&brokers, &topic)).await?;
    outbox.anchor(last, sink.options.exactly_once);
    tracing::info!(sink = %sink.name, last_in_topic = ?last, waiting = outbox.len(), "sink follows its stream");
    sink.update(|s| {
        s.state = "running";
        s.last_error = None;
    });
    *backoff = MIN_BACKOFF;
    let durability = catalog.durability();
    loop {
        // Made before looking, so that nothing added or saved meanwhile is missed.
        let (arrived, saved) = (outbox.arrived(), durability.checkpoint_completed());
        let Some(taken) = outbox.take(durability.saved_capture(), MAX_BATCH_ROWS) else {
            let dropped = outbox.dropped();
            if dropped > 0 {
                sink.update(|s| {
                    s.last_error = Some(format!(
                        "{dropped} events were not written: the sink fell more than {} events behind its stream",
                        outbox::MAX_ROWS
                    ))
                });
            }
            tokio::select! {
                _ = arrived => {}
                _ = saved => {}
            }
            continue;
        };
        let Some(fields) = taken.rows.first().map(|r| r.schema().fields().clone()) else {
            continue;
        };
        let keys = key_indexes(sink, &fields)?;
        let columns = written_columns(&fields, false);
        let changes: Vec<Change> =
            taken.rows.iter().flat_map(|rows| envelope::inserted(rows, &columns, keys.as_deref())).collect();
        let messages = envelope::events(&changes);
        let (out, first, n) = (output.clone(), taken.first, messages.len() as u64);
        blocking(move || out.write(&messages, Some(first))).await?;
        outbox.trim(first.saturating_add(n));
        sink.update(|s| {
            s.messages += n;
            s.transactions += 1;
        });
    }
}

/// Epochs gathered for one transaction.
struct Batch {
    /// Each epoch's changes, in order.
    epochs: Vec<Vec<Change>>,
    /// The newest epoch among them.
    last_epoch: u64,
    /// Changed rows in all.
    rows: usize,
}

/// Waits for the next epoch, then takes those waiting behind it, up to
/// [`MAX_BATCH_ROWS`] rows; `None` once the relation is dropped.
async fn next_batch(subscription: &mut Subscription, shape: Shape<'_>) -> Result<Option<Batch>, SinkError> {
    let first = match subscription.next().await {
        Ok(batch) => batch,
        Err(PushError::Ended(_)) => return Ok(None),
        Err(e) => return Err(SinkError::Kafka(format!("the sink fell behind its relation: {e}"))),
    };
    let changes = shape.changes(&first)?;
    let mut batch = Batch { rows: changes.len(), epochs: vec![changes], last_epoch: epoch_of(&first) };
    while batch.rows < MAX_BATCH_ROWS {
        match subscription.try_next() {
            Some(Ok(next)) => {
                let changes = shape.changes(&next)?;
                batch.rows += changes.len();
                batch.last_epoch = batch.last_epoch.max(epoch_of(&next));
                batch.epochs.push(changes);
            }
            // Ended or cut off: the next `next()` says so.
            Some(Err(_)) | None => break,
        }
    }
    Ok(Some(batch))
}

/// Reads the topic back (unless known), then writes what it lacks of the
/// relation's contents, the subscription's first epoch.
async fn catch_up(
    sink: &Sink,
    output: &Arc<Output>,
    subscription: &mut Subscription,
    shape: Shape<'_>,
    sent: &mut Option<Sent>,
) -> Result<(), SinkError> {
    let topic_holds = match sent.take() {
        Some(known) => known,
        None => {
            let (brokers, topic, envelope) =
                (sink.options.brokers.clone(), sink.options.topic.clone(), sink.options.envelope);
            blocking(move || kafka::read_topic(&brokers, &topic, envelope)).await?
        }
    };
    let contents: Vec<Change> = match subscription.has_snapshot() {
        true => shape.changes(
            &subscription.next().await.map_err(|e| SinkError::Kafka(format!("cannot read the snapshot: {e}")))?,
        )?,
        false => Vec::new(),
    };
    let target = Sent::of(&contents);
    let missing = topic_holds.changes_to(&target);
    tracing::info!(sink = %sink.name, topic_rows = topic_holds.len(), rows = target.len(), writing = missing.len(), "sink catching up");
    // Until the writes are known to be committed, what the topic holds is
    // not known: `sent` stays empty, and a failure reads the topic again.
    // Each transaction is bounded; a crash between two leaves a topic whose
    // difference with the relation the next start writes.
    let mut rest = envelope::encode(sink.options.envelope, &missing);
    while !rest.is_empty() {
        let tail = if rest.len() > MAX_BATCH_ROWS { rest.split_off(MAX_BATCH_ROWS) } else { Vec::new() };
        write(sink, output, rest, &mut None).await?;
        rest = tail;
    }
    *sent = Some(target);
    Ok(())
}

/// The messages of a batch of epochs. Upserts are consolidated across the
/// batch (the last row of each key wins, in epoch order); append and
/// debezium messages are made epoch by epoch, so that a row added in one
/// epoch and removed in the next is two changes, in order.
fn messages(envelope: envelope::Envelope, stateful: bool, epochs: &[Vec<Change>]) -> Vec<Message> {
    match (stateful, envelope) {
        (false, _) => epochs.iter().flat_map(|changes| envelope::events(changes)).collect(),
        (true, envelope::Envelope::Upsert) => envelope::encode(envelope, &epochs.concat()),
        (true, _) => epochs.iter().flat_map(|changes| envelope::encode(envelope, changes)).collect(),
    }
}

/// The sink's producer, dropped on the blocking pool (librdkafka's destroy
/// blocks) when the session ends, however it ends.
struct OffRuntime(Option<Arc<Output>>);

impl OffRuntime {
    fn get(&self) -> Result<&Arc<Output>, SinkError> {
        // Set at creation, taken only in drop.
        self.0.as_ref().ok_or_else(|| SinkError::Internal("the sink's producer is gone".into()))
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(output) = self.0.take() {
            kafka::drop_off_runtime(output);
        }
    }
}

/// Writes `messages` in one transaction; on failure, forgets what the
/// topic holds (it is read again on the next start).
async fn write(
    sink: &Sink,
    output: &Arc<Output>,
    messages: Vec<Message>,
    sent: &mut Option<Sent>,
) -> Result<(), SinkError> {
    if messages.is_empty() {
        return Ok(());
    }
    let n = messages.len() as u64;
    let out = output.clone();
    if let Err(e) = blocking(move || out.write(&messages, None)).await {
        *sent = None;
        return Err(e);
    }
    sink.update(|s| {
        s.messages += n;
        s.transactions += 1;
    });
    Ok(())
}

/// The epoch of a subscription's batch (its first column).
fn epoch_of(batch: &datafusion::arrow::array::RecordBatch) -> u64 {
    use datafusion::arrow::array::{Array, Int64Array};
    let epochs = batch.column(0).as_any().downcast_ref::<Int64Array>();
    epochs.filter(|e| !e.is_empty()).map_or(0, |e| u64::try_from(e.value(0)).unwrap_or(0))
}

/// Which of the relation's columns a message holds, and which are its key.
#[derive(Clone, Copy)]
struct Shape<'a> {
    columns: &'a [usize],
    keys: Option<&'a [usize]>,
}

impl Shape<'_> {
    fn changes(&self, batch: &datafusion::arrow::array::RecordBatch) -> Result<Vec<Change>, SinkError> {
        envelope::changes(batch, self.columns, self.keys)
    }
}

/// The relation's columns (`fields`) a message holds: all of them, but a
/// stream's `arrival_timestamp` (the time Eddy received the event, not
/// part of it).
fn written_columns(fields: &[FieldRef], stateful: bool) -> Vec<usize> {
    let arrival = crate::catalog::ARRIVAL_TIMESTAMP;
    (0..fields.len()).filter(|&i| stateful || fields[i].name() != arrival).collect()
}

/// The key columns' positions among the relation's columns (`fields`).
fn key_indexes(sink: &Sink, fields: &[FieldRef]) -> Result<Option<Vec<usize>>, SinkError> {
    let Some(names) = &sink.key else {
        return Ok(None);
    };
    let columns: Vec<&String> = fields.iter().map(|f| f.name()).collect();
    names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| SinkError::UndefinedColumn { relation: sink.relation.clone(), column: name.clone() })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::Envelope;

    #[test]
    fn a_row_added_then_removed_in_one_batch_is_two_changes() {
        let change = |weight| Change { key: Some(r#"{"k":1}"#.into()), row: r#"{"k":1,"n":1}"#.into(), weight };
        let epochs = vec![vec![change(1)], vec![change(-1)]];
        let ops = |envelope| -> Vec<String> {
            messages(envelope, true, &epochs)
                .iter()
                .map(|m| String::from_utf8(m.payload.clone().unwrap_or_default()).unwrap_or_default())
                .collect()
        };
        let debezium = ops(Envelope::Debezium);
        assert_eq!(debezium.len(), 2);
        assert!(debezium[0].ends_with(r#""op":"c"}"#) && debezium[1].ends_with(r#""op":"d"}"#), "{debezium:?}");
        assert_eq!(ops(Envelope::Append), [r#"{"diff":1,"k":1,"n":1}"#, r#"{"diff":-1,"k":1,"n":1}"#]);
        // Upserts are consolidated: the key ends removed.
        assert_eq!(ops(Envelope::Upsert), [""]);
    }
}
