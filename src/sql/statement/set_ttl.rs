//! `SELECT pipelinedb.set_ttl('view', interval '1 day', 'column')`: change
//! (or, with NULLs, remove) a view's retention, as PipelineDB did.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Value};

use super::Reply;
use crate::error::Result;
use crate::planner::PlanError;
use crate::server::Session;
use crate::sql::SqlError;
use crate::window::{Ttl, parse_duration};

/// Sets one view's TTL.
#[derive(Debug, Clone)]
pub struct SetTtl {
    /// The view.
    pub view: String,
    /// The TTL as interval text, or `None` to remove it.
    pub ttl: Option<String>,
    /// The grouped timestamp column it applies to.
    pub column: Option<String>,
}

const USAGE: &str = "set_ttl takes a view name, an interval and a column: set_ttl('v', interval '1 day', 'minute'), or NULLs to remove the TTL";

/// A string, interval or NULL argument as text.
fn text_arg(arg: &FunctionArg) -> Result<Option<String>, SqlError> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg else {
        return Err(SqlError::InvalidParameter(USAGE.into()));
    };
    let value = match expr {
        Expr::Interval(i) => return text_arg(&FunctionArg::Unnamed(FunctionArgExpr::Expr(*i.value.clone()))),
        Expr::Cast { expr, .. } => return text_arg(&FunctionArg::Unnamed(FunctionArgExpr::Expr(*expr.clone()))),
        Expr::Value(v) => &v.value,
        _ => return Err(SqlError::InvalidParameter(USAGE.into())),
    };
    match value {
        Value::SingleQuotedString(s) => Ok(Some(s.clone())),
        Value::Null => Ok(None),
        _ => Err(SqlError::InvalidParameter(USAGE.into())),
    }
}

impl SetTtl {
    /// Recognizes `SELECT pipelinedb.set_ttl(...)`; any other query gives `None`.
    pub fn from_query(query: &Query) -> Result<Option<Self>, SqlError> {
        let Some(f) = super::lone_function_call(query) else {
            return Ok(None);
        };
        let name = f.name.to_string().to_lowercase();
        if name != "pipelinedb.set_ttl" && name != "set_ttl" {
            return Ok(None);
        }
        let FunctionArguments::List(args) = &f.args else {
            return Err(SqlError::InvalidParameter(USAGE.into()));
        };
        let [view, ttl, column] = args.args.as_slice() else {
            return Err(SqlError::InvalidParameter(USAGE.into()));
        };
        let view = text_arg(view)?.ok_or_else(|| SqlError::InvalidParameter(USAGE.into()))?.to_lowercase();
        Ok(Some(Self { view, ttl: text_arg(ttl)?, column: text_arg(column)?.map(|c| c.to_lowercase()) }))
    }

    /// The one column the statement returns.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("set_ttl", DataType::Boolean, true)]))
    }

    /// Changes the TTL and checkpoints; expired groups go at the next sweep.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let engine = session.engine();
        let view = engine.catalog.view(&self.view)?;
        let ttl = match (self.ttl, self.column) {
            (Some(ttl), Some(column)) => {
                Some(Ttl { ttl: parse_duration("ttl", &ttl).map_err(PlanError::from)?, column })
            }
            (None, None) => None,
            _ => return Err(SqlError::InvalidParameter(USAGE.into()).into()),
        };
        view.set_ttl(ttl).map_err(PlanError::from)?;
        view.expire(engine.catalog.clock().now_micros());
        engine.ddl_done().await?;
        let schema = Self::schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(BooleanArray::from(vec![true]))])
            .map_err(|e| crate::error::EddyError::Internal(e.to_string()))?;
        Ok(Reply::Rows { schema, batches: vec![batch] })
    }
}
