//! The one owner of names: streams and continuous views.
//!
//! Every statement that creates, finds or drops a relation goes through the
//! [`Catalog`]. It also records which views read which stream, so that a
//! write to a stream can find the views it feeds, and `DROP STREAM` can refuse
//! (or cascade) when views depend on it. The catalog is saved with every
//! checkpoint (`crate::checkpoint`), and every DDL statement takes one.

mod dependents;
pub mod pg_array;
pub mod relations;
pub mod schema_provider;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use parking_lot::RwLock;

use crate::checkpoint::Durability;
use crate::checkpoint::manifest::{ColumnRecord, StreamRecord};
use crate::clock::Clock;
use crate::stream::ViewRuntime;
use crate::table::TableEntry;
use crate::window::watermark::{EventTime, Watermark};

/// Errors about names.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No relation has that name.
    #[error("relation \"{0}\" does not exist")]
    UndefinedRelation(String),
    /// The name is taken.
    #[error("relation \"{0}\" already exists")]
    DuplicateRelation(String),
    /// The relation exists but is of another kind than the statement expects.
    #[error("\"{name}\" is not a {expected}; {hint}")]
    WrongObjectType {
        /// The relation's name.
        name: String,
        /// What the statement wanted ("stream", "continuous view").
        expected: &'static str,
        /// What to do instead.
        hint: String,
    },
    /// `DROP STREAM` or `DROP TABLE` without `CASCADE` while views read it.
    #[error(
        "cannot drop \"{stream}\" because continuous views depend on it: {views}; use DROP ... CASCADE to drop them too"
    )]
    DependentObjects {
        /// The stream being dropped.
        stream: String,
        /// The views that read it, comma separated.
        views: String,
    },
    /// A column the statement names does not exist.
    #[error("column \"{column}\" of relation \"{relation}\" does not exist")]
    UndefinedColumn {
        /// The relation.
        relation: String,
        /// The missing column.
        column: String,
    },
    /// A stream column name appears twice.
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),
    /// A column type we cannot store.
    #[error(
        "type \"{0}\" is not supported in a stream or table; use one of int2, int4, int8, float4, float8, numeric, text, varchar, bool, date, timestamp, timestamptz, interval, json, jsonb, or a one-dimensional array of one (text[])"
    )]
    UnsupportedType(String),
}

/// A declared stream: a name and a schema. Streams hold no rows.
#[derive(Debug)]
pub struct StreamDef {
    /// The stream's name, normalized.
    pub name: String,
    /// The user's columns followed by `arrival_timestamp`.
    pub schema: SchemaRef,
    /// The user's columns as declared (what a checkpoint saves).
    pub columns: Vec<ColumnRecord>,
    /// The event-time column and its lateness, if declared.
    pub event_time: Option<EventTime>,
}

/// The implicit column every stream row carries.
pub const ARRIVAL_TIMESTAMP: &str = "arrival_timestamp";

/// A stream schema's user columns: all but the trailing `arrival_timestamp`.
pub fn user_fields(schema: &datafusion::arrow::datatypes::Schema) -> &[datafusion::arrow::datatypes::FieldRef] {
    let fields = schema.fields();
    &fields[..fields.len().saturating_sub(1)]
}

/// The catalog's entry for a stream: its definition and the views it feeds.
#[derive(Debug)]
pub struct StreamEntry {
    /// What the user declared.
    pub def: StreamDef,
    /// Continuous views reading this stream, in creation order.
    views: RwLock<Vec<Arc<ViewRuntime>>>,
    /// Rows and bytes written to the stream so far, from every source.
    traffic: crate::observe::Traffic,
    /// The insert log and the checkpoint barrier writes go through.
    durability: Arc<Durability>,
    /// The server's clock.
    clock: Arc<Clock>,
    /// The event-time watermark (unused without event time).
    watermark: Watermark,
    /// Who SUBSCRIBEs to the stream's events.
    subscribers: crate::push::Subscribers,
}

impl StreamEntry {
    /// The stream as a checkpoint records it, with its watermark.
    pub fn record(&self) -> StreamRecord {
        let def = &self.def;
        StreamRecord {
            name: def.name.clone(),
            columns: def.columns.clone(),
            event_time: def.event_time.clone(),
            watermark: def.event_time.as_ref().map(|_| self.watermark.snapshot()),
        }
    }

    /// The server's clock, which stamps `arrival_timestamp`.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The event-time watermark.
    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// The watermark now, for a stream with event time.
    pub fn watermark_now(&self) -> Option<i64> {
        let def = self.def.event_time.as_ref()?;
        self.watermark.at(def, self.clock.now_micros())
    }

    /// The views a write to this stream must reach, as a snapshot.
    pub fn views(&self) -> Vec<Arc<ViewRuntime>> {
        self.views.read().clone()
    }

