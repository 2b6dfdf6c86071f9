//! Bound parameters of a prepared statement, as DataFusion values.
//!
//! DataFusion infers each `$n`'s type from its context (`k = $1`, a column
//! of an INSERT). Text-format values are parsed with Arrow's casts, so they
//! follow the same rules as COPY; binary values are decoded by their
//! PostgreSQL type.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use rust_decimal::Decimal;

use crate::error::{EddyError, Result};
use crate::ingest::IngestError;

/// Orders DataFusion's `{"$1": type, ...}` into a list; a parameter it
/// left untyped takes the type the statement implies (`hints`, see
/// `crate::sql::param_hints`), else text.
pub fn ordered_types(types: &HashMap<String, Option<DataType>>, hints: &HashMap<usize, DataType>) -> Vec<DataType> {
    let count = types.keys().filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok()).max().unwrap_or(0);
    (1..=count)
        .map(|i| {
            let inferred = types.get(&format!("${i}")).cloned().flatten();
            inferred.or_else(|| hints.get(&i).cloned()).unwrap_or(DataType::Utf8)
        })
        .collect()
}

/// The SQL types the client declared in its Parse message for the
/// parameters (by number), where they are ones DataFusion may fail to infer
/// in a function's arguments: booleans and numbers.
pub fn declared_casts(declared: &[Option<Type>]) -> HashMap<usize, datafusion::sql::sqlparser::ast::DataType> {
    use datafusion::sql::sqlparser::ast::{DataType as Sql, ExactNumberInfo};
    declared
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let sql = match t.as_ref()? {
                t if *t == Type::BOOL => Sql::Boolean,
                t if *t == Type::INT2 => Sql::SmallInt(None),
                t if *t == Type::INT4 => Sql::Int(None),
                t if *t == Type::INT8 => Sql::BigInt(None),
                t if *t == Type::FLOAT4 => Sql::Real,
                t if *t == Type::FLOAT8 => Sql::DoublePrecision,
                t if *t == Type::NUMERIC => Sql::Numeric(ExactNumberInfo::None),
                _ => return None,
            };
            Some((i + 1, sql))
        })
        .collect()
}

/// The PostgreSQL type reported for a parameter of `data_type`.
pub fn pg_type(data_type: &DataType) -> Type {
    arrow_pg::datatypes::into_pg_type(data_type).unwrap_or(Type::TEXT)
}

/// Decodes the portal's parameters into values of `types`.
pub fn bind<S: Clone>(portal: &Portal<S>, types: &[DataType], pg_types: &[Type]) -> Result<ParamValues> {
    if portal.parameters.len() != types.len() {
        return Err(EddyError::Protocol(format!(
            "bind message supplies {} parameters, but prepared statement requires {}",
            portal.parameters.len(),
            types.len()
        )));
    }
    let mut values = Vec::with_capacity(types.len());
    for (i, (raw, data_type)) in portal.parameters.iter().zip(types).enumerate() {
        let value = match raw {
            None => ScalarValue::try_from(data_type)?,
            Some(bytes) if portal.parameter_format.is_binary(i) => {
                let pg = pg_types.get(i).cloned().unwrap_or_else(|| pg_type(data_type));
                binary_value(portal, i, &pg, bytes)?
            }
            Some(bytes) => text_value(bytes, i)?,
        };
        values.push(cast(value, data_type, i)?);
    }
    Ok(ParamValues::List(values.into_iter().map(Into::into).collect()))
}

fn text_value(bytes: &Bytes, i: usize) -> Result<ScalarValue> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| IngestError::InvalidText(format!("parameter ${} is not valid UTF-8", i + 1)))?;
    Ok(ScalarValue::Utf8(Some(text.to_string())))
}

fn cast(value: ScalarValue, target: &DataType, i: usize) -> Result<ScalarValue> {
    if &value.data_type() == target {
        return Ok(value);
    }
    if let (ScalarValue::Utf8(Some(text)), DataType::List(_)) = (&value, target) {
        return array_text(text, target, i);
    }
    // PostgreSQL's text for intervals and timestamps, in the form Arrow parses.
    let value = match (value, target) {
        (ScalarValue::Utf8(Some(t)), DataType::Interval(_)) => {
            ScalarValue::Utf8(Some(crate::catalog::types::interval_text(&t)))
        }
        (ScalarValue::Utf8(Some(t)), DataType::Timestamp(..)) => {
            ScalarValue::Utf8(Some(crate::catalog::types::timestamp_text(&t).into_owned()))
        }
        (value, _) => value,
    };
    let text = value.to_string();
    value.cast_to(target).map_err(|_| {
        IngestError::InvalidText(format!("invalid input syntax for parameter ${} of type {target}: \"{text}\"", i + 1))
            .into()
    })
}

