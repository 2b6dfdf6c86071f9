//! Time functions for windowed views, and the engine clock in SQL.
//!
//! - PipelineDB's helpers: `minute(ts)`, `hour(ts)`, `day(ts)`, `month(ts)`
//!   and `year(ts)` truncate a timestamp, and `date_round(ts, interval)`
//!   rounds it down to a multiple of the interval since the epoch. They run
//!   DataFusion's vectorized `date_trunc` and `date_bin`.
//! - `now()`, `current_timestamp`, `clock_timestamp()` and friends read the
//!   engine's [`Clock`], and `eddy_set_clock(ts)` / `eddy_advance_clock(interval)`
//!   move a manual one (tests), then expire what the new time expires.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::catalog::Catalog;
use crate::clock::Clock;

/// A timestamp truncation or rounding, delegated to `date_trunc` or `date_bin`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeBucket {
    name: &'static str,
    /// The `date_trunc` unit; `None` for `date_round`.
    unit: Option<&'static str>,
    signature: Signature,
}

impl TimeBucket {
    fn new(name: &'static str, unit: Option<&'static str>) -> Self {
        Self { name, unit, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn delegate(&self) -> Arc<ScalarUDF> {
        match self.unit {
            Some(_) => datafusion::functions::datetime::date_trunc(),
            None => datafusion::functions::datetime::date_bin(),
        }
    }
}

fn timestamp_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        }
        _ => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match (self.unit, arg_types) {
            (Some(_), [ts]) => Ok(vec![timestamp_type(ts)]),
            (None, [ts, _]) => Ok(vec![timestamp_type(ts), DataType::Interval(IntervalUnit::MonthDayNano)]),
            (Some(_), _) => plan_err!("{}(timestamp) takes one argument", self.name),
            (None, _) => plan_err!("date_round(timestamp, interval) takes two arguments"),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(timestamp_type(t)),
            None => plan_err!("{} needs a timestamp", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ScalarFunctionArgs { args: values, arg_fields, number_rows, return_field, config_options } = args;
        let (values, arg_fields) = match (self.unit, values.as_slice(), arg_fields.as_slice()) {
            (Some(unit), [ts], [ts_field]) => (
                vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some(unit.to_string()))), ts.clone()],
                vec![Arc::new(Field::new("unit", DataType::Utf8, false)), ts_field.clone()],
            ),
            (None, [ts, stride], [ts_field, stride_field]) => {
                (vec![stride.clone(), ts.clone()], vec![stride_field.clone(), ts_field.clone()])
            }
            _ => return exec_err!("{} got the wrong number of arguments", self.name),
        };
        self.delegate().invoke_with_args(ScalarFunctionArgs {
            args: values,
            arg_fields,
            number_rows,
            return_field,
            config_options,
        })
    }
}

/// Registers `minute`, `hour`, `day`, `month`, `year` and `date_round`.
pub fn register_time_helpers(state: &mut SessionState) -> Result<()> {
    for (name, unit) in [("minute", "minute"), ("hour", "hour"), ("day", "day"), ("month", "month"), ("year", "year")] {
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(TimeBucket::new(name, Some(unit)))))?;
    }
    state.register_udf(Arc::new(ScalarUDF::new_from_impl(TimeBucket::new("date_round", None))))?;
    Ok(())
}

/// What a clock function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClockOp {
    /// Reads the clock.
    Now,
    /// `eddy_set_clock(timestamptz)`.
    Set,
    /// `eddy_advance_clock(interval)`.
    Advance,
}

#[derive(Debug)]
struct ClockFunction {
    name: &'static str,
    aliases: Vec<String>,
    op: ClockOp,
    signature: Signature,
    clock: Arc<Clock>,
    catalog: Arc<Catalog>,
}

impl PartialEq for ClockFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.clock, &other.clock)
    }
}

impl Eq for ClockFunction {}

impl std::hash::Hash for ClockFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

impl ScalarUDFImpl for ClockFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(timestamptz())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let external = |e: crate::clock::ClockError| {
            datafusion::error::DataFusionError::External(Box::new(super::WindowError::Clock(e)))
        };
        let now = match (self.op, args.args.first()) {
            (ClockOp::Now, _) => self.clock.now_micros(),
            (ClockOp::Set, Some(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(Some(t), _)))) => {
                self.clock.set(*t).map_err(external)?
            }
            (ClockOp::Advance, Some(ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(i))))) => {
                let micros = super::interval_micros("eddy_advance_clock", "the interval", *i)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                self.clock.advance(micros).map_err(external)?
            }
            _ => return exec_err!("{} takes one constant, non-null argument", self.name),
        };
        if self.op != ClockOp::Now {
            for view in self.catalog.views() {
                view.expire(now);
            }
        }
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(Some(now), Some("+00:00".into()))))
    }
}

/// Points `clock_timestamp()` (and, on a manual clock, `now()`) at `clock`, and registers
/// `eddy_set_clock` and `eddy_advance_clock`.
pub fn register_clock(state: &mut SessionState, clock: Arc<Clock>, catalog: Arc<Catalog>) -> Result<()> {
    let function = |name: &'static str, aliases: &[&str], op: ClockOp, signature: Signature| ClockFunction {
        name,
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        op,
        signature,
        clock: clock.clone(),
        catalog: catalog.clone(),
    };
    let stable = || Signature::exact(vec![], Volatility::Stable);
    let functions = [
        function("now", &["current_timestamp", "localtimestamp"], ClockOp::Now, stable()),
        function("clock_timestamp", &[], ClockOp::Now, Signature::exact(vec![], Volatility::Volatile)),
        function("statement_timestamp", &["transaction_timestamp"], ClockOp::Now, stable()),
        function("eddy_set_clock", &[], ClockOp::Set, Signature::exact(vec![timestamptz()], Volatility::Volatile)),
        function(
            "eddy_advance_clock",
            &[],
            ClockOp::Advance,
            Signature::exact(vec![DataType::Interval(IntervalUnit::MonthDayNano)], Volatility::Volatile),
        ),
    ];
    for f in functions {
        // On the system clock, DataFusion's own now() is right: one value
        // per statement, as PostgreSQL's.
        if f.name == "now" && !clock.is_manual() {
            continue;
        }
        state.register_udf(Arc::new(ScalarUDF::new_from_impl(f)))?;
    }
    Ok(())
}
