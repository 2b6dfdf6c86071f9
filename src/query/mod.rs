//! The read path: client SQL planned and run by DataFusion over the views.
//!
//! Views are DataFusion views over their state tables
//! ([`state_table::StateTable`]), so joins, ORDER BY, LIMIT and aggregates
//! over views are all of DataFusion's SQL.

pub mod analyzer;
pub mod any_params;
pub mod array_text;
pub mod checked_arith;
pub mod context;
pub mod date_part;
pub mod datetime_text;
pub mod functions;
pub mod jsonb;
pub mod pg_aggregates;
pub mod pg_functions;
pub mod pg_interval;
pub mod pg_notify;
pub mod pg_sleep;
pub mod pg_typeof;
pub mod snapshot;
pub mod state_table;
pub mod to_char;
pub mod to_timestamp;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use std::sync::Arc;

use crate::checkpoint::SessionCommit;
use crate::error::Result;
use crate::server::Session;

/// Plans a statement DataFusion runs (a query or an INSERT).
pub async fn plan(session: &Session, stmt: ast::Statement) -> Result<LogicalPlan> {
    let mut stmt = crate::pg_catalog::rewrite(stmt);
    if let ast::Statement::Query(query) = &mut stmt {
        crate::sql::naming::apply_pg_column_names(query, true);
    }
    crate::sql::statement::insert::with_default_columns(&mut stmt, session)?;
    pg_notify::with_sender(&mut stmt, session.pid());
    pg_functions::inline_current_setting(&mut stmt, session)?;
    check_change_target(&stmt, session)?;
    let on_conflict = take_on_conflict(&mut stmt, session)?;
    let plan = session.engine().read_state().statement_to_plan(DFStatement::Statement(Box::new(stmt))).await?;
    match on_conflict {
        Some(relation) => with_insert_target(plan, relation),
        None => Ok(plan),
    }
}

/// `UPDATE` and `DELETE` change tables only: a stream has no rows to
/// change, and a view follows the relations it reads. `INSERT` goes to
/// streams and tables, never to a view.
fn check_change_target(stmt: &ast::Statement, session: &Session) -> Result<()> {
    if let ast::Statement::Insert(ast::Insert { table: ast::TableObject::TableName(name), .. }) = stmt {
        // A name Eddy does not resolve (`eddy.public.t`) is DataFusion's to judge.
        let Ok(name) = crate::sql::normalize_object_name(name) else {
            return Ok(());
        };
        if let Some(crate::catalog::Relation::View(_)) = session.engine().catalog.relation(&name) {
            return Err(crate::catalog::CatalogError::WrongObjectType {
                name,
                expected: "stream or table (INSERT writes to those)",
                hint: "a continuous view follows the relations it reads; insert into those instead".into(),
            }
            .into());
        }
        return Ok(());
    }
    let (tables, command) = match stmt {
        ast::Statement::Update(update) => (std::slice::from_ref(&update.table), "UPDATE"),
        ast::Statement::Delete(delete) => match &delete.from {
            ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => (t.as_slice(), "DELETE"),
        },
        _ => return Ok(()),
    };
    for table in tables {
        let ast::TableFactor::Table { name, .. } = &table.relation else {
            continue;
        };
        let name = crate::sql::normalize_object_name(name)?;
        let hint = match session.engine().catalog.relation(&name) {
            Some(crate::catalog::Relation::Stream(_)) => {
                "streams keep no rows to change; only tables take UPDATE and DELETE"
            }
            Some(crate::catalog::Relation::View(_)) => {
                "a continuous view follows the relations it reads; change those instead"
            }
            _ => continue,
        };
        return Err(crate::catalog::CatalogError::WrongObjectType {
            name,
            expected: if command == "UPDATE" {
                "table (UPDATE changes tables)"
            } else {
                "table (DELETE changes tables)"
            },
            hint: hint.into(),
        }
        .into());
    }
    Ok(())
}

