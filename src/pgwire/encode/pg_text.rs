//! PostgreSQL's text output where arrow-pg's differs: numerics past 28
//! digits, floats (`4`, not `4.0`; `1e+20`), timestamps (`2024-01-01
//! 10:00:00+00`, fractions only when non-zero), and intervals (PostgreSQL's
//! `interval_out`, and NULL as NULL). The overridden columns are sent as
//! text; their type OID stays.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;

use crate::catalog::types::interval_out;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};

/// The PostgreSQL text of a float or timestamp column; `None` for columns
/// arrow-pg already writes as PostgreSQL does.
pub fn text(column: &ArrayRef) -> Option<ArrayRef> {
    let text: StringArray = match column.data_type() {
        DataType::Float64 => {
            column.as_primitive_opt::<Float64Type>()?.iter().map(|v| v.map(|v| float(v, 15))).collect()
        }
        DataType::Float32 => {
            column.as_primitive_opt::<Float32Type>()?.iter().map(|v| v.map(|v| float(f64::from(v), 6))).collect()
        }
        DataType::Timestamp(unit, tz) => timestamps(column, unit, tz.is_some())?,
        DataType::Interval(IntervalUnit::MonthDayNano) => column
            .as_primitive_opt::<IntervalMonthDayNanoType>()?
            .iter()
            .map(|v| v.map(|v| interval_out(v.months, v.days, v.nanoseconds / 1000)))
            .collect(),
        // arrow-pg goes through rust_decimal's 28 digits; Arrow's text has
        // all 38 and the scale's trailing zeros, as PostgreSQL's.
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            return cast(column, &DataType::Utf8).ok();
        }
        _ => return None,
    };
    Some(Arc::new(text))
}

/// float8out: the shortest text that reads back the same value, in
/// exponent form when the decimal exponent is below -4 or at least
/// `max_exponent` (15 for float8, 6 for float4).
pub fn float(v: f64, max_exponent: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let shortest = if max_exponent <= 6 { format!("{:e}", v as f32) } else { format!("{v:e}") };
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= max_exponent {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let negative = mantissa.starts_with('-');
    let point = exponent + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    if negative { format!("-{body}") } else { body }
}

fn timestamps(array: &ArrayRef, unit: &TimeUnit, with_zone: bool) -> Option<StringArray> {
    let to_micros = |v: i64| match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    };
    let raw = cast(array, &DataType::Int64).ok()?;
    let values = raw.as_primitive_opt::<Int64Type>()?;
    Some(values.iter().map(|v| v.map(|v| timestamp(to_micros(v), with_zone))).collect())
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` with trailing zeros trimmed, `+00` for UTC.
pub fn timestamp(micros: i64, with_zone: bool) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let fraction = micros.rem_euclid(1_000_000);
    if fraction != 0 {
        let f = format!("{fraction:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    if with_zone {
        out.push_str("+00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(float(4.0, 15), "4");
        assert_eq!(float(2.5, 15), "2.5");
        assert_eq!(float(1e20, 15), "1e+20");
        assert_eq!(float(123456789012.0, 15), "123456789012");
        assert_eq!(float(1e15, 15), "1e+15");
        assert_eq!(float(0.0001, 15), "0.0001");
        assert_eq!(float(0.00001, 15), "1e-05");
        assert_eq!(float(-0.1, 15), "-0.1");
        assert_eq!(float(1.0 / 3.0, 15), "0.3333333333333333");
        assert_eq!(float(f64::from(1.1f32), 6), "1.1");
        assert_eq!(float(1234567.0, 6), "1.234567e+06");
    }

    #[test]
    fn timestamps_print_like_postgres() {
        assert_eq!(timestamp(0, true), "1970-01-01 00:00:00+00");
        assert_eq!(timestamp(1_500_000, false), "1970-01-01 00:00:01.5");
    }
}
