//! `CREATE CONTINUOUS VIEW v AS ...` (PipelineDB 0.9) and
//! `CREATE VIEW v [WITH (action=materialize)] AS ...` (PipelineDB 1.0).
//!
//! The query is planned into an incremental plan by `crate::planner`, and the
//! view's operator starts right away. A derived stream (`action =
//! transform`, or `CREATE STREAM s2 AS SELECT ...`) is a view too, one that
//! passes its events on (`crate::planner`).

use datafusion::sql::sqlparser::ast::Query;

use super::Reply;
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
}

impl CreateView {
    /// Plans the view and starts maintaining it.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        ViewOptions::parse(&self.options).map_err(PlanError::from)?;
        let engine = session.engine();
        if self.if_not_exists && engine.catalog.relation(&self.name).is_some() {
            return Ok(Reply::Tag(self.tag.into()));
        }
        let mut query = self.query;
        crate::sql::naming::apply_pg_column_names(&mut query);
        engine.create_view(&self.name, &query, self.options).await?;
        Ok(Reply::Tag(self.tag.into()))
    }
}
