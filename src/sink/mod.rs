//! Kafka sinks: a view's (or table's) contents, then its changes, written
//! to a Kafka topic exactly once (`CREATE SINK s FROM v WITH (...)`).
//!
//! - [`options`]: the `WITH (...)` options.
//! - [`envelope`]: changes as messages (upsert, append, debezium), and what
//!   a topic holds, read back from its messages.
//! - [`kafka`]: the topic, the transactional producer, the topic reader.
//! - [`outbox`]: a stream's sink's events yet to write, kept with the
//!   checkpoints.
//! - [`relations`]: the `pipelinedb.sinks` relation.
//! - [`task`]: one task per sink: subscribe, catch the topic up, then one
//!   transaction per batch of epochs; retry with backoff on failure.
//!
//! [`Sinks`] owns the sinks by name. It sits above the catalog (it reads
//! relations through their subscriptions) and beside `crate::ingest::kafka`,
//! Kafka's way in.

pub mod envelope;
pub mod kafka;
pub mod options;
pub mod outbox;
pub mod relations;
pub mod task;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::{Catalog, Relation};
use crate::checkpoint::manifest::{OutboxRecord, SinkRecord, StateFile};
use datafusion::arrow::array::RecordBatch;
use options::SinkOptions;
use outbox::Outbox;

/// Why a sink could not be made, dropped or run.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An option is missing or wrong.
    #[error("{0}")]
    InvalidOption(String),
    /// Something sinks do not do.
    #[error("{0}")]
    Unsupported(String),
    /// `key` names a column the relation does not have.
    #[error("column \"{column}\" of sink key does not exist in \"{relation}\"")]
    UndefinedColumn {
        /// The relation.
        relation: String,
        /// The column.
        column: String,
    },
    /// `CREATE SINK` of a name in use.
    #[error("sink \"{0}\" already exists")]
    Duplicate(String),
    /// `DROP SINK` of a name not in use.
    #[error("sink \"{0}\" does not exist; see SHOW SINKS")]
    Undefined(String),
    /// Dropping a relation that a sink reads, without CASCADE.
    #[error(
        "cannot drop \"{relation}\" because sink \"{sink}\" reads it; DROP SINK {sink} first, or use DROP ... CASCADE"
    )]
    Dependent {
        /// The relation.
        relation: String,
        /// The sink.
        sink: String,
    },
    /// `DROP SINK` of the sink a CSAS or CTAS made.
    #[error(
        "sink \"{sink}\" belongs to \"{relation}\" (made with it by CREATE ... WITH (kafka_topic) AS SELECT); drop \"{relation}\" instead"
    )]
    Owned {
        /// The sink.
        sink: String,
        /// Its relation.
        relation: String,
    },
    /// Kafka failed (the sink retries).
    #[error("{0}")]
    Kafka(String),
    /// The topic holds messages the sink cannot read back.
    #[error("the sink's topic holds a message it cannot read: {0}")]
    Topic(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a sink is doing, as `pipelinedb.sinks` shows it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// `starting`, `running`, `retrying` or `stopped`.
    pub state: &'static str,
    /// Messages written (committed).
    pub messages: u64,
    /// Transactions committed (writes, without transactions).
    pub transactions: u64,
    /// The last failure, while retrying or stopped.
    pub last_error: Option<String>,
    /// Changed rows waiting to be written.
    pub lag: u64,
}

/// One sink.
#[derive(Debug)]
pub struct Sink {
    /// Its name.
    pub name: String,
    /// The relation it reads.
    pub relation: String,
    /// Its options, as given (what a checkpoint records).
    pub raw_options: Vec<(String, String)>,
    /// Its settings.
    pub options: SinkOptions,
    /// The key columns messages are keyed by (none: no key).
    pub key: Option<Vec<String>>,
    /// Made with its relation (CSAS, CTAS), and dropped with it.
    pub owned: bool,
    /// A stream's sink: the events it has yet to write.
    pub outbox: Option<StreamOutbox>,
    status: Mutex<Status>,
    stop: CancellationToken,
}

