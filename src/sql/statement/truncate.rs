//! `SELECT pipelinedb.truncate_continuous_view('v')`: forget a view's state.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Value};

use super::Reply;
use crate::error::Result;
use crate::server::Session;
use crate::sql::SqlError;

/// Clears one continuous view.
#[derive(Debug, Clone)]
pub struct TruncateView {
    /// The view to clear.
    pub view: String,
}

impl TruncateView {
    /// Recognizes `SELECT pipelinedb.truncate_continuous_view('v')` (also
    /// without the schema); any other query gives `None`.
    pub fn from_query(query: &Query) -> Result<Option<Self>, SqlError> {
        let Some(f) = super::lone_function_call(query) else {
            return Ok(None);
        };
        let name = f.name.to_string().to_lowercase();
        if name != "pipelinedb.truncate_continuous_view" && name != "truncate_continuous_view" {
            return Ok(None);
        }
        let FunctionArguments::List(args) = &f.args else {
            return Err(SqlError::InvalidParameter("truncate_continuous_view needs a view name".into()));
        };
        match args.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
                Value::SingleQuotedString(s) => Ok(Some(Self { view: s.to_lowercase() })),
                _ => Err(SqlError::InvalidParameter("truncate_continuous_view takes the view name as a string".into())),
            },
            _ => Err(SqlError::InvalidParameter("truncate_continuous_view takes exactly one view name".into())),
        }
    }

    /// The one column the statement returns, as PostgreSQL's function call would.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("truncate_continuous_view", DataType::Utf8, true)]))
    }

    /// Clears the view's state; later events start it afresh.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let engine = session.engine();
        let view = engine.catalog.view(&self.view)?;
        if let Some(sink) = engine.sinks.reading(&self.view) {
            // Truncating forgets the groups without retracting them, which
            // would leave them in the sink's topic.
            return Err(crate::sink::SinkError::Unsupported(format!(
                "sink \"{sink}\" reads \"{}\", and truncating would leave its rows in the sink's topic; DROP SINK {sink} first",
                self.view
            ))
            .into());
        }
        {
            let _admitted = engine.catalog.durability().admit().await;
            view.truncate()?;
        }
        engine.ddl_done().await?;
        let schema = Self::schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![""]))])
            .map_err(|e| crate::error::EddyError::Internal(e.to_string()))?;
        Ok(Reply::Rows { schema, batches: vec![batch] })
    }
}
