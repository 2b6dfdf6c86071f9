//! Text cast to a timestamp or an interval reads as PostgreSQL reads it.
//!
//! Arrow's timestamp parser wants seconds, and its interval parser units:
//! `timestamp '2026-12-09 10:00'`, `interval '1 day 02:00:00'`, a
//! comparison of a column with such a literal, and an INSERT of that text
//! all failed, where PostgreSQL takes them. An analyzer rule, run after
//! type coercion, puts `pg_datetime_text` under every cast of text to a
//! timestamp or an interval; it rewrites each value with
//! [`crate::catalog::types::timestamp_text`] or
//! [`crate::catalog::types::interval_text`] and leaves the cast to Arrow.
//!
//! The other way, an interval cast to text prints as PostgreSQL prints it
//! (`01:30:00`, not Arrow's `1 hours 30 mins`): the rule puts
//! `pg_interval_out` ([`crate::catalog::types::interval_out`]) in the cast.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType, IntervalUnit};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::catalog::types::{interval_out, interval_text, timestamp_text};

/// The analyzer rule; see the module doc.
#[derive(Debug, Default)]
pub struct DatetimeText;

impl AnalyzerRule for DatetimeText {
    fn name(&self) -> &str {
        "eddy_datetime_text"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::analyzer::rewrite_expressions(plan, rewrite)
    }
}

/// `CAST(text AS timestamp)` as `CAST(pg_datetime_text(text) AS timestamp)`,
/// and the same for intervals.
fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let (inner, to) = match &expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => (expr, field.data_type()),
        _ => return Ok(Transformed::no(expr)),
    };
    let is_text = |e: &Expr| {
        e.get_type(schema).is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8))
    };
    let already = matches!(inner.as_ref(), Expr::ScalarFunction(f) if f.func.name().starts_with(PREFIX));
    let interval = DataType::Interval(IntervalUnit::MonthDayNano);
    if matches!(to, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
        && inner.get_type(schema).is_ok_and(|t| t == interval)
    {
        return Ok(Transformed::yes(wrap(expr, INTERVAL_OUT.clone())));
    }
    let udf = match to {
        DataType::Timestamp(..) => TIMESTAMP.clone(),
        DataType::Interval(_) => INTERVAL.clone(),
        _ => return Ok(Transformed::no(expr)),
    };
    if already || !is_text(inner) {
        return Ok(Transformed::no(expr));
    }
    Ok(Transformed::yes(wrap(expr, udf)))
}

/// A cast with `udf` applied to what it casts.
fn wrap(expr: Expr, udf: Arc<ScalarUDF>) -> Expr {
    let call = |inner: Box<Expr>| Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*inner])));
    match expr {
        Expr::Cast(c) => Expr::Cast(Cast { expr: call(c.expr), field: c.field }),
        Expr::TryCast(c) => Expr::TryCast(TryCast { expr: call(c.expr), field: c.field }),
        other => other,
    }
}

const PREFIX: &str = "pg_datetime_text";

static TIMESTAMP: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Normalize::new(false))));
static INTERVAL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(Normalize::new(true))));

static INTERVAL_OUT: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| Arc::new(ScalarUDF::from(IntervalOut::default())));

/// `pg_interval_out(interval)`: PostgreSQL's text of an interval.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalOut {
    signature: Signature,
}

impl Default for IntervalOut {
    fn default() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for IntervalOut {
    fn name(&self) -> &str {
        "pg_interval_out"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Internal("pg_interval_out takes one argument".into()));
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(1)?;
        let intervals = array.as_primitive_opt::<IntervalMonthDayNanoType>().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!("pg_interval_out of {}", array.data_type()))
        })?;
        let text: StringArray =
            intervals.iter().map(|v| v.map(|v| interval_out(v.months, v.days, v.nanoseconds / 1000))).collect();
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&text, 0)?),
            false => ColumnarValue::Array(Arc::new(text)),
        })
    }
}

/// Text in the form Arrow's parser takes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Normalize {
    interval: bool,
    signature: Signature,
}

impl Normalize {
    fn new(interval: bool) -> Self {
        Self { interval, signature: Signature::any(1, Volatility::Immutable) }
    }

    fn text(&self, value: &str) -> String {
        if self.interval { interval_text(value) } else { timestamp_text(value).into_owned() }
    }
}

impl ScalarUDFImpl for Normalize {
    fn name(&self) -> &str {
        if self.interval { "pg_datetime_text_interval" } else { PREFIX }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Internal(format!("{PREFIX} takes one argument")));
        };
        match arg {
            ColumnarValue::Scalar(scalar) => {
                let text = match scalar {
                    ScalarValue::Utf8(v) | ScalarValue::Utf8View(v) | ScalarValue::LargeUtf8(v) => v.as_deref(),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(text.map(|t| self.text(t)))))
            }
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(self.normalize(array)?)),
        }
    }
}

impl Normalize {
    fn normalize(&self, array: &ArrayRef) -> Result<ArrayRef> {
        let strings = cast(array, &DataType::Utf8)?;
        let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else {
            return Ok(strings);
        };
        let normalized: StringArray = strings.iter().map(|v| v.map(|v| self.text(v))).collect();
        Ok(Arc::new(normalized) as ArrayRef)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<String> {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(DatetimeText));
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn times_without_seconds_are_read() {
        let out = run("SELECT CAST('2026-12-09 10:00' AS TIMESTAMP) AS a, \
             CAST(t AS TIMESTAMP) AS b FROM (VALUES ('2026-12-09 7:05'), (NULL)) AS v(t)")
        .await
        .unwrap();
        assert!(out.contains("| 2026-12-09T10:00:00 | 2026-12-09T07:05:00 |"), "{out}");
        let compared = run("SELECT count(*) AS n FROM (VALUES (CAST('2026-12-09 10:30:00' AS TIMESTAMP))) AS v(ts) \
             WHERE ts > '2026-12-09 10:00'")
        .await
        .unwrap();
        assert!(compared.contains("| 1 |"), "{compared}");
        assert!(run("SELECT CAST('2026-12-09 25:00' AS TIMESTAMP)").await.is_err(), "a bad time stays an error");
        let intervals = run("SELECT CAST('1 day 02:03:04.5' AS INTERVAL) = CAST('1 day 2 hours 3 minutes 4.5 seconds' AS INTERVAL) AS same")
            .await
            .unwrap();
        assert!(intervals.contains("| true |"), "{intervals}");
        let printed = run("SELECT CAST(CAST('90 minutes' AS INTERVAL) AS TEXT) AS t, CAST(i AS TEXT) AS u \
             FROM (VALUES (CAST('1 day' AS INTERVAL)), (NULL)) AS v(i)")
        .await
        .unwrap();
        assert!(printed.contains("| 01:30:00 | 1 day |") && printed.contains("| 01:30:00 |       |"), "{printed}");
    }
}