/// PostgreSQL's array text (`{1,2,NULL}`) as a list of `target`'s type.
fn array_text(text: &str, target: &DataType, i: usize) -> Result<ScalarValue> {
    let texts = datafusion::arrow::array::StringArray::from(vec![text]);
    let list = crate::query::array_text::array_in(&texts)?;
    let list = datafusion::arrow::compute::cast(&list, target).map_err(|e| {
        IngestError::InvalidText(format!(
            "invalid input syntax for parameter ${} of type {target}: \"{text}\" ({e})",
            i + 1
        ))
    })?;
    Ok(ScalarValue::try_from_array(&list, 0)?)
}

/// A binary array parameter, as a list of `item`s.
fn list_value<T>(
    values: Option<Vec<Option<T>>>,
    item: DataType,
    scalar: impl Fn(Option<T>) -> ScalarValue,
) -> ScalarValue {
    match values {
        Some(values) => {
            let scalars: Vec<ScalarValue> = values.into_iter().map(scalar).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &item))
        }
        None => ScalarValue::try_from(&DataType::new_list(item, true)).unwrap_or(ScalarValue::Null),
    }
}

fn binary_value<S: Clone>(portal: &Portal<S>, i: usize, pg: &Type, bytes: &Bytes) -> Result<ScalarValue> {
    let bad = |e: pgwire::error::PgWireError| -> EddyError {
        IngestError::InvalidText(format!("invalid binary value for parameter ${}: {e}", i + 1)).into()
    };
    Ok(match *pg {
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, pg).map_err(bad)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, pg).map_err(bad)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, pg).map_err(bad)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, pg).map_err(bad)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, pg).map_err(bad)?),
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, pg).map_err(bad)?),
        Type::DATE => {
            let d = portal.parameter::<NaiveDate>(i, pg).map_err(bad)?;
            ScalarValue::Utf8(d.map(|d| d.to_string()))
        }
        Type::TIMESTAMP => {
            let t = portal.parameter::<NaiveDateTime>(i, pg).map_err(bad)?;
            ScalarValue::TimestampMicrosecond(t.map(|t| t.and_utc().timestamp_micros()), None)
        }
        Type::TIMESTAMPTZ => {
            let t = portal.parameter::<DateTime<FixedOffset>>(i, pg).map_err(bad)?;
            ScalarValue::TimestampMicrosecond(t.map(|t| t.timestamp_micros()), Some("+00:00".into()))
        }
        Type::NUMERIC => {
            let d = portal.parameter::<Decimal>(i, pg).map_err(bad)?;
            ScalarValue::Utf8(d.map(|d| d.to_string()))
        }
        Type::JSON | Type::JSONB => {
            let v = portal.parameter::<serde_json::Value>(i, pg).map_err(bad)?;
            ScalarValue::Utf8(v.map(|v| v.to_string()))
        }
        Type::INTERVAL => interval_value(bytes, i)?,
        Type::INT2_ARRAY => list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Int16, ScalarValue::Int16),
        Type::INT4_ARRAY => list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Int32, ScalarValue::Int32),
        Type::INT8_ARRAY => list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Int64, ScalarValue::Int64),
        Type::FLOAT4_ARRAY => {
            list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Float32, ScalarValue::Float32)
        }
        Type::FLOAT8_ARRAY => {
            list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Float64, ScalarValue::Float64)
        }
        Type::BOOL_ARRAY => list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Boolean, ScalarValue::Boolean),
        Type::OID_ARRAY => {
            list_value(portal.parameter::<Vec<Option<u32>>>(i, pg).map_err(bad)?, DataType::Int32, |v| {
                ScalarValue::Int32(v.and_then(|v| i32::try_from(v).ok()))
            })
        }
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            list_value(portal.parameter(i, pg).map_err(bad)?, DataType::Utf8, ScalarValue::Utf8)
        }
        _ => text_value(bytes, i)?,
    })
}

/// A binary interval, as PostgreSQL sends it: microseconds (int8), then
/// days and months (int4 each), big-endian.
fn interval_value(bytes: &Bytes, i: usize) -> Result<ScalarValue> {
    let bad =
        || IngestError::InvalidText(format!("invalid binary interval for parameter ${}: {} bytes", i + 1, bytes.len()));
    let (micros, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
    let (days, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let months: &[u8; 4] = rest.try_into().map_err(|_| bad())?;
    let nanos = i64::from_be_bytes(*micros).checked_mul(1000).ok_or_else(bad)?;
    let value = IntervalMonthDayNano::new(i32::from_be_bytes(*months), i32::from_be_bytes(*days), nanos);
    Ok(ScalarValue::IntervalMonthDayNano(Some(value)))
}
