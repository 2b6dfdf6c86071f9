//! `INSERT ... RETURNING`: the rows an INSERT wrote, as a result, with the
//! tag `INSERT 0 n`. Laravel's `insertGetId` and Eloquent's `save()` read a
//! new row's `serial` id this way.
//!
//! DataFusion plans INSERT without RETURNING. Eddy plans the INSERT alone,
//! runs its input (the rows as the target will hold them: defaults filled
//! and sequences drawn, cast to the columns' types), writes exactly those
//! rows, and evaluates the RETURNING list over them.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemTable;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, col};
use datafusion::sql::sqlparser::ast;

use super::Reply;
use crate::error::{EddyError, Result};
use crate::server::Session;
use crate::sql::SqlError;

/// The RETURNING list of a writing statement, if it has one.
pub fn returning_items(stmt: &ast::Statement) -> Option<&[ast::SelectItem]> {
    match stmt {
        ast::Statement::Insert(insert) => insert.returning.as_deref(),
        ast::Statement::Update(update) => update.returning.as_deref(),
        ast::Statement::Delete(delete) => delete.returning.as_deref(),
        _ => None,
    }
}

/// An INSERT with RETURNING, planned.
#[derive(Debug)]
pub struct Returning {
    /// The INSERT without RETURNING.
    write: DmlStatement,
    /// The relation written to, which qualifies RETURNING's column names.
    target: String,
    /// The RETURNING list, over the written rows.
    exprs: Vec<Expr>,
}

impl Returning {
    /// Plans `stmt`, an INSERT with RETURNING.
    pub async fn plan(session: &Session, stmt: ast::Statement) -> Result<Self> {
        let mut insert = match stmt {
            ast::Statement::Insert(insert) => insert,
            other => {
                let command = super::insert::command(&other);
                return Err(unsupported(format!(
                    "{command} ... RETURNING is not supported yet; run the {command}, then SELECT the rows"
                )));
            }
        };
        let items = insert.returning.take().unwrap_or_default();
        if insert.on.is_some() {
            return Err(unsupported(
                "INSERT ... ON CONFLICT ... RETURNING is not supported yet; run the INSERT, then SELECT the rows"
                    .into(),
            ));
        }
        let ast::TableObject::TableName(name) = &insert.table else {
            return Err(unsupported("INSERT ... RETURNING needs a table or stream name".into()));
        };
        let target = crate::sql::normalize_object_name(name)?;
        let LogicalPlan::Dml(write) = crate::query::plan(session, ast::Statement::Insert(insert)).await? else {
            return Err(EddyError::Internal("an INSERT planned as something else".into()));
        };
        let rows = DFSchema::try_from_qualified_schema(target.as_str(), write.input.schema().as_arrow())?;
        let exprs = returning_exprs(session, &items, &rows)?;
        Ok(Self { write, target, exprs })
    }

    /// The columns RETURNING gives back (for Describe).
    pub fn schema(&self) -> Result<SchemaRef> {
        let empty = RecordBatch::new_empty(self.write.input.schema().inner().clone());
        Ok(self.project(empty)?.schema().inner().clone())
    }

    /// The INSERT's plan, for its parameter types.
    pub fn write_plan(&self) -> LogicalPlan {
        LogicalPlan::Dml(self.write.clone())
    }

    /// Writes the rows and returns RETURNING's values for them.
    pub async fn execute(self, session: &Session, params: Option<ParamValues>) -> Result<Reply> {
        let input = self.write.input.as_ref().clone();
        let (_, rows) = crate::query::run(session, input, params).await?;
        let schema = self.write.input.schema().inner().clone();
        let rows = datafusion::arrow::compute::concat_batches(&schema, &rows)
            .map_err(datafusion::error::DataFusionError::from)?;
        let written = scan(&self.target, rows.clone())?;
        let write = DmlStatement::new(
            self.write.table_name.clone(),
            self.write.target.clone(),
            self.write.op.clone(),
            Arc::new(written),
        );
        crate::query::run(session, LogicalPlan::Dml(write), None).await?;
        let (schema, batches) = crate::query::run(session, self.project(rows)?, None).await?;
        Ok(Reply::Returned { schema, batches })
    }

    /// RETURNING's list over `rows`.
    fn project(&self, rows: RecordBatch) -> Result<LogicalPlan> {
        let scan = scan(&self.target, rows)?;
        Ok(LogicalPlanBuilder::from(scan).project(self.exprs.clone())?.build()?)
    }
}

/// `rows`, as a relation named `target`.
fn scan(target: &str, rows: RecordBatch) -> Result<LogicalPlan> {
    let table = MemTable::try_new(rows.schema(), vec![vec![rows]])?;
    Ok(LogicalPlanBuilder::scan(target, provider_as_source(Arc::new(table)), None)?.build()?)
}

/// RETURNING's items as expressions over the written `rows`; `*` is every
/// column the user declared (a stream's `arrival_timestamp` is stamped
/// later, by the stream).
fn returning_exprs(session: &Session, items: &[ast::SelectItem], rows: &DFSchema) -> Result<Vec<Expr>> {
    let state = session.engine().read_state();
    let mut exprs = Vec::with_capacity(items.len());
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => exprs
                .extend(rows.columns().into_iter().filter(|c| c.name != crate::catalog::ARRIVAL_TIMESTAMP).map(col)),
            ast::SelectItem::UnnamedExpr(expr) => exprs.push(state.create_logical_expr(&expr.to_string(), rows)?),
            ast::SelectItem::ExprWithAlias { expr, alias } => exprs
                .push(state.create_logical_expr(&expr.to_string(), rows)?.alias(crate::sql::normalize_ident(alias))),
            other => return Err(unsupported(format!("RETURNING {other} is not supported; give one name per column"))),
        }
    }
    Ok(exprs)
}

fn unsupported(message: String) -> EddyError {
    SqlError::Unsupported(message).into()
}
