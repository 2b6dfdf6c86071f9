//! `CREATE STREAM s (cols)` (PipelineDB 0.9) and
//! `CREATE FOREIGN TABLE s (cols) SERVER pipelinedb` (PipelineDB 1.0).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::Ident;

use super::Reply;
use crate::catalog::types::{field_for_sql_type, timestamptz};
use crate::catalog::{CatalogError, StreamDef};
use crate::error::Result;
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident};

/// The implicit column every stream row carries.
pub const ARRIVAL_TIMESTAMP: &str = "arrival_timestamp";

/// A stream declaration.
#[derive(Debug, Clone)]
pub struct CreateStream {
    /// The stream's name.
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Column names and their SQL types, as written.
    pub columns: Vec<(Ident, String)>,
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
        for (ident, sql_type) in &self.columns {
            let name = normalize_ident(ident);
            if name == ARRIVAL_TIMESTAMP {
                continue; // declared explicitly, as PipelineDB allowed: it is implicit anyway
            }
            if !seen.insert(name.clone()) {
                return Err(CatalogError::DuplicateColumn(name).into());
            }
            fields.push(field_for_sql_type(&name, sql_type)?);
        }
        fields.push(Field::new(ARRIVAL_TIMESTAMP, timestamptz(), true));
        Ok(Schema::new(fields))
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
        if let Some((key, _)) = self.options.first() {
            return Err(SqlError::Unsupported(format!("stream option \"{key}\" is not supported")).into());
        }
        let schema = Arc::new(self.schema()?);
        let catalog = &session.engine().catalog;
        if self.if_not_exists && catalog.relation(&self.name).is_some() {
            return Ok(Reply::Tag(tag.into()));
        }
        catalog.add_stream(StreamDef { name: self.name, schema })?;
        Ok(Reply::Tag(tag.into()))
    }
}
