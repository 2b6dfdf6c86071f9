//! `CREATE CONTINUOUS VIEW v AS ...` (PipelineDB 0.9) and
//! `CREATE VIEW v [WITH (action=materialize)] AS ...` (PipelineDB 1.0).
//!
//! The query is planned into an incremental plan by `crate::planner`, and the
//! view's operator starts right away. A derived stream (`action =
//! transform`, or `CREATE STREAM s2 AS SELECT ...`) is a view too, one that
//! passes its events on (`crate::planner`).
//!
//! ksqlDB's `CREATE STREAM s2 WITH (kafka_topic = ...) AS SELECT` and
//! `CREATE TABLE t WITH (kafka_topic = ...) AS SELECT` are views too, each
//! with a Kafka sink of its own name (`crate::sink`) that goes with it:
//! the derived stream's events, or the table's changes as upserts.

use datafusion::sql::sqlparser::ast::Query;

use super::Reply;
use crate::checkpoint::manifest::{CatalogChange, SinkRecord};
use crate::error::Result;
use crate::planner::PlanError;
use crate::server::Session;
use crate::window::ViewOptions;

/// A continuous view declaration.
#[derive(Debug, Clone)]
pub struct CreateView {
    /// The view's name.
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// `WITH (...)` options.
    pub options: Vec<(String, String)>,
    /// The view's query.
    pub query: Box<Query>,
    /// The command tag: `CREATE VIEW`, or `CREATE STREAM` for a derived
    /// stream (`CREATE STREAM s2 AS SELECT ...`).
    pub tag: &'static str,
    /// The options of the view's own Kafka sink (`kafka_topic` and the
    /// rest), for ksqlDB's CSAS and CTAS; empty for none.
    pub sink: Vec<(String, String)>,
}

/// The `WITH (...)` options that belong to a CSAS's or CTAS's sink.
pub const SINK_OPTIONS: &[&str] =
    &["kafka_topic", "kafka_brokers", "value_format", "envelope", "key", "partitions", "exactly_once"];

/// `WITH (...)` options, as key and value.
type Options = Vec<(String, String)>;

/// Splits `options` into the view's and its sink's.
pub fn split_sink_options(options: Options) -> (Options, Options) {
    options.into_iter().partition(|(k, _)| !SINK_OPTIONS.contains(&k.as_str()))
}

impl CreateView {
    /// Plans the view and starts maintaining it.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        ViewOptions::parse(&self.options).map_err(PlanError::from)?;
        let engine = session.engine();
        if self.if_not_exists && engine.catalog.relation(&self.name).is_some() {
            return Ok(Reply::Tag(self.tag.into()));
        }
        if !self.sink.is_empty() {
            // Checked before the view is made, so that bad options make nothing.
            crate::sink::options::SinkOptions::parse(&self.sink, &engine.kafka.brokers(), true)?;
        }
        let mut query = self.query;
        crate::sql::naming::apply_pg_column_names(&mut query, false);
        engine.create_view(&self.name, &query, self.options).await?;
        if !self.sink.is_empty() {
            own_sink(session, &self.name, self.sink).await?;
        }
        Ok(Reply::Tag(self.tag.into()))
    }
}

/// Makes view `name`'s own sink; if it cannot be made, the view goes too.
async fn own_sink(session: &Session, name: &str, options: Vec<(String, String)>) -> Result<()> {
    let engine = session.engine();
    let _ddl = engine.ddl_lock().await;
    let record = SinkRecord { name: name.to_string(), relation: name.to_string(), options, owned: true, outbox: None };
    if let Err(e) = engine.sinks.create(&record, &engine.kafka.brokers()) {
        let change = CatalogChange::DropView { name: name.to_string(), cascade: false };
        if let Err(undo) = engine.change_catalog(change).await {
            tracing::error!("could not drop view \"{name}\" after its sink failed: {undo}");
        }
        return Err(e);
    }
    engine.ddl_done().await
}
