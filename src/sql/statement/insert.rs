//! `INSERT INTO stream [(cols)] VALUES ... | SELECT ...`, with parameters
//! when prepared. DataFusion plans it (casts, column lists, NULLs for the
//! columns left out); `crate::ingest::insert` writes the rows.

use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;

use super::Reply;
use crate::error::Result;
use crate::server::Session;

/// Runs the INSERT and replies `INSERT 0 n`.
pub async fn execute(
    stmt: ast::Statement,
    session: &Session,
    params: Option<ParamValues>,
) -> Result<Reply> {
    let plan = crate::query::plan(session, stmt).await?;
    let (_, batches) = crate::query::run(session, plan, params).await?;
    Ok(Reply::Tag(format!("INSERT 0 {}", count_rows(&batches))))
}

/// The row count DataFusion's insert returns (one UInt64 `count` column).
pub fn count_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .map(|c| c.iter().flatten().sum::<u64>())
        })
        .sum()
}