    /// Counts the rows of `batch`, written.
    pub fn count_rows(&self, batch: &datafusion::arrow::array::RecordBatch) {
        self.traffic.count_batch(batch);
    }

    /// Rows and bytes written so far, and when the last came.
    pub fn traffic(&self) -> &crate::observe::Traffic {
        &self.traffic
    }

    /// The insert log and the checkpoint barrier.
    pub fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// Rows written so far.
    pub fn rows_in(&self) -> u64 {
        self.traffic.rows()
    }

    /// Subscribes to the stream's events from now on (a stream holds no
    /// rows, so there is no snapshot).
    pub fn subscribe(&self, epoch: u64) -> crate::push::Subscription {
        self.subscribers.add(&self.def.name, self.def.schema.clone(), None, epoch)
    }

    /// Hands a write's events to the stream's subscribers.
    pub fn publish(&self, events: &crate::stream::change::ChangeBatch) {
        self.subscribers.publish(events);
    }

    /// Ends the stream's subscriptions (it was dropped).
    pub fn close_subscriptions(&self) {
        self.subscribers.close_all();
    }
}

/// A relation, as name resolution sees it.
#[derive(Debug, Clone)]
pub enum Relation {
    /// A stream.
    Stream(Arc<StreamEntry>),
    /// A continuous view.
    View(Arc<ViewRuntime>),
    /// A table.
    Table(Arc<TableEntry>),
}

impl Relation {
    /// Whether the relation only ever adds rows and keeps none: a stream,
    /// or a derived stream (a transform view).
    pub fn is_stream_like(&self) -> bool {
        match self {
            Relation::Stream(_) => true,
            Relation::View(view) => view.is_transform(),
            Relation::Table(_) => false,
        }
    }

    /// Subscribes to the relation's changes from `epoch` on, after its
    /// contents if `snapshot` (a stream has none): what SUBSCRIBE and the
    /// Kafka sinks read.
    pub async fn subscribe(&self, snapshot: bool, epoch: u64) -> crate::error::Result<crate::push::Subscription> {
        match self {
            Relation::Table(table) => Ok(table.subscribe(snapshot, epoch).await?),
            Relation::Stream(stream) => Ok(stream.subscribe(epoch)),
            Relation::View(view) => {
                if let Some(why) = view.unsubscribable() {
                    return Err(crate::push::PushError::NotSubscribable(why).into());
                }
                Ok(view.subscribe(snapshot, epoch).await?)
            }
        }
    }
}

impl Relation {
    /// Adds `follower` to a stream-like relation's changes (a stream's
    /// events, a derived stream's rows): what a stream's Kafka sink keeps
    /// its outbox with. `None` for a relation with contents.
    pub fn follow(&self, follower: Arc<dyn crate::push::Follower>) -> Option<u64> {
        match self {
            Relation::Stream(stream) => Some(stream.subscribers.follow(follower)),
            Relation::View(view) if view.is_transform() => Some(view.follow(follower)),
            Relation::View(_) | Relation::Table(_) => None,
        }
    }

    /// Removes follower `id` (from [`Relation::follow`]).
    pub fn unfollow(&self, id: u64) {
        match self {
            Relation::Stream(stream) => stream.subscribers.unfollow(id),
            Relation::View(view) => view.unfollow(id),
            Relation::Table(_) => {}
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<String, Arc<StreamEntry>>,
    views: BTreeMap<String, Arc<ViewRuntime>>,
    tables: BTreeMap<String, Arc<TableEntry>>,
}

impl Inner {
    fn taken(&self, name: &str) -> bool {
        self.streams.contains_key(name) || self.views.contains_key(name) || self.tables.contains_key(name)
    }
}

/// Names of streams and views, and who depends on whom.
#[derive(Debug)]
pub struct Catalog {
    inner: RwLock<Inner>,
    durability: Arc<Durability>,
    clock: Arc<Clock>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new(Durability::ephemeral(), Clock::system())
    }
}

impl Catalog {
    /// An empty catalog whose streams write through `durability` and tell
    /// time by `clock`.
    pub fn new(durability: Arc<Durability>, clock: Arc<Clock>) -> Self {
        Self { inner: RwLock::new(Inner::default()), durability, clock }
    }

    /// The server's clock.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The data directory's insert log and checkpoints.
    pub fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// Looks a relation up by its normalized name.
    pub fn relation(&self, name: &str) -> Option<Relation> {
        let inner = self.inner.read();
        if let Some(s) = inner.streams.get(name) {
            return Some(Relation::Stream(s.clone()));
        }
        if let Some(t) = inner.tables.get(name) {
            return Some(Relation::Table(t.clone()));
        }
        inner.views.get(name).map(|v| Relation::View(v.clone()))
    }

