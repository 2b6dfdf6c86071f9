//! `pg_notify(channel, payload)`: NOTIFY as a function, so that a prepared
//! statement (`SELECT pg_notify($1, $2)`) or a query can send one.
//!
//! The sender's process id depends on the session, and a function cannot
//! see its session, so [`with_sender`] rewrites each call before planning
//! into `pg_notify(channel, payload, pid)`: the third argument is the
//! session's process id.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};

use crate::push::Notifier;

/// The function, sending through `notifier`.
#[derive(Debug)]
struct PgNotify {
    signature: Signature,
    notifier: Arc<Notifier>,
}

impl PartialEq for PgNotify {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PgNotify {}

impl std::hash::Hash for PgNotify {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "pg_notify".hash(state);
    }
}

impl ScalarUDFImpl for PgNotify {
    fn name(&self) -> &str {
        "pg_notify"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        // PostgreSQL's is void, which prints as an empty string.
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |a: &ArrayRef| -> Result<StringArray> {
            let cast = cast(a, &DataType::Utf8)?;
            Ok(cast.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::from(vec![""; 0])))
        };
        let (Some(channels), Some(payloads)) = (arrays.first(), arrays.get(1)) else {
            return exec_err!("pg_notify takes a channel and a payload");
        };
        let (channels, payloads) = (text(channels)?, text(payloads)?);
        let pids = match arrays.get(2) {
            Some(p) => cast(p, &DataType::Int32)?.as_any().downcast_ref::<Int32Array>().cloned(),
            None => None,
        };
        for i in 0..rows.min(channels.len()) {
            if channels.is_null(i) {
                return exec_err!("channel name cannot be empty");
            }
            let payload = if payloads.is_null(i) { "" } else { payloads.value(i) };
            let pid = pids.as_ref().map_or(0, |p| p.value(i));
            self.notifier
                .notify(pid, channels.value(i), payload)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![""; rows]))))
    }
}

/// Registers `pg_notify`, sending through `notifier`.
pub fn register(state: &mut datafusion::execution::context::SessionState, notifier: Arc<Notifier>) -> Result<()> {
    let signature = Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
        ],
        Volatility::Volatile,
    );
    let udf = ScalarUDF::new_from_impl(PgNotify { signature, notifier });
    state.register_udf(Arc::new(udf))?;
    Ok(())
}

/// Adds the session's process id `pid` to every `pg_notify(channel, payload)` in `stmt`.
pub fn with_sender(stmt: &mut ast::Statement, pid: i32) {
    let _ = ast::visit_expressions_mut(stmt, |expr| {
        if let Expr::Function(f) = expr
            && f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("pg_notify"))
            && let FunctionArguments::List(list) = &mut f.args
            && list.args.len() == 2
        {
            let pid = Expr::value(ast::Value::Number(pid.to_string(), false));
            list.args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(pid)));
        }
        ControlFlow::<()>::Continue(())
    });
}
