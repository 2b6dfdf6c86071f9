//! `extract(field FROM t)` and `date_part('field', t)` for the fields
//! PostgreSQL has and DataFusion's `date_part` lacks: `century`,
//! `millennium`, `decade`, `julian`, and `timezone`, `timezone_hour` and
//! `timezone_minute` (always 0: Eddy's session time zone is UTC, and
//! timestamps are shown there). Every other field goes to DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int32Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// A field Eddy adds to DataFusion's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Extra {
    Century,
    Millennium,
    Decade,
    Julian,
    TimeZone,
}

fn extra(part: &str) -> Option<Extra> {
    Some(match part.trim().trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase().as_str() {
        "century" | "centuries" | "c" => Extra::Century,
        "millennium" | "millenniums" | "millennia" | "mil" => Extra::Millennium,
        "decade" | "decades" | "dec" => Extra::Decade,
        "julian" | "j" => Extra::Julian,
        "timezone" | "timezone_hour" | "timezone_minute" => Extra::TimeZone,
        _ => return None,
    })
}

/// The Julian day of 1970-01-01, PostgreSQL's (days start at midnight).
const UNIX_EPOCH_JULIAN: f64 = 2_440_588.0;

/// `date_part` with the fields above.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgDatePart {
    inner: Arc<ScalarUDF>,
    /// DataFusion's aliases, and `extract`, the name `pg_syntax` gives
    /// `extract(field FROM t)` so that its column is named as PostgreSQL
    /// names it.
    aliases: Vec<String>,
}

/// The `date_part` UDF, in place of DataFusion's.
pub fn udf() -> ScalarUDF {
    let inner = datafusion::functions::datetime::date_part();
    let aliases = inner.aliases().iter().cloned().chain(std::iter::once("extract".to_string())).collect();
    ScalarUDF::new_from_impl(PgDatePart { inner, aliases })
}

impl PgDatePart {
    /// DataFusion's `date_part` of `part` over the same value.
    fn inner_part(&self, part: &str, args: &ScalarFunctionArgs, returns: DataType) -> Result<ArrayRef> {
        let value = args.args.get(1).cloned().unwrap_or(ColumnarValue::Scalar(ScalarValue::Null));
        let inner = ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some(part.into()))), value],
            arg_fields: args.arg_fields.clone(),
            number_rows: args.number_rows,
            return_field: Arc::new(Field::new("date_part", returns, true)),
            config_options: args.config_options.clone(),
        };
        self.inner.invoke_with_args(inner)?.into_array(args.number_rows)
    }

    fn extra_part(&self, part: Extra, args: &ScalarFunctionArgs) -> Result<ArrayRef> {
        if part == Extra::Julian {
            let epoch = cast(&self.inner_part("epoch", args, DataType::Float64)?, &DataType::Float64)?;
            let days: Float64Array = epoch
                .as_primitive::<Float64Type>()
                .iter()
                .map(|s| s.map(|s| s / 86_400.0 + UNIX_EPOCH_JULIAN))
                .collect();
            return Ok(Arc::new(days));
        }
        let years = cast(&self.inner_part("year", args, DataType::Int32)?, &DataType::Int32)?;
        let of = |year: i32| match part {
            Extra::Century => (year + 99).div_euclid(100),
            Extra::Millennium => (year + 999).div_euclid(1000),
            Extra::Decade => year.div_euclid(10),
            _ => 0,
        };
        let values: Int32Array = years.as_primitive::<Int32Type>().iter().map(|y| y.map(of)).collect();
        Ok(Arc::new(values))
    }
}

impl ScalarUDFImpl for PgDatePart {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        exec_err!("date_part's type depends on its field; return_field_from_args gives it")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let part = args.scalar_arguments.first().copied().flatten().and_then(|p| p.try_as_str().flatten());
        match part.and_then(extra) {
            Some(part) => {
                let value_type = args.arg_fields.get(1).map(|f| f.data_type());
                if part == Extra::TimeZone && !matches!(value_type, Some(DataType::Timestamp(_, Some(_)))) {
                    let shown = value_type.map(|t| t.to_string()).unwrap_or_default();
                    return plan_err!("unit \"timezone\" not supported for type {shown}; it applies to timestamptz");
                }
                let nullable = args.arg_fields.get(1).is_none_or(|f| f.is_nullable());
                let data_type = if part == Extra::Julian { DataType::Float64 } else { DataType::Int32 };
                Ok(Arc::new(Field::new(self.name(), data_type, nullable)))
            }
            None => self.inner.return_field_from_args(args),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let part = match args.args.first() {
            Some(ColumnarValue::Scalar(p)) => p.try_as_str().flatten().and_then(extra),
            _ => None,
        };
        let Some(part) = part else {
            return self.inner.invoke_with_args(args);
        };
        let array = self.extra_part(part, &args)?;
        super::pg_functions::shaped_like(&args.args, array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// Each answer is PostgreSQL 15's.
    #[tokio::test]
    async fn centuries_millennia_decades_and_julian_days() {
        let config = datafusion::prelude::SessionConfig::new().set_str("datafusion.execution.time_zone", "+00:00");
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udf(udf());
        let sql = "SELECT date_part('century', DATE '2026-12-09') AS c, date_part('century', DATE '2000-06-01') AS c2, \
                   date_part('millennium', TIMESTAMP '2026-12-09 10:00:00') AS m, date_part('decade', DATE '2026-12-09') AS d, \
                   date_part('julian', DATE '2026-12-09') AS j, date_part('julian', TIMESTAMP '2026-01-01 12:00:00') AS j2, \
                   date_part('timezone', CAST('2026-12-09 10:00:00+02' AS TIMESTAMP WITH TIME ZONE)) AS tz, \
                   extract('year', DATE '2026-12-09') AS y";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let out = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(out.contains("| 21 | 20 | 3 | 202 | 2461384.0 | 2461042.5 | 0  | 2026 |"), "{out}");
        let e = ctx.sql("SELECT date_part('timezone', DATE '2026-12-09')").await.unwrap_err();
        assert!(e.to_string().contains("not supported for type Date32"), "{e}");
    }
}
