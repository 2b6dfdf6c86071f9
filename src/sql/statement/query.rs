//! `SELECT`, `VALUES` and `EXPLAIN`, run by DataFusion.

use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;

use super::Reply;
use crate::error::Result;
use crate::server::Session;

/// Runs the query and returns its rows.
pub async fn execute(stmt: ast::Statement, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
    let plan = crate::query::plan(session, stmt).await?;
    let (schema, batches) = crate::query::run(session, plan, params).await?;
    Ok(Reply::Rows { schema, batches })
}
