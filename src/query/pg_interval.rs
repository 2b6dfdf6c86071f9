//! PostgreSQL's interval functions DataFusion lacks: `age(a, b)` and
//! `age(a)`, the difference of two timestamps in years, months, days and
//! time, as PostgreSQL's `timestamp_age` computes it; and `justify_hours`,
//! `justify_days` and `justify_interval`, which carry 24 hours into a day
//! and 30 days into a month.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use datafusion::arrow::array::{ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
const DAYS_PER_MONTH: i32 = 30;
const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let justify = [
        ("justify_hours", justify_hours as fn(IntervalMonthDayNano) -> IntervalMonthDayNano),
        ("justify_days", justify_days),
        ("justify_interval", justify_interval),
    ];
    let mut udfs: Vec<ScalarUDF> = justify
        .into_iter()
        .map(|(name, f)| {
            datafusion::logical_expr::create_udf(
                name,
                vec![INTERVAL],
                INTERVAL,
                Volatility::Immutable,
                Arc::new(move |args: &[ColumnarValue]| map_intervals(args, f)),
            )
        })
        .collect();
    udfs.push(ScalarUDF::new_from_impl(Age::default()));
    udfs
}

fn map_intervals(args: &[ColumnarValue], f: fn(IntervalMonthDayNano) -> IntervalMonthDayNano) -> Result<ColumnarValue> {
    let Some(arg) = args.first() else {
        return exec_err!("expected one interval");
    };
    let array = arg.to_array(1)?;
    let out: IntervalMonthDayNanoArray = array.as_primitive::<IntervalMonthDayNanoType>().unary(f);
    match arg {
        ColumnarValue::Scalar(_) => Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)),
        ColumnarValue::Array(_) => Ok(ColumnarValue::Array(Arc::new(out))),
    }
}

/// Whole days of `nanos`, and what is left (the sign of `nanos`).
fn split_days(nanos: i64) -> (i32, i64) {
    ((nanos / NANOS_PER_DAY) as i32, nanos % NANOS_PER_DAY)
}

/// `justify_hours`: 24 hours become a day.
pub fn justify_hours(i: IntervalMonthDayNano) -> IntervalMonthDayNano {
    let (whole, nanos) = split_days(i.nanoseconds);
    let (days, nanos) = same_sign(i.days + whole, nanos);
    IntervalMonthDayNano::new(i.months, days, nanos)
}

/// `justify_days`: 30 days become a month.
pub fn justify_days(i: IntervalMonthDayNano) -> IntervalMonthDayNano {
    let mut months = i.months + i.days / DAYS_PER_MONTH;
    let mut days = i.days % DAYS_PER_MONTH;
    if months > 0 && days < 0 {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && days > 0 {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    IntervalMonthDayNano::new(months, days, i.nanoseconds)
}

/// `justify_interval`: both, with every field given one sign.
pub fn justify_interval(i: IntervalMonthDayNano) -> IntervalMonthDayNano {
    let (whole, nanos) = split_days(i.nanoseconds);
    let days = i.days + whole;
    let mut months = i.months + days / DAYS_PER_MONTH;
    let mut days = days % DAYS_PER_MONTH;
    if months > 0 && (days < 0 || (days == 0 && nanos < 0)) {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && nanos > 0)) {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    let (days, nanos) = same_sign(days, nanos);
    IntervalMonthDayNano::new(months, days, nanos)
}

/// `days` and `nanos` (less than a day) with one sign, as PostgreSQL
/// leaves them: a day borrowed into the time, or given back.
fn same_sign(days: i32, nanos: i64) -> (i32, i64) {
    if days > 0 && nanos < 0 {
        (days - 1, nanos + NANOS_PER_DAY)
    } else if days < 0 && nanos > 0 {
        (days + 1, nanos - NANOS_PER_DAY)
    } else {
        (days, nanos)
    }
}

/// `age(a, b)`, and `age(a)` (from today's midnight).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Age {
    signature: Signature,
}

impl Default for Age {
    fn default() -> Self {
        let signature = Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Stable);
        Self { signature }
    }
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let timestamps = args.iter().all(|t| matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Null));
        if !timestamps {
            let names: Vec<String> = args.iter().map(ToString::to_string).collect();
            return plan_err!("function age({}) does not exist: age takes timestamps or dates", names.join(", "));
        }
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let micros = |a: &ColumnarValue| -> Result<ArrayRef> {
            Ok(cast(&a.to_array(rows)?, &DataType::Timestamp(TimeUnit::Microsecond, None))?)
        };
        let (later, earlier) = match args.args.as_slice() {
            [a, b] => (micros(a)?, micros(b)?),
            [a] => {
                let midnight =
                    chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
                let today = ScalarValue::TimestampMicrosecond(midnight, None).to_array_of_size(rows)?;
                (today, micros(a)?)
            }
            _ => return exec_err!("age takes one or two timestamps"),
        };
        let (later, earlier) =
            (later.as_primitive::<TimestampMicrosecondType>(), earlier.as_primitive::<TimestampMicrosecondType>());
        let out: IntervalMonthDayNanoArray = later
            .iter()
            .zip(earlier.iter())
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => timestamp_age(a, b),
                _ => None,
            })
            .collect();
        match scalar {
            true => Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)),
            false => Ok(ColumnarValue::Array(Arc::new(out))),
        }
    }
}