/// A stream's sink's outbox, and how it follows the stream.
#[derive(Debug)]
pub struct StreamOutbox {
    /// Its state directory's number (a relation number), given at the first
    /// checkpoint that saves it.
    id: Mutex<Option<u64>>,
    /// The events.
    pub events: Arc<Outbox>,
    /// Its number among the stream's followers, while it follows.
    following: Mutex<Option<u64>>,
}

impl Sink {
    /// Its status now.
    pub fn status(&self) -> Status {
        let mut status = self.status.lock().clone();
        if let Some(outbox) = &self.outbox {
            status.lag = outbox.events.len() as u64;
        }
        status
    }

    fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.lock());
    }

    /// Its record for the checkpoint.
    pub fn record(&self) -> SinkRecord {
        SinkRecord {
            name: self.name.clone(),
            relation: self.relation.clone(),
            options: self.raw_options.clone(),
            owned: self.owned,
            outbox: None,
        }
    }

    /// Its record for checkpoint capture `capture`, taken at the barrier,
    /// with its outbox's events to save (`files` gives a relation number's
    /// files in the last checkpoint; `force` saves the events even if
    /// unchanged; `new_id` numbers a new outbox).
    fn capture(
        &self,
        files: &dyn Fn(u64) -> Option<Vec<StateFile>>,
        force: bool,
        capture: u64,
        new_id: &dyn Fn() -> u64,
    ) -> (SinkRecord, Option<Vec<RecordBatch>>) {
        let mut record = self.record();
        let Some(outbox) = &self.outbox else {
            return (record, None);
        };
        let id = *outbox.id.lock().get_or_insert_with(new_id);
        let image = outbox.events.image(capture, force);
        let kept = match image.rows {
            None => files(id).unwrap_or_default(),
            Some(_) => Vec::new(),
        };
        record.outbox = Some(OutboxRecord { id, first: image.first, anchored: image.anchored, files: kept });
        (record, image.rows)
    }

    /// Takes back its outbox as a checkpoint saved it (recovery, before it
    /// follows its stream).
    pub fn load_outbox(&self, record: &OutboxRecord, rows: Vec<RecordBatch>) {
        if let Some(outbox) = &self.outbox {
            *outbox.id.lock() = Some(record.id);
            outbox.events.load(record.first, record.anchored, rows);
        }
    }

    /// The transactional id of its producer: one per sink, so that a
    /// restarted sink fences the one before it.
    pub fn transactional_id(&self) -> Option<String> {
        self.options.exactly_once.then(|| format!("eddy-sink-{}", self.name))
    }
}

