//! `CREATE STREAM s (cols)` (PipelineDB 0.9) and
//! `CREATE FOREIGN TABLE s (cols) SERVER pipelinedb` (PipelineDB 1.0).

use std::collections::HashSet;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::Ident;

use super::Reply;
use super::kafka_binding::Bound;
use crate::catalog::CatalogError;
use crate::catalog::types::{field_for_sql_type, timestamptz};
use crate::checkpoint::manifest::{CatalogChange, ColumnRecord, StreamRecord};
use crate::error::Result;
use crate::planner::PlanError;
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident};
use crate::window::WindowError;
use crate::window::watermark::EventTime;

pub use crate::catalog::ARRIVAL_TIMESTAMP;

/// A stream declaration.
#[derive(Debug, Clone)]
pub struct CreateStream {
    /// The stream's name.
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Column names, their SQL types as written, and whether they are `NOT NULL`.
    pub columns: Vec<(Ident, String, bool)>,
    /// `SERVER x` of the foreign-table form.
    pub server: Option<String>,
    /// `WITH (...)` options.
    pub options: Vec<(String, String)>,
}

impl CreateStream {
    /// Builds the stream's schema: the user's columns, then `arrival_timestamp`.
    pub fn schema(&self) -> Result<Schema> {
        let mut seen = HashSet::new();
        let mut fields: Vec<Field> = Vec::with_capacity(self.columns.len() + 1);
        for (ident, sql_type, not_null) in &self.columns {
            let name = normalize_ident(ident);
            if name == ARRIVAL_TIMESTAMP {
                continue; // declared explicitly, as PipelineDB allowed: it is implicit anyway
            }
            if !seen.insert(name.clone()) {
                return Err(CatalogError::DuplicateColumn(name).into());
            }
            fields.push(field_for_sql_type(&name, sql_type)?.with_nullable(!not_null));
        }
        fields.push(Field::new(ARRIVAL_TIMESTAMP, timestamptz(), true));
        Ok(Schema::new(fields))
    }

    /// The user's columns as a checkpoint records them.
    pub fn column_records(&self) -> Vec<ColumnRecord> {
        self.columns
            .iter()
            .map(|(ident, sql_type, not_null)| ColumnRecord {
                name: normalize_ident(ident),
                sql_type: sql_type.clone(),
                not_null: *not_null,
                default: None,
                identity: None,
            })
            .filter(|c| c.name != ARRIVAL_TIMESTAMP)
            .collect()
    }

    /// Adds the stream to the catalog.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let tag = if self.server.is_some() { "CREATE FOREIGN TABLE" } else { "CREATE STREAM" };
        if let Some(server) = &self.server
            && server != "pipelinedb"
        {
            return Err(SqlError::Unsupported(format!(
                "server \"{server}\" does not exist; streams are declared with SERVER pipelinedb"
            ))
            .into());
        }
        let (event_time, rest) = EventTime::from_options(&self.options).map_err(PlanError::from)?;
        let binding = super::kafka_binding::binding(&rest, Bound::Stream)?;
        // The schema is built here to check the declaration; the stream
        // itself is built from the logged record's columns, as on replay.
        let schema = self.schema()?;
        if let Some(event_time) = &event_time {
            check_event_time(&schema, &event_time.column)?;
        }
        let engine = session.engine();
        let _ddl = engine.ddl_lock().await;
        if self.if_not_exists && engine.catalog.relation(&self.name).is_some() {
            return Ok(Reply::Tag(tag.into()));
        }
        engine.catalog.check_free(&self.name)?;
        let record =
            StreamRecord { name: self.name.clone(), columns: self.column_records(), event_time, watermark: None };
        engine.change_catalog(CatalogChange::CreateStream(record)).await?;
        if let Some(binding) = binding {
            let undo = CatalogChange::DropStream { name: self.name.clone(), cascade: true };
            super::kafka_binding::start(session, Bound::Stream, &self.name, binding, undo).await?;
        }
        engine.ddl_done().await?;
        Ok(Reply::Tag(tag.into()))
    }
}

/// The event-time column must be one of the stream's timestamp columns.
fn check_event_time(schema: &Schema, column: &str) -> Result<()> {
    match schema.field_with_name(column).map(|f| f.data_type()) {
        Ok(datafusion::arrow::datatypes::DataType::Timestamp(..)) => Ok(()),
        Ok(other) => Err(PlanError::from(WindowError::InvalidOption(format!(
            "event-time column \"{column}\" is {other}; timestamp = '...' must name a timestamp or timestamptz column"
        )))
        .into()),
        Err(_) => {
            Err(CatalogError::UndefinedColumn { relation: "the stream".into(), column: column.to_string() }.into())
        }
    }
}