/// Days in `month` (1-12) of `year`.
fn days_in_month(year: i32, month: u32) -> i64 {
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    match (next, NaiveDate::from_ymd_opt(year, month, 1)) {
        (Some(next), Some(first)) => (next - first).num_days(),
        _ => 30,
    }
}

/// PostgreSQL's `timestamp_age` of two timestamps in microseconds: the
/// fields' differences, borrowing from the next larger field, with the
/// days of the month before the later date's borrowed.
pub fn timestamp_age(a: i64, b: i64) -> Option<IntervalMonthDayNano> {
    let (t1, t2) = (DateTime::from_timestamp_micros(a)?.naive_utc(), DateTime::from_timestamp_micros(b)?.naive_utc());
    let field = |t: &chrono::NaiveDateTime| -> [i64; 7] {
        [
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1000),
        ]
    };
    let (f1, f2) = (field(&t1), field(&t2));
    let mut d: [i64; 7] = std::array::from_fn(|i| f1[i] - f2[i]);
    let flip = a < b;
    if flip {
        d.iter_mut().for_each(|x| *x = -*x);
    }
    let [year, mon, mday, hour, min, sec, usec] = &mut d;
    while *usec < 0 {
        *usec += 1_000_000;
        *sec -= 1;
    }
    while *sec < 0 {
        *sec += 60;
        *min -= 1;
    }
    while *min < 0 {
        *min += 60;
        *hour -= 1;
    }
    while *hour < 0 {
        *hour += 24;
        *mday -= 1;
    }
    while *mday < 0 {
        let (y, m) = if flip { (t1.year(), t1.month()) } else { (t2.year(), t2.month()) };
        *mday += days_in_month(y, m);
        *mon -= 1;
    }
    while *mon < 0 {
        *mon += 12;
        *year -= 1;
    }
    if flip {
        d.iter_mut().for_each(|x| *x = -*x);
    }
    let [year, mon, mday, hour, min, sec, usec] = d;
    let nanos = (((hour * 60 + min) * 60 + sec) * 1_000_000 + usec) * 1000;
    Some(IntervalMonthDayNano::new((year * 12 + mon) as i32, mday as i32, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or(0)
    }

    fn age(a: &str, b: &str) -> (i32, i32, i64) {
        let i = timestamp_age(micros(a), micros(b)).unwrap_or(IntervalMonthDayNano::new(0, 0, 0));
        (i.months, i.days, i.nanoseconds / 1_000_000_000)
    }

    /// The answers PostgreSQL 15 gives.
    #[test]
    fn age_borrows_as_postgresql_does() {
        // age('2001-04-10', '1957-06-13') = 43 years 9 mons 27 days
        assert_eq!(age("2001-04-10 00:00:00", "1957-06-13 00:00:00"), (43 * 12 + 9, 27, 0));
        // age('2020-03-01', '2020-02-15') = 15 days
        assert_eq!(age("2020-03-01 00:00:00", "2020-02-15 00:00:00"), (0, 15, 0));
        // age('2020-02-15', '2020-03-01') = -15 days
        assert_eq!(age("2020-02-15 00:00:00", "2020-03-01 00:00:00"), (0, -15, 0));
        // age('2020-01-02 01:00', '2020-01-01 23:00') = 02:00:00
        assert_eq!(age("2020-01-02 01:00:00", "2020-01-01 23:00:00"), (0, 0, 7200));
        // age('2021-03-31', '2021-02-28 12:00') = 1 mon 2 days 12:00:00
        assert_eq!(age("2021-03-31 00:00:00", "2021-02-28 12:00:00"), (1, 2, 43200));
    }

    #[test]
    fn justify_as_postgresql_does() {
        let hours = |h: i64| h * 3_600_000_000_000;
        let j = justify_hours(IntervalMonthDayNano::new(0, 0, hours(27)));
        assert_eq!((j.months, j.days, j.nanoseconds), (0, 1, hours(3)));
        let j = justify_days(IntervalMonthDayNano::new(0, 35, 0));
        assert_eq!((j.months, j.days), (1, 5));
        // justify_interval('1 mon -1 hour') = 29 days 23:00:00
        let j = justify_interval(IntervalMonthDayNano::new(1, 0, -hours(1)));
        assert_eq!((j.months, j.days, j.nanoseconds), (0, 29, hours(23)));
    }
}