/// DataFusion does not plan `ON CONFLICT`: it is taken off the INSERT,
/// checked against the table, and becomes the table the INSERT writes to.
fn take_on_conflict(
    stmt: &mut ast::Statement,
    session: &Session,
) -> Result<Option<crate::table::provider::TableRelation>> {
    let ast::Statement::Insert(insert) = stmt else {
        return Ok(None);
    };
    let Some(on) = insert.on.take() else {
        return Ok(None);
    };
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(crate::sql::SqlError::Unsupported("ON CONFLICT needs a table name".into()).into());
    };
    let name = crate::sql::normalize_object_name(name)?;
    let table = session.engine().catalog.table(&name).map_err(|_| {
        crate::table::TableError::Unsupported(format!(
            "ON CONFLICT needs a table with a primary key; \"{name}\" is not a table"
        ))
    })?;
    let alias = insert.table_alias.take().map(|a| a.alias);
    let conflict = crate::table::conflict::OnConflict::from_ast(&table, &on, alias.as_ref())?;
    Ok(Some(crate::table::provider::TableRelation::with_conflict(table, conflict)))
}

/// `plan` (an INSERT) writing to `relation` instead.
fn with_insert_target(plan: LogicalPlan, relation: crate::table::provider::TableRelation) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let target = datafusion::datasource::provider_as_source(Arc::new(relation));
    let out = plan.transform_up(|node| match node {
        LogicalPlan::Dml(mut dml) => {
            dml.target = target.clone();
            Ok(Transformed::yes(LogicalPlan::Dml(dml)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(out.data)
}

/// Runs a planned statement with optional parameter values, and collects
/// its result.
///
/// Every statement DataFusion executes passes here or through [`stream`],
/// whichever protocol sent it (a simple Query, a Parse/Bind/Execute, a SQL
/// `EXECUTE`), so that is where a read-only user's writes are refused: an
/// `INSERT`, and an `EXPLAIN ANALYZE` that would run one.
pub async fn run(
    session: &Session,
    plan: LogicalPlan,
    params: Option<ParamValues>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let frame = frame(session, plan, params)?;
    let schema = frame.schema().inner().clone();
    let batches = frame.collect().await?;
    Ok((schema, batches))
}

/// Runs a planned query whose result goes to the client as it is made,
/// batch by batch, instead of being collected whole.
pub async fn stream(
    session: &Session,
    plan: LogicalPlan,
    params: Option<ParamValues>,
) -> Result<(SchemaRef, SendableRecordBatchStream)> {
    let frame = frame(session, plan, params)?;
    let schema = frame.schema().inner().clone();
    Ok((schema, frame.execute_stream().await?))
}

/// `plan`, bound to `params`, ready to run in the session's context.
fn frame(session: &Session, plan: LogicalPlan, params: Option<ParamValues>) -> Result<DataFrame> {
    if let Some(action) = writes(&plan) {
        session.check_writable(action)?;
    }
    let plan = match params {
        Some(p) => plan.with_param_values(p)?,
        None => plan,
    };
    let mut state = session.engine().session_state();
    state.config_mut().set_extension(Arc::new(SessionCommit(session.commit_mode())));
    if let Some(transaction) = session.transaction() {
        // Writes wait for COMMIT; reads of tables see them (see `crate::ingest::transaction`).
        state.config_mut().set_extension(transaction.overlay().clone());
        state.config_mut().set_extension(transaction);
    }
    // now() and friends read the statement's start time.
    state.mark_start_execution();
    Ok(DataFrame::new(state, plan))
}

/// What running `plan` would change, if anything. A plain `EXPLAIN` only
/// describes its plan, so it writes nothing; `EXPLAIN ANALYZE` runs it.
fn writes(plan: &LogicalPlan) -> Option<&'static str> {
    match plan {
        LogicalPlan::Explain(_) => None,
        LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => Some("write to a stream"),
        LogicalPlan::Ddl(_) => Some("run DDL"),
        _ => plan.inputs().into_iter().find_map(writes),
    }
}