    /// The stream called `name`, or an error saying what `name` is instead.
    pub fn stream(&self, name: &str) -> Result<Arc<StreamEntry>, CatalogError> {
        match self.relation(name) {
            Some(Relation::Stream(s)) => Ok(s),
            Some(Relation::View(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "stream",
                hint: "continuous views are written by the streams they read; insert into the stream instead".into(),
            }),
            Some(Relation::Table(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "stream",
                hint: "it is a table; use DROP TABLE, INSERT, UPDATE or DELETE".into(),
            }),
            None => Err(CatalogError::UndefinedRelation(name.to_string())),
        }
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Result<Arc<TableEntry>, CatalogError> {
        match self.relation(name) {
            Some(Relation::Table(t)) => Ok(t),
            Some(_) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "table",
                hint: "streams are dropped with DROP STREAM and views with DROP VIEW".into(),
            }),
            None => Err(CatalogError::UndefinedRelation(name.to_string())),
        }
    }

    /// All tables, in name order.
    pub fn tables(&self) -> Vec<Arc<TableEntry>> {
        self.inner.read().tables.values().cloned().collect()
    }

    /// Adds a table; fails if the name is taken.
    pub fn add_table(&self, table: Arc<TableEntry>) -> Result<(), CatalogError> {
        let mut inner = self.inner.write();
        if inner.taken(&table.def.name) {
            return Err(CatalogError::DuplicateRelation(table.def.name.clone()));
        }
        inner.tables.insert(table.def.name.clone(), table);
        Ok(())
    }

    /// The continuous view called `name`.
    pub fn view(&self, name: &str) -> Result<Arc<ViewRuntime>, CatalogError> {
        match self.relation(name) {
            Some(Relation::View(v)) => Ok(v),
            Some(Relation::Stream(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "continuous view",
                hint: "use DROP STREAM or DROP FOREIGN TABLE for streams".into(),
            }),
            Some(Relation::Table(_)) => Err(CatalogError::WrongObjectType {
                name: name.to_string(),
                expected: "continuous view",
                hint: "use DROP TABLE for tables".into(),
            }),
            None => Err(CatalogError::UndefinedRelation(name.to_string())),
        }
    }

    /// All relation names, streams first.
    pub fn names(&self) -> Vec<String> {
        let inner = self.inner.read();
        inner.streams.keys().chain(inner.tables.keys()).chain(inner.views.keys()).cloned().collect()
    }

    /// All streams, in name order.
    pub fn streams(&self) -> Vec<Arc<StreamEntry>> {
        self.inner.read().streams.values().cloned().collect()
    }

    /// All views, in name order.
    pub fn views(&self) -> Vec<Arc<ViewRuntime>> {
        self.inner.read().views.values().cloned().collect()
    }

    /// Adds a stream; fails if the name is taken.
    pub fn add_stream(&self, def: StreamDef) -> Result<Arc<StreamEntry>, CatalogError> {
        let mut inner = self.inner.write();
        if inner.taken(&def.name) {
            return Err(CatalogError::DuplicateRelation(def.name));
        }
        let entry = Arc::new(StreamEntry {
            def,
            views: RwLock::new(Vec::new()),
            traffic: Default::default(),
            durability: self.durability.clone(),
            clock: self.clock.clone(),
            watermark: Watermark::default(),
            subscribers: crate::push::Subscribers::default(),
        });
        inner.streams.insert(entry.def.name.clone(), entry.clone());
        Ok(entry)
    }

    /// Fails if `name` is taken by any relation.
    pub fn check_free(&self, name: &str) -> Result<(), CatalogError> {
        if self.inner.read().taken(name) {
            return Err(CatalogError::DuplicateRelation(name.to_string()));
        }
        Ok(())
    }

    /// Adds a view and wires it to the relations whose changes feed it.
    pub fn add_view(&self, view: Arc<ViewRuntime>) -> Result<(), CatalogError> {
        let mut inner = self.inner.write();
        let name = view.name().to_string();
        if inner.taken(&name) {
            return Err(CatalogError::DuplicateRelation(name));
        }
        if let Some(missing) = view.inputs().iter().find(|source| !inner.taken(source)) {
            return Err(CatalogError::UndefinedRelation(missing.to_string()));
        }
        for source in view.inputs() {
            if let Some(stream) = inner.streams.get(source) {
                stream.views.write().push(view.clone());
            } else if let Some(table) = inner.tables.get(source) {
                table.add_view(view.clone());
            } else if let Some(upstream) = inner.views.get(source) {
                upstream.add_reader(view.clone());
            }
        }
        inner.views.insert(name, view);
        Ok(())
    }
}
