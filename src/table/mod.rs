//! Tables: keyed rows that SQL updates and deletes, and a changelog source.
//!
//! A table holds its rows ([`rows::TableRows`]); every write to it
//! (`INSERT`, `INSERT ... ON CONFLICT`, `UPDATE`, `DELETE`, `COPY`) becomes
//! a [`ChangeBatch`](crate::stream::change::ChangeBatch) of removed and added
//! rows, which is logged, applied to the rows and sent down to every view
//! that reads the table, in one epoch, before the write returns
//! ([`write`]). DataFusion plans the statements; [`provider`] is the table
//! as DataFusion sees it, and [`conflict`] is `ON CONFLICT`.

pub mod conflict;
pub mod provider;
pub mod rows;
pub mod scan;
pub mod write;

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use parking_lot::{Mutex, RwLock};

use crate::checkpoint::Durability;
use crate::checkpoint::manifest::{ColumnRecord, TableRecord};
use crate::stream::ViewRuntime;
use rows::TableRows;

/// Errors writing to a table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A second row with the same primary key.
    #[error("duplicate key value violates unique constraint \"{constraint}\": Key {key} already exists")]
    UniqueViolation {
        /// The constraint, `<table>_pkey`.
        constraint: String,
        /// The key, as PostgreSQL shows it: `(id)=(1)`.
        key: String,
    },
    /// A NULL in a primary key or `NOT NULL` column.
    #[error("null value in column \"{column}\" of relation \"{table}\" violates not-null constraint")]
    NotNull {
        /// The column.
        column: String,
        /// The table.
        table: String,
    },
    /// A value longer than its `varchar(n)` or `char(n)` column.
    #[error("{0}")]
    ValueTooLong(String),
    /// `ON CONFLICT (cols)` names columns that are not the primary key.
    #[error(
        "there is no unique or exclusion constraint matching the ON CONFLICT specification; the primary key of \"{table}\" is ({key})"
    )]
    NoConflictTarget {
        /// The table.
        table: String,
        /// Its primary key's columns.
        key: String,
    },
    /// `ON CONFLICT DO UPDATE` would change one row twice.
    #[error(
        "ON CONFLICT DO UPDATE command cannot affect row a second time; ensure that no rows proposed for insertion within the same command have duplicate constrained values"
    )]
    AffectsRowTwice,
    /// `INSERT`, `UPDATE`, `DELETE` or `COPY` into a table that a Kafka topic feeds.
    #[error(
        "table \"{table}\" is fed by Kafka topic \"{topic}\" and cannot be changed by SQL; produce to the topic instead (a message with a null value deletes its key)"
    )]
    FedByKafka {
        /// The table.
        table: String,
        /// Its topic.
        topic: String,
    },
    /// Valid SQL that tables do not support (yet).
    #[error("{0}")]
    Unsupported(String),
    /// Arrow failed on the rows.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A bug.
    #[error("internal error in a table: {0}")]
    Internal(String),
}

/// A declared table.
#[derive(Debug)]
pub struct TableDef {
    /// Its number: names its rows on disk.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its columns.
    pub schema: SchemaRef,
    /// Its columns as declared.
    pub columns: Vec<ColumnRecord>,
    /// The primary key's columns, by name (none: a multiset of rows).
    pub primary_key: Vec<String>,
    /// The Kafka topic whose messages are the table's rows, ksqlDB style:
    /// then the consumer is its only writer.
    pub kafka_topic: Option<String>,
}

/// A table, running: its rows, its views, and the lock its writers take.
#[derive(Debug)]
pub struct TableEntry {
    /// What was declared.
    pub def: TableDef,
    rows: Mutex<TableRows>,
    views: RwLock<Vec<Arc<ViewRuntime>>>,
    /// Held by one writer at a time, from reading the rows to the views
    /// having applied the change: writes to one table are serial.
    writer: Arc<tokio::sync::Mutex<()>>,
    durability: Arc<Durability>,
    /// Rows changed (added plus removed) and their bytes.
    traffic: crate::observe::Traffic,
    /// Who SUBSCRIBEs to the table's changes.
    subscribers: crate::push::Subscribers,
}

impl TableEntry {
    /// A new, empty table.
    pub fn try_new(def: TableDef, durability: Arc<Durability>) -> Result<Self, TableError> {
        let key: Vec<usize> = def.primary_key.iter().filter_map(|k| def.schema.index_of(k).ok()).collect::<Vec<_>>();
        if key.len() != def.primary_key.len() {
            return Err(TableError::Internal(format!("primary key of \"{}\" names a missing column", def.name)));
        }
        let not_null = def.columns.iter().map(|c| c.not_null || def.primary_key.contains(&c.name)).collect();
        let rows = TableRows::try_new(&def.name, def.schema.clone(), key, not_null)?;
        Ok(Self {
            def,
            rows: Mutex::new(rows),
            views: RwLock::new(Vec::new()),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            durability,
            traffic: Default::default(),
            subscribers: crate::push::Subscribers::default(),
        })
    }

    /// The table as a checkpoint records it (without its files).
    pub fn record(&self) -> TableRecord {
        TableRecord {
            id: self.def.id,
            name: self.def.name.clone(),
            columns: self.def.columns.clone(),
            primary_key: self.def.primary_key.clone(),
            kafka_topic: self.def.kafka_topic.clone(),
            files: Vec::new(),
        }
    }

    /// The rows (a short, await-free lock).
    pub fn rows(&self) -> &Mutex<TableRows> {
        &self.rows
    }

    /// The views reading this table, as a snapshot.
    pub fn views(&self) -> Vec<Arc<ViewRuntime>> {
        self.views.read().clone()
    }

    /// Wires a view to the table.
    pub fn add_view(&self, view: Arc<ViewRuntime>) {
        self.views.write().push(view);
    }

    /// Unwires a view.
    pub fn remove_view(&self, name: &str) {
        self.views.write().retain(|v| v.name() != name);
    }

    /// The insert log and the checkpoint barrier.
    pub fn durability(&self) -> &Arc<Durability> {
        &self.durability
    }

    /// Rows changed so far (added plus removed).
    pub fn rows_in(&self) -> u64 {
        self.traffic.rows()
    }

    /// Rows and bytes changed so far, and when the last change came.
    pub fn traffic(&self) -> &crate::observe::Traffic {
        &self.traffic
    }

    fn count_changes(&self, changes: &crate::stream::change::ChangeBatch) {
        self.traffic.count_batch(&changes.rows);
    }

    /// Subscribes to the table's changes from now on, after its rows if
    /// `snapshot`. The write lock is held meanwhile, so no write falls
    /// between the rows and the first change.
    pub async fn subscribe(
        self: &Arc<Self>,
        snapshot: bool,
        epoch: u64,
    ) -> Result<crate::push::Subscription, TableError> {
        let _writes = self.begin_write().await;
        let rows = match snapshot {
            true => Some(self.rows.lock().snapshot()?),
            false => None,
        };
        Ok(self.subscribers.add(&self.def.name, self.def.schema.clone(), rows, epoch))
    }

    /// Hands a change to the table's subscribers.
    fn publish(&self, changes: &crate::stream::change::ChangeBatch) {
        self.subscribers.publish(changes);
    }

    /// Ends the table's subscriptions (it was dropped).
    pub fn close_subscriptions(&self) {
        self.subscribers.close_all();
    }
}
