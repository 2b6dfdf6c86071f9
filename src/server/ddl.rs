//! Catalog changes, durable before they are visible.
//!
//! A `CREATE STREAM`, `CREATE VIEW` or `DROP` is checked, then logged in
//! the insert log as a [`CatalogChange`] (synced), and only then applied,
//! all while holding the checkpoint gate, so a checkpoint sees the change
//! and its log record together or neither. Rows written to a new stream are
//! therefore always logged after the stream, and recovery replays both in
//! order; a fallback to an older checkpoint replays the change from the log
//! instead of undoing it. DDL statements take [`Engine::ddl_lock`] in turn,
//! so that the log's order is the order in which they were applied.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Ident;

use super::Engine;
use crate::catalog::{StreamDef, StreamEntry};
use crate::checkpoint::manifest::{CatalogChange, StreamRecord, TableRecord};
use crate::error::Result;
use crate::sql::statement::create_stream::CreateStream;
use crate::table::{TableDef, TableEntry};

impl Engine {
    /// Serializes catalog changes: held from a DDL statement's checks to
    /// its checkpoint.
    pub async fn ddl_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ddl.lock().await
    }

    /// Logs `change`, then applies it. The caller has checked that it
    /// applies (a free name, a stream without views unless cascading), so
    /// that the log never holds a change that failed. Runs in a task of its
    /// own: a statement cut short (its client gone, or the server shutting
    /// down) must not leave a change logged and not applied, which the next
    /// checkpoint would skip.
    pub async fn change_catalog(self: &Arc<Self>, change: CatalogChange) -> Result<()> {
        let engine = self.clone();
        let change_and_log = async move {
            let durability = engine.catalog.durability().clone();
            let _admitted = durability.admit().await;
            durability.log_change(&change).await?;
            engine.apply_change(&change).await
        };
        match tokio::spawn(change_and_log).await {
            Ok(done) => done,
            Err(e) => Err(crate::error::EddyError::Internal(format!("a catalog change's task ended: {e}"))),
        }
    }

    /// Applies a catalog change, live or replayed from the log. Dropping a
    /// stream's Kafka consumer is left to the caller, outside the gate.
    pub async fn apply_change(&self, change: &CatalogChange) -> Result<()> {
        match change {
            CatalogChange::CreateStream(record) => {
                self.add_stream_record(record)?;
            }
            CatalogChange::CreateView(view) => {
                self.catalog.durability().saw_view_id(view.id);
                let query = crate::sql::parser::parse_query(&view.query)?;
                self.start_view(view.id, &view.name, &query, view.options.clone()).await?;
            }
            CatalogChange::DropStream { name, cascade } => {
                let stream = self.catalog.stream(name).ok();
                for view in self.catalog.drop_stream(name, *cascade)? {
                    view.stop();
                }
                if let Some(stream) = stream {
                    stream.close_subscriptions();
                }
            }
            CatalogChange::DropView { name, cascade } => {
                for view in self.catalog.drop_view(name, *cascade)? {
                    view.stop();
                }
            }
            CatalogChange::CreateTable(record) => {
                self.add_table_record(record)?;
            }
            CatalogChange::DropTable { name, cascade } => {
                let table = self.catalog.table(name).ok();
                for view in self.catalog.drop_table(name, *cascade)? {
                    view.stop();
                }
                if let Some(table) = table {
                    table.close_subscriptions();
                }
            }
        }
        Ok(())
    }

    /// Adds the empty table `record` describes (from a checkpoint or the log).
    pub fn add_table_record(&self, record: &TableRecord) -> Result<Arc<TableEntry>> {
        self.catalog.durability().saw_view_id(record.id);
        let schema = crate::sql::statement::create_table::table_schema(record)?;
        let (defaults, sequences) =
            crate::sql::statement::create_table::column_defaults(self.read_state(), record, &schema)?;
        let def = TableDef {
            id: record.id,
            name: record.name.clone(),
            schema,
            columns: record.columns.clone(),
            primary_key: record.primary_key.clone(),
            kafka_topic: record.kafka_topic.clone(),
            defaults,
            sequences,
        };
        let entry = Arc::new(TableEntry::try_new(def, self.catalog.durability().clone())?);
        self.catalog.add_table(entry.clone())?;
        Ok(entry)
    }

    /// Adds the stream `record` describes (from a checkpoint or the log).
    pub fn add_stream_record(&self, record: &StreamRecord) -> Result<Arc<StreamEntry>> {
        let declaration = CreateStream {
            name: record.name.clone(),
            if_not_exists: false,
            columns: record
                .columns
                .iter()
                .map(|c| (Ident::with_quote('"', c.name.clone()), c.sql_type.clone(), c.not_null))
                .collect(),
            server: None,
            options: Vec::new(),
        };
        let def = StreamDef {
            name: record.name.clone(),
            schema: Arc::new(declaration.schema()?),
            columns: record.columns.clone(),
            event_time: record.event_time.clone(),
        };
        let entry = self.catalog.add_stream(def)?;
        if let Some(watermark) = record.watermark {
            entry.watermark().restore(watermark);
        }
        Ok(entry)
    }
}
