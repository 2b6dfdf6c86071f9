//! Integer `+`, `-` and `*` that fail on overflow, as in PostgreSQL.
//!
//! DataFusion's integer arithmetic wraps around: `300::int2 * 300::int2` is
//! 24464 and `9223372036854775807 + 1` is negative, silently. PostgreSQL
//! refuses both with 22003 (`smallint out of range`, `bigint out of range`).
//! An analyzer rule, run after type coercion, turns every integer `+`, `-`
//! and `*` into a checked function of the same name, keeping the
//! expression's output name; any other arithmetic is left as it is.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Datum};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// A value outside its integer type's range, with PostgreSQL's message.
#[derive(Debug, thiserror::Error)]
#[error("{type_name} out of range")]
pub struct OutOfRange {
    /// `smallint`, `integer` or `bigint`.
    pub type_name: &'static str,
}

/// The analyzer rule that checks integer arithmetic; see the module doc.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "eddy_checked_integer_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::analyzer::rewrite_expressions(plan, checked)
    }
}

/// `l op r` as a checked call where both sides are integers.
fn checked(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(udf) = udf_for(*op) else {
        return Ok(Transformed::no(expr));
    };
    let integer = |e: &Expr| e.get_type(schema).is_ok_and(|t| t.is_integer());
    if !integer(left) || !integer(right) {
        return Ok(Transformed::no(expr));
    }
    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))))
}

static ADD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Checked::new(Operator::Plus))));
static SUB: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Checked::new(Operator::Minus))));
static MUL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Checked::new(Operator::Multiply))));

fn udf_for(op: Operator) -> Option<Arc<ScalarUDF>> {
    match op {
        Operator::Plus => Some(ADD.clone()),
        Operator::Minus => Some(SUB.clone()),
        Operator::Multiply => Some(MUL.clone()),
        _ => None,
    }
}

/// One checked operator over two integers of one type (coercion made them so).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Operator,
    name: &'static str,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Self {
        let name = match op {
            Operator::Plus => "int_add",
            Operator::Minus => "int_sub",
            _ => "int_mul",
        };
        Self { op, name, signature: Signature::any(2, Volatility::Immutable) }
    }

    fn apply(&self, left: &dyn Datum, right: &dyn Datum) -> std::result::Result<ArrayRef, ArrowError> {
        match self.op {
            Operator::Plus => numeric::add(left, right),
            Operator::Minus => numeric::sub(left, right),
            _ => numeric::mul(left, right),
        }
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return Err(datafusion::error::DataFusionError::Internal(format!("{} takes two arguments", self.name)));
        };
        let array = match (left, right) {
            (ColumnarValue::Scalar(l), ColumnarValue::Scalar(r)) => self.apply(&l.to_scalar()?, &r.to_scalar()?),
            (ColumnarValue::Scalar(l), ColumnarValue::Array(r)) => self.apply(&l.to_scalar()?, r),
            (ColumnarValue::Array(l), ColumnarValue::Scalar(r)) => self.apply(l, &r.to_scalar()?),
            (ColumnarValue::Array(l), ColumnarValue::Array(r)) => self.apply(l, r),
        };
        let array = match array {
            Ok(array) => array,
            Err(ArrowError::ArithmeticOverflow(_)) => {
                let type_name = type_name(&left.data_type());
                return Err(datafusion::error::DataFusionError::External(Box::new(OutOfRange { type_name })));
            }
            Err(e) => return Err(e.into()),
        };
        super::pg_functions::shaped_like(&args.args, array)
    }
}

/// PostgreSQL's name of an integer type, for [`OutOfRange`].
fn type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        _ => "bigint",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(CheckedIntegerArithmetic));
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    fn message(e: datafusion::error::DataFusionError) -> String {
        crate::error::clean_datafusion_message(&e)
    }

    #[tokio::test]
    async fn integer_overflow_is_an_error_with_the_type_name() {
        let cases = [
            ("SELECT CAST(300 AS SMALLINT) * CAST(300 AS SMALLINT)", "smallint out of range"),
            ("SELECT CAST(2147483647 AS INT) + CAST(1 AS INT)", "integer out of range"),
            ("SELECT 9223372036854775807 + 1", "bigint out of range"),
            ("SELECT -9223372036854775807 - 2", "bigint out of range"),
            ("SELECT x * x FROM (VALUES (CAST(5000000000 AS BIGINT)), (1)) AS t(x)", "bigint out of range"),
        ];
        for (sql, expected) in cases {
            let e = run(sql).await.expect_err(sql);
            assert_eq!(message(e), expected, "{sql}");
        }
    }

    #[tokio::test]
    async fn arithmetic_in_range_keeps_its_value_and_name() {
        let out = run("SELECT x * 2, x - 1 AS y, x + x FROM (VALUES (CAST(3 AS INT)), (NULL)) AS t(x)").await.unwrap();
        assert!(out.contains("| t.x * Int64(2) | y | t.x + t.x |"), "{out}");
        assert!(out.contains("| 6              | 2 | 6         |"), "{out}");
        let floats = run("SELECT 1e308 * 10.0 AS f").await.unwrap();
        assert!(floats.contains("inf"), "floats are left as they are: {floats}");
        let grouped = run("SELECT sum(x * x) AS s FROM (VALUES (3), (4)) AS t(x)").await.unwrap();
        assert!(grouped.contains("| 25 |"), "{grouped}");
    }
}
