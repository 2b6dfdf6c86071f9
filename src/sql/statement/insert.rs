//! `INSERT INTO stream [(cols)] VALUES ... | SELECT ...`, with parameters
//! when prepared. DataFusion plans it (casts, column lists, NULLs for the
//! columns left out); `crate::ingest::insert` writes the rows.

use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;

use super::Reply;
use crate::error::Result;
use crate::server::Session;

/// Runs the INSERT, UPDATE or DELETE and replies with its command tag.
pub async fn execute(stmt: ast::Statement, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
    let tag = command(&stmt);
    let plan = crate::query::plan(session, stmt).await?;
    let (_, batches) = crate::query::run(session, plan, params).await?;
    Ok(Reply::Tag(tag_for(tag, count_rows(&batches))))
}

/// The command a writing statement's tag names.
pub fn command(stmt: &ast::Statement) -> &'static str {
    match stmt {
        ast::Statement::Update(_) => "UPDATE",
        ast::Statement::Delete(_) => "DELETE",
        _ => "INSERT",
    }
}

/// PostgreSQL's tag: `INSERT 0 n`, `UPDATE n`, `DELETE n`.
pub fn tag_for(command: &str, rows: u64) -> String {
    match command {
        "INSERT" => format!("INSERT 0 {rows}"),
        other => format!("{other} {rows}"),
    }
}

/// `INSERT INTO s VALUES (...)` without a column list fills the stream's
/// columns in order, as PostgreSQL does; the columns left over (at least
/// `arrival_timestamp`) get their defaults. DataFusion wants every column
/// listed, so the list is written in here.
pub fn with_default_columns(stmt: &mut ast::Statement, session: &Session) {
    if let ast::Statement::Explain { statement, .. } = stmt {
        return with_default_columns(statement, session);
    }
    let ast::Statement::Insert(insert) = stmt else {
        return;
    };
    if !insert.columns.is_empty() {
        alias_select_to_columns(insert);
        return;
    }
    let ast::TableObject::TableName(name) = &insert.table else {
        return;
    };
    let Ok(name) = crate::sql::normalize_object_name(name) else {
        return;
    };
    let (fields, user_columns) = match session.engine().catalog.relation(&name) {
        Some(crate::catalog::Relation::Stream(s)) => (s.def.schema.fields().clone(), s.def.schema.fields().len() - 1),
        Some(crate::catalog::Relation::Table(t)) => (t.def.schema.fields().clone(), t.def.schema.fields().len()),
        _ => return,
    };
    let given = match insert.source.as_deref().map(|q| q.body.as_ref()) {
        Some(ast::SetExpr::Values(values)) => values.rows.first().map_or(user_columns, |r| r.len()),
        _ => user_columns,
    };
    insert.columns = fields
        .iter()
        .take(given.min(user_columns))
        .map(|f| ast::ObjectName::from(vec![ast::Ident::with_quote('"', f.name().clone())]))
        .collect();
    alias_select_to_columns(insert);
}

/// INSERT matches a SELECT's columns to the target by position, so their
/// names do not matter; DataFusion, though, rejects duplicate names
/// (`SELECT value, value`). Naming each after its target column fixes that.
fn alias_select_to_columns(insert: &mut ast::Insert) {
    let Some(ast::SetExpr::Select(select)) = insert.source.as_deref_mut().map(|q| q.body.as_mut()) else {
        return;
    };
    if select.projection.len() != insert.columns.len() {
        return;
    }
    for (item, column) in select.projection.iter_mut().zip(&insert.columns) {
        let alias = ast::Ident::with_quote('"', column.to_string().trim_matches('"').to_string());
        match item {
            ast::SelectItem::UnnamedExpr(expr) => *item = ast::SelectItem::ExprWithAlias { expr: expr.clone(), alias },
            ast::SelectItem::ExprWithAlias { alias: existing, .. } => *existing = alias,
            _ => return,
        }
    }
}

/// The row count DataFusion's insert returns (one UInt64 `count` column).
pub fn count_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>().map(|c| c.iter().flatten().sum::<u64>()))
        .sum()
}
