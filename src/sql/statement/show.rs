//! `SHOW name` and `SHOW ALL`: read session settings.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::parser::Parser;

use super::Reply;
use super::set::rest_of_statement;
use crate::error::{EddyError, Result};
use crate::server::Session;
use crate::sql::SqlError;

/// A SHOW.
#[derive(Debug, Clone)]
pub struct ShowVar {
    /// The setting, lower case, or `all`.
    pub name: String,
}

impl ShowVar {
    /// The columns the statement returns, for Describe in the extended protocol.
    pub fn schema(&self, session: &Session) -> SchemaRef {
        if self.name == "all" {
            return Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
        }
        let display = session.setting(&self.name).map_or(self.name.clone(), |(d, _)| d);
        Arc::new(Schema::new(vec![Field::new(display, DataType::Utf8, false)]))
    }

    /// Parses `SHOW name`; the parser is at SHOW.
    pub fn parse(parser: &mut Parser) -> Result<Self, SqlError> {
        let parts = rest_of_statement(parser);
        let words: Vec<String> = parts.iter().skip(1).map(|p| p.to_lowercase()).collect();
        let name = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["time", "zone"] => "timezone".to_string(),
            ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
            [name] => name.to_string(),
            // A dotted custom setting: `SHOW myapp.tenant`.
            [first, rest @ ..] if rest.len() % 2 == 0 && rest.iter().step_by(2).all(|p| *p == ".") => {
                std::iter::once(*first).chain(rest.iter().copied()).collect()
            }
            _ => {
                return Err(SqlError::Syntax(format!("expected SHOW name, found: {}", parts.join(" "))));
            }
        };
        Ok(Self { name })
    }

    /// One row, one column named after the setting, as PostgreSQL answers.
    pub fn execute(self, session: &Session) -> Result<Reply> {
        let internal = |e: datafusion::arrow::error::ArrowError| EddyError::Internal(e.to_string());
        if self.name == "all" {
            let settings = session.settings();
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let names: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
            let values: Vec<&str> = settings.iter().map(|(_, v)| v.as_str()).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(names)), Arc::new(StringArray::from(values))],
            )
            .map_err(internal)?;
            return Ok(Reply::Rows { schema, batches: vec![batch] });
        }
        let (display, value) =
            session.setting(&self.name).ok_or_else(|| EddyError::from(SqlError::UnknownSetting(self.name.clone())))?;
        let schema = Arc::new(Schema::new(vec![Field::new(display, DataType::Utf8, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![value]))]).map_err(internal)?;
        Ok(Reply::Rows { schema, batches: vec![batch] })
    }
}