/// The sinks, by name.
#[derive(Debug)]
pub struct Sinks {
    sinks: Mutex<BTreeMap<String, Arc<Sink>>>,
    catalog: Arc<Catalog>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Sinks {
    /// No sinks; their tasks go to `tasks` and stop on `shutdown`.
    pub fn new(catalog: Arc<Catalog>, tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        Self { sinks: Mutex::new(BTreeMap::new()), catalog, tasks, shutdown }
    }

    /// Checks a sink's definition against the catalog and makes it (not
    /// started). `added_brokers` stand in for a missing `kafka_brokers`.
    pub fn define(&self, record: &SinkRecord, added_brokers: &[String]) -> crate::error::Result<Arc<Sink>> {
        let relation = self
            .catalog
            .relation(&record.relation)
            .ok_or_else(|| crate::catalog::CatalogError::UndefinedRelation(record.relation.clone()))?;
        let (columns, own_key) = columns_and_key(&relation)?;
        let options = SinkOptions::parse(&record.options, added_brokers, own_key.is_some())?;
        check_shape(&record.relation, &relation, &columns, &options)?;
        let key = match &options.key {
            Some(names) => {
                if let Some(missing) = names.iter().find(|n| !columns.contains(n)) {
                    return Err(SinkError::UndefinedColumn {
                        relation: record.relation.clone(),
                        column: missing.clone(),
                    }
                    .into());
                }
                Some(names.clone())
            }
            None => own_key,
        };
        // What the sink records: the brokers it was made with, so that a
        // restart writes where it wrote before.
        let mut raw_options = record.options.clone();
        if !raw_options.iter().any(|(k, _)| k == "kafka_brokers" || k == "brokers") {
            raw_options.push(("kafka_brokers".into(), options.brokers.clone()));
        }
        let outbox = relation.is_stream_like().then(|| StreamOutbox {
            id: Mutex::new(None),
            events: Arc::new(Outbox::new()),
            following: Mutex::new(None),
        });
        Ok(Arc::new(Sink {
            name: record.name.clone(),
            relation: record.relation.clone(),
            raw_options,
            options,
            key,
            owned: record.owned,
            outbox,
            status: Mutex::new(Status { state: "starting", ..Status::default() }),
            stop: CancellationToken::new(),
        }))
    }

    /// Checks and starts the sink `record` describes (`CREATE SINK`, or a
    /// CSAS's or CTAS's own). `added_brokers` stand in for a missing
    /// `kafka_brokers`.
    pub fn create(&self, record: &SinkRecord, added_brokers: &[String]) -> crate::error::Result<()> {
        let sink = self.define(record, added_brokers)?;
        Ok(self.add(sink, true)?)
    }

    /// Adds `sink`; starts it unless `start` is false (a restore, started
    /// once recovery is done).
    pub fn add(&self, sink: Arc<Sink>, start: bool) -> Result<(), SinkError> {
        {
            let mut sinks = self.sinks.lock();
            if sinks.contains_key(&sink.name) {
                return Err(SinkError::Duplicate(sink.name.clone()));
            }
            // A sink reads its topic back as its own progress: two on one topic would take each other's messages for theirs.
            if let Some(other) = sinks
                .values()
                .find(|s| s.options.topic == sink.options.topic && s.options.brokers == sink.options.brokers)
            {
                return Err(SinkError::InvalidOption(format!(
                    "sink \"{}\" already writes topic \"{}\"; each sink needs a topic of its own",
                    other.name, sink.options.topic
                )));
            }
            sinks.insert(sink.name.clone(), sink.clone());
        }
        // From here on, the stream's events go to the outbox too.
        if let Some(outbox) = &sink.outbox
            && let Some(relation) = self.catalog.relation(&sink.relation)
        {
            *outbox.following.lock() = relation.follow(outbox.events.clone());
        }
        if start {
            self.start(sink);
        }
        Ok(())
    }

    fn start(&self, sink: Arc<Sink>) {
        let (catalog, shutdown) = (self.catalog.clone(), self.shutdown.clone());
        let span = tracing::info_span!("sink", name = %sink.name);
        self.tasks.spawn(tracing::Instrument::instrument(task::run(sink, catalog, shutdown), span));
    }

    /// Starts every sink (after recovery).
    pub fn start_all(&self) {
        for sink in self.list() {
            self.start(sink);
        }
    }

    /// `DROP SINK`: refuses the sink of a CSAS or CTAS, which goes with its relation.
    pub fn drop_by_user(&self, name: &str) -> Result<(), SinkError> {
        if let Some(sink) = self.sinks.lock().get(name).filter(|s| s.owned) {
            return Err(SinkError::Owned { sink: name.to_string(), relation: sink.relation.clone() });
        }
        self.drop_sink(name)
    }

    /// Stops and forgets sink `name`.
    pub fn drop_sink(&self, name: &str) -> Result<(), SinkError> {
        let sink = self.sinks.lock().remove(name).ok_or_else(|| SinkError::Undefined(name.to_string()))?;
        if let Some(outbox) = &sink.outbox
            && let Some(id) = outbox.following.lock().take()
            && let Some(relation) = self.catalog.relation(&sink.relation)
        {
            relation.unfollow(id);
        }
        sink.stop.cancel();
        Ok(())
    }

    /// Whether sink `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.sinks.lock().contains_key(name)
    }

