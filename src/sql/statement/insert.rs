//! `INSERT INTO stream [(cols)] VALUES ... | SELECT ...`, with parameters
//! when prepared. DataFusion plans it (casts, column lists, NULLs for the
//! columns left out); `crate::ingest::insert` writes the rows.

use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast;

use super::Reply;
use crate::error::Result;
use crate::server::Session;

/// Runs the INSERT, UPDATE or DELETE and replies with its command tag (or,
/// with RETURNING, its rows).
pub async fn execute(stmt: ast::Statement, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
    if super::returning::returning_items(&stmt).is_some() {
        return super::returning::Returning::plan(session, stmt).await?.execute(session, params).await;
    }
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
/// listed, so the list is written in here. A column given as `DEFAULT` in
/// every row is taken off the list, so that it gets its default too.
pub fn with_default_columns(stmt: &mut ast::Statement, session: &Session) -> Result<()> {
    if let ast::Statement::Explain { statement, .. } = stmt {
        return with_default_columns(statement, session);
    }
    let ast::Statement::Insert(insert) = stmt else {
        return Ok(());
    };
    if insert.columns.is_empty() {
        list_columns(insert, session);
    }
    drop_default_values(insert)?;
    check_generated_always(insert, session)?;
    alias_select_to_columns(insert);
    Ok(())
}

/// Writes in the column list of an INSERT that has none.
fn list_columns(insert: &mut ast::Insert, session: &Session) {
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
}

/// Whether `expr` is the keyword `DEFAULT` (in a VALUES row).
fn is_default(expr: &ast::Expr) -> bool {
    matches!(expr, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Takes the columns that every VALUES row gives as `DEFAULT` off the
/// INSERT (DataFusion fills a column left out with its default, and has no
/// `DEFAULT` keyword).
fn drop_default_values(insert: &mut ast::Insert) -> Result<()> {
    let Some(ast::SetExpr::Values(values)) = insert.source.as_deref_mut().map(|q| q.body.as_mut()) else {
        return Ok(());
    };
    if !values.rows.iter().flat_map(|r| r.content.iter()).any(is_default) {
        return Ok(());
    }
    let width = insert.columns.len();
    let all_default: Vec<bool> =
        (0..width).map(|i| values.rows.iter().all(|r| r.content.get(i).is_some_and(is_default))).collect();
    let mixed = values
        .rows
        .iter()
        .any(|r| r.content.iter().enumerate().any(|(i, e)| is_default(e) && all_default.get(i) != Some(&true)));
    if mixed || all_default.iter().all(|d| *d) {
        return Err(crate::sql::SqlError::Unsupported(
            "DEFAULT in VALUES is supported only for a column that is DEFAULT in every row, and not for every column; leave the column out of the INSERT's column list instead".into(),
        )
        .into());
    }
    let keep = |i: &usize| all_default.get(*i) != Some(&true);
    for row in &mut values.rows {
        row.content = row.content.drain(..).enumerate().filter(|(i, _)| keep(i)).map(|(_, e)| e).collect();
    }
    insert.columns = insert.columns.drain(..).enumerate().filter(|(i, _)| keep(i)).map(|(_, c)| c).collect();
    Ok(())
}

/// A value given for a `GENERATED ALWAYS AS IDENTITY` column is an error
/// (428C9), as in PostgreSQL.
fn check_generated_always(insert: &ast::Insert, session: &Session) -> Result<()> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return Ok(());
    };
    let Ok(table) = crate::sql::normalize_object_name(name).map(|n| session.engine().catalog.table(&n)) else {
        return Ok(());
    };
    let Ok(table) = table else {
        return Ok(());
    };
    let always = table.def.columns.iter().filter(|c| c.identity == Some(crate::checkpoint::manifest::Identity::Always));
    for column in always {
        let named = |c: &ast::ObjectName| {
            c.0.last().and_then(|p| p.as_ident()).is_some_and(|i| crate::sql::normalize_ident(i) == column.name)
        };
        if insert.columns.iter().any(named) {
            return Err(crate::table::TableError::GeneratedAlways(column.name.clone()).into());
        }
    }
    Ok(())
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
