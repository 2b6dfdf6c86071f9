//! Binary forms Eddy writes itself, where arrow-pg's are wrong:
//!
//! - numeric: arrow-pg converts decimals through `rust_decimal`, which holds
//!   28 digits; `avg` and `sum` over bigint give up to 38, and failed to
//!   encode. The form is PostgreSQL's `numeric_send`: the digit count, the
//!   weight of the first base-10000 digit, the sign, the display scale, and
//!   the digits.
//! - interval: arrow-pg sends a NULL interval as a zero interval. The form
//!   is `interval_send`: microseconds, days, months.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, IntervalMonthDayNanoType, IntervalUnit};

const NEGATIVE: u16 = 0x4000;

/// The binary form of a numeric or interval column; `None` for other
/// columns.
pub fn binary(column: &ArrayRef) -> Option<ArrayRef> {
    match column.data_type() {
        DataType::Decimal128(..) => numerics(column),
        DataType::Interval(IntervalUnit::MonthDayNano) => intervals(column),
        _ => None,
    }
}

fn intervals(column: &ArrayRef) -> Option<ArrayRef> {
    let values = column.as_primitive_opt::<IntervalMonthDayNanoType>()?;
    let encoded: BinaryArray = values
        .iter()
        .map(|v| {
            v.map(|v| {
                let mut out = Vec::with_capacity(16);
                out.extend_from_slice(&(v.nanoseconds / 1000).to_be_bytes());
                out.extend_from_slice(&v.days.to_be_bytes());
                out.extend_from_slice(&v.months.to_be_bytes());
                out
            })
        })
        .collect();
    Some(Arc::new(encoded))
}

fn numerics(column: &ArrayRef) -> Option<ArrayRef> {
    let DataType::Decimal128(_, scale) = column.data_type() else {
        return None;
    };
    let scale = u16::try_from(*scale).ok()?;
    let values = column.as_primitive_opt::<Decimal128Type>()?;
    let encoded: BinaryArray = values.iter().map(|v| v.map(|v| numeric_send(v, scale))).collect();
    Some(Arc::new(encoded))
}

/// `numeric_send` of `value` × 10^-`scale`.
pub fn numeric_send(value: i128, scale: u16) -> Vec<u8> {
    let digits = value.unsigned_abs().to_string();
    let scale_digits = usize::from(scale);
    // At least one digit before the point.
    let digits = format!("{digits:0>width$}", width = scale_digits + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale_digits);
    // Pad to whole base-10000 digits: the whole part on the left, the
    // fraction on the right.
    let whole = format!("{}{whole}", "0".repeat((4 - whole.len() % 4) % 4));
    let fraction = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
    let mut groups: Vec<i16> =
        whole.as_bytes().chunks(4).chain(fraction.as_bytes().chunks(4)).map(group_value).collect();
    let mut weight = (whole.len() / 4) as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if value < 0 && !groups.is_empty() { NEGATIVE } else { 0 };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&scale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn group_value(chunk: &[u8]) -> i16 {
    chunk.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))
}

#[cfg(test)]
mod tests {
    use super::numeric_send;

    fn words(bytes: &[u8]) -> Vec<i16> {
        bytes.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_are_sent_as_postgresql_sends_them() {
        // SELECT numeric_send(x) in PostgreSQL 15, as 16-bit words:
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(words(&numeric_send(15_000, 4)), vec![2, 0, 0, 4, 1, 5000]);
        assert_eq!(words(&numeric_send(123_456_789, 2)), vec![3, 1, 0, 2, 123, 4567, 8900]);
        assert_eq!(words(&numeric_send(-5, 3)), vec![1, -1, 0x4000, 3, 50]);
        assert_eq!(words(&numeric_send(0, 2)), vec![0, 0, 0, 2]);
        assert_eq!(words(&numeric_send(100_000_000, 0)), vec![1, 2, 0, 0, 1]);
    }
}