    /// Refuses to drop `relation` (without CASCADE) while a sink reads it;
    /// its own sink (CSAS, CTAS) goes with it.
    pub fn check_drop(&self, relation: &str) -> Result<(), SinkError> {
        match self.sinks.lock().values().find(|s| s.relation == relation && !s.owned) {
            Some(sink) => Err(SinkError::Dependent { relation: relation.to_string(), sink: sink.name.clone() }),
            None => Ok(()),
        }
    }

    /// A sink that reads `relation`, if any.
    pub fn reading(&self, relation: &str) -> Option<String> {
        self.sinks.lock().values().find(|s| s.relation == relation).map(|s| s.name.clone())
    }

    /// Whether `relation` has a sink of its own (made by CSAS or CTAS).
    pub fn owns(&self, relation: &str) -> bool {
        self.sinks.lock().values().any(|s| s.relation == relation && s.owned)
    }

    /// Drops the sinks whose relation is gone (dropped with CASCADE).
    pub fn prune(&self) {
        let gone: Vec<String> = self
            .sinks
            .lock()
            .values()
            .filter(|s| self.catalog.relation(&s.relation).is_none())
            .map(|s| s.name.clone())
            .collect();
        for name in gone {
            let _ = self.drop_sink(&name);
        }
    }

    /// The sinks, by name.
    pub fn list(&self) -> Vec<Arc<Sink>> {
        self.sinks.lock().values().cloned().collect()
    }

    /// What a checkpoint records, taken at its barrier: each sink, with
    /// the events of a stream's sink's outbox (see [`Sink::capture`]).
    pub fn capture(
        &self,
        files: &dyn Fn(u64) -> Option<Vec<StateFile>>,
        force: bool,
    ) -> Vec<(SinkRecord, Option<Vec<RecordBatch>>)> {
        let durability = self.catalog.durability();
        let capture = durability.capture_number();
        let new_id = || durability.next_view_id();
        self.list().iter().map(|s| s.capture(files, force, capture, &new_id)).collect()
    }
}

/// Refuses what a relation cannot be written as: a stream's events are
/// appended (they are never retracted); an append message's `diff` member
/// must not clash with a column.
fn check_shape(name: &str, relation: &Relation, columns: &[String], options: &SinkOptions) -> Result<(), SinkError> {
    use envelope::Envelope;
    if relation.is_stream_like() && options.envelope != Envelope::Append {
        return Err(SinkError::InvalidOption(format!(
            "\"{name}\" is a stream, whose events are only ever added: its sink takes envelope = 'append'"
        )));
    }
    if options.envelope == Envelope::Append && !relation.is_stream_like() && columns.iter().any(|c| c == "diff") {
        return Err(SinkError::InvalidOption(format!(
            "\"{name}\" has a column named diff, which an append message uses for the change's sign; rename it in a view over \"{name}\", or use envelope = 'upsert' or 'debezium'"
        )));
    }
    Ok(())
}

/// A relation's column names, and its own key: a view's group key, a
/// table's primary key; none for a view without aggregates (its rows may
/// repeat), a stream or a derived stream.
fn columns_and_key(relation: &Relation) -> crate::error::Result<(Vec<String>, Option<Vec<String>>)> {
    let names = |schema: &datafusion::arrow::datatypes::Schema, idx: &[usize]| -> Vec<String> {
        idx.iter().map(|&i| schema.field(i).name().clone()).collect()
    };
    Ok(match relation {
        Relation::View(view) => {
            if let Some(why) = view.unsubscribable() {
                return Err(SinkError::Unsupported(why).into());
            }
            let schema = view.output_schema();
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            let key = match view.is_transform() || view.keeps_rows() {
                true => None,
                false => view.output_keys().map(|k| names(&schema, &k)),
            };
            (names(&schema, &all), key)
        }
        Relation::Table(table) => {
            let schema = &table.def.schema;
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            let key = (!table.def.primary_key.is_empty()).then(|| table.def.primary_key.clone());
            (names(schema, &all), key)
        }
        Relation::Stream(stream) => {
            let schema = &stream.def.schema;
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            (names(schema, &all), None)
        }
    })
}
