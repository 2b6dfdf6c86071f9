//! `to_timestamp(text, template)` and `to_date(text, template)` with
//! PostgreSQL's template patterns, the same ones `to_char` prints
//! (`YYYY-MM-DD HH24:MI:SS`, `DD Mon YYYY`, `HH12:MI am`, `TZH:TZM`, `J`),
//! and `to_timestamp(seconds since 1970)`. They replace DataFusion's, which
//! took strftime's `%Y` and refused PostgreSQL's templates.
//!
//! Reading follows PostgreSQL's rules outside FX mode: blanks around values
//! are skipped, a separator in the template matches any one separator in
//! the text, fields missing at the end take their first value, text past
//! the template is ignored, and day names, `D` and `Q` are read and
//! ignored. A pattern that cannot be read (`TZ`, `OF`, week numbers) is an
//! error that says so. Results are in UTC, the session time zone.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use super::to_char::{DAYS, Field, MONTHS, Piece, parse};
use crate::catalog::types::{UTC, timestamp_text, timestamptz};

/// Why a text could not be read, with PostgreSQL's SQLSTATE.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The text does not match the template (22007).
    #[error("{0}")]
    Invalid(String),
    /// A field is out of range, like month 13 (22008).
    #[error("date/time field value out of range: \"{0}\"")]
    OutOfRange(String),
    /// The template has a pattern these functions do not read (0A000).
    #[error("{0}")]
    Unsupported(String),
}

/// The fields read from a text, before they are checked.
#[derive(Debug, Default)]
struct Read {
    year: Option<i32>,
    bc: bool,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    julian: Option<i64>,
    hour: u32,
    hour12: bool,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    micros: u32,
    offset_minutes: i32,
    tz_negative: bool,
}

/// Reads `text` with the parsed template, as a UTC time. Fields after the
/// end of the text keep their first value.
fn read(text: &str, pieces: &[Piece]) -> Result<NaiveDateTime, ReadError> {
    let mut fields = Read::default();
    let mut rest = text;
    for piece in pieces {
        match piece {
            Piece::Text(literal) => rest = skip_literal(rest, literal),
            Piece::Field { field, .. } => {
                rest = rest.trim_start();
                if rest.is_empty() {
                    break;
                }
                rest = read_field(rest, *field, &mut fields)?;
            }
        }
    }
    assemble(&fields, text)
}

/// Skips template text outside FX mode: a blank skips any blanks, a
/// separator skips one separator, any other character one character.
fn skip_literal<'a>(mut rest: &'a str, literal: &str) -> &'a str {
    for c in literal.chars() {
        if c.is_whitespace() {
            rest = rest.trim_start();
            continue;
        }
        let Some(next) = rest.chars().next() else { return rest };
        let separator = !next.is_alphanumeric();
        if next.eq_ignore_ascii_case(&c) || separator || c.is_alphanumeric() {
            rest = &rest[next.len_utf8()..];
        }
    }
    rest
}

fn read_field<'a>(rest: &'a str, field: Field, f: &mut Read) -> Result<&'a str, ReadError> {
    let name = pattern_name(field);
    Ok(match field {
        Field::Year4 | Field::Year3 | Field::Year2 | Field::Year1 | Field::YearComma => {
            let width = match field {
                Field::Year3 => 3,
                Field::Year2 => 2,
                Field::Year1 => 1,
                _ => 4,
            };
            let (mut year, mut len) = digits(rest, width, name)?;
            if field == Field::YearComma && rest[len..].starts_with(',') {
                let (thousands, more) = digits(&rest[len + 1..], 3, name)?;
                (year, len) = (year * 1000 + thousands, len + 1 + more);
            }
            let partial = matches!(field, Field::Year1 | Field::Year2 | Field::Year3);
            let year = i32::try_from(year).map_err(|_| invalid_value(rest, name))?;
            f.year = Some(if partial { partial_year(year) } else { year });
            &rest[len..]
        }
        Field::Month => number(rest, 2, name, |v| f.month = Some(v as u32))?,
        Field::Day => number(rest, 2, name, |v| f.day = Some(v as u32))?,
        Field::DayOfYear => number(rest, 3, name, |v| f.day_of_year = Some(v as u32))?,
        Field::Hour24 => number(rest, 2, name, |v| f.hour = v as u32)?,
        Field::Hour12 => number(rest, 2, name, |v| (f.hour, f.hour12) = (v as u32, true))?,
        Field::Minute => number(rest, 2, name, |v| f.minute = v as u32)?,
        Field::Second => number(rest, 2, name, |v| f.second = v as u32)?,
        Field::SecondsOfDay => number(rest, 5, name, |v| {
            (f.hour, f.minute, f.second) = ((v / 3600) as u32, (v / 60 % 60) as u32, (v % 60) as u32)
        })?,
        Field::Millis | Field::Micros => {
            let width = if field == Field::Millis { 3 } else { 6 };
            if rest.starts_with('-') {
                return Err(invalid_value(rest, name));
            }
            let (value, len) = digits(rest, width, name)?;
            f.micros = (value * 10i64.pow((6 - len) as u32)) as u32;
            &rest[len..]
        }
        Field::Julian => number(rest, 8, name, |v| f.julian = Some(v))?,
        Field::MonthName(_) | Field::MonthAbbrev(_) => {
            let (month, len) = name_at(rest, &MONTHS, matches!(field, Field::MonthAbbrev(_)))
                .ok_or_else(|| invalid_value(rest, name))?;
            f.month = Some(month as u32 + 1);
            &rest[len..]
        }
        Field::DayName(_) | Field::DayAbbrev(_) => {
            let (_, len) = name_at(rest, &DAYS, false).ok_or_else(|| invalid_value(rest, name))?;
            &rest[len..]
        }
        Field::Meridiem { .. } => read_meridiem(rest, f).ok_or_else(|| invalid_value(rest, name))?,
        Field::Era { .. } => read_era(rest, f).ok_or_else(|| invalid_value(rest, name))?,
        Field::TzHours => read_tz_hours(rest, f)?,
        Field::TzMinutes => number(rest, 2, name, |v| {
            let minutes = v as i32;
            f.offset_minutes += if f.tz_negative { -minutes } else { minutes };
        })?,
        Field::DayOfWeek | Field::IsoDayOfWeek | Field::Quarter => number(rest, 1, name, |_| {})?,
        Field::TimeZone { .. } | Field::Offset => {
            return Err(ReadError::Unsupported(format!("formatting field \"{name}\" is only supported in to_char")));
        }
        _ => {
            return Err(ReadError::Unsupported(format!(
                "template pattern \"{name}\" is not supported by to_timestamp and to_date yet"
            )));
        }
    })
}

/// A pattern's name, for messages.
fn pattern_name(field: Field) -> &'static str {
    match field {
        Field::Year4 => "YYYY",
        Field::Year3 => "YYY",
        Field::Year2 => "YY",
        Field::Year1 => "Y",
        Field::YearComma => "Y,YYY",
        Field::Month => "MM",
        Field::Day => "DD",
        Field::DayOfYear => "DDD",
        Field::Hour24 => "HH24",
        Field::Hour12 => "HH12",
        Field::Minute => "MI",
        Field::Second => "SS",
        Field::SecondsOfDay => "SSSS",
        Field::Millis => "MS",
        Field::Micros => "US",
        Field::Julian => "J",
        Field::MonthName(_) => "Month",
        Field::MonthAbbrev(_) => "Mon",
        Field::DayName(_) => "Day",
        Field::DayAbbrev(_) => "Dy",
        Field::Meridiem { .. } => "AM",
        Field::Era { .. } => "BC",
        Field::TzHours => "TZH",
        Field::TzMinutes => "TZM",
        Field::TimeZone { .. } => "TZ",
        Field::Offset => "OF",
        Field::Century => "CC",
        Field::IsoYear(_) => "IYYY",
        Field::IsoWeek => "IW",
        Field::WeekOfYear => "WW",
        Field::WeekOfMonth => "W",
        Field::IsoDayOfYear => "IDDD",
        Field::Roman { .. } => "RM",
        Field::DayOfWeek => "D",
        Field::IsoDayOfWeek => "ID",
        Field::Quarter => "Q",
    }
}

fn invalid_value(rest: &str, name: &str) -> ReadError {
    let shown: String = rest.chars().take_while(|c| c.is_alphanumeric()).take(20).collect();
    ReadError::Invalid(format!("invalid value \"{shown}\" for \"{name}\""))
}

/// Up to `width` digits (a leading `-` allowed), and how many bytes they took.
fn digits(rest: &str, width: usize, name: &str) -> Result<(i64, usize), ReadError> {
    let sign = usize::from(rest.starts_with('-'));
    let len = rest[sign..].bytes().take(width).take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return Err(invalid_value(rest, name));
    }
    let value: i64 = rest[sign..sign + len].parse().map_err(|_| invalid_value(rest, name))?;
    Ok((if sign == 1 { -value } else { value }, sign + len))
}

fn number<'a>(rest: &'a str, width: usize, name: &str, set: impl FnOnce(i64)) -> Result<&'a str, ReadError> {
    let (value, len) = digits(rest, width, name)?;
    set(value);
    Ok(&rest[len..])
}

/// A year read by `Y`, `YY` or `YYY`, as PostgreSQL completes it, by its
/// value: the year nearest to 2020.
fn partial_year(year: i32) -> i32 {
    match year {
        ..70 => year + 2000,
        70..100 => year + 1900,
        100..520 => year + 2000,
        520..1000 => year + 1000,
        _ => year,
    }
}

/// The name in `names` (or its first three letters) at the start of `rest`,
/// in any case: its index and length.
fn name_at(rest: &str, names: &[&str], abbreviated_only: bool) -> Option<(usize, usize)> {
    let starts = |candidate: &str| rest.get(..candidate.len()).is_some_and(|h| h.eq_ignore_ascii_case(candidate));
    names.iter().enumerate().find_map(|(i, n)| {
        if !abbreviated_only && starts(n) { Some((i, n.len())) } else { starts(&n[..3]).then_some((i, 3)) }
    })
}

fn read_meridiem<'a>(rest: &'a str, f: &mut Read) -> Option<&'a str> {
    for (text, pm) in [("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)] {
        if rest.get(..text.len()).is_some_and(|h| h.eq_ignore_ascii_case(text)) {
            f.pm = Some(pm);
            return Some(&rest[text.len()..]);
        }
    }
    None
}

fn read_era<'a>(rest: &'a str, f: &mut Read) -> Option<&'a str> {
    for (text, bc) in [("b.c.", true), ("a.d.", false), ("bc", true), ("ad", false)] {
        if rest.get(..text.len()).is_some_and(|h| h.eq_ignore_ascii_case(text)) {
            f.bc = bc;
            return Some(&rest[text.len()..]);
        }
    }
    None
}

fn read_tz_hours<'a>(rest: &'a str, f: &mut Read) -> Result<&'a str, ReadError> {
    let (negative, digits_at) = match rest.as_bytes().first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let (hours, len) = digits(&rest[digits_at..], 2, "TZH")?;
    f.tz_negative = negative;
    f.offset_minutes = if negative { -(hours as i32) * 60 } else { hours as i32 * 60 };
    Ok(&rest[digits_at + len..])
}

/// The fields as one UTC time; a field out of range is an error.
fn assemble(f: &Read, text: &str) -> Result<NaiveDateTime, ReadError> {
    let out_of_range = || ReadError::OutOfRange(text.to_string());
    let year = match (f.year, f.bc) {
        (Some(y), true) => 1 - y,
        (Some(y), false) => y,
        (None, _) => 0,
    };
    let date = if let Some(j) = f.julian {
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(j - 1_721_425).map_err(|_| out_of_range())?)
    } else if let (Some(doy), None) = (f.day_of_year, f.month) {
        NaiveDate::from_yo_opt(year, doy)
    } else {
        NaiveDate::from_ymd_opt(year, f.month.unwrap_or(1), f.day.unwrap_or(1))
    }
    .ok_or_else(out_of_range)?;
    let hour = if f.hour12 {
        if !(1..=12).contains(&f.hour) {
            return Err(ReadError::OutOfRange(format!(
                "{text}\" (hour \"{}\" is invalid for the 12-hour clock; use HH24",
                f.hour
            )));
        }
        f.hour % 12 + if f.pm == Some(true) { 12 } else { 0 }
    } else {
        f.hour
    };
    let local = date.and_hms_micro_opt(hour, f.minute, f.second, f.micros).ok_or_else(out_of_range)?;
    local.checked_sub_signed(chrono::Duration::minutes(i64::from(f.offset_minutes))).ok_or_else(out_of_range)
}

/// Which function a [`ReadTemplate`] is.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Output {
    Timestamp,
    Date,
}

/// PostgreSQL's `to_timestamp` or `to_date`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ReadTemplate {
    output: Output,
    signature: Signature,
}

/// The `to_timestamp` UDF.
pub fn to_timestamp_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ReadTemplate::new(Output::Timestamp))
}

/// The `to_date` UDF.
pub fn to_date_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ReadTemplate::new(Output::Date))
}

impl ReadTemplate {
    fn new(output: Output) -> Self {
        let signature = Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable);
        Self { output, signature }
    }

    fn name(&self) -> &'static str {
        match self.output {
            Output::Timestamp => "to_timestamp",
            Output::Date => "to_date",
        }
    }
}

impl ScalarUDFImpl for ReadTemplate {
    fn name(&self) -> &str {
        ReadTemplate::name(self)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null);
        match (self.output, args) {
            (_, [a, b]) if text(a) && text(b) => {}
            (Output::Timestamp, [n]) if n.is_numeric() || n == &DataType::Null => {}
            _ => {
                let types: Vec<String> = args.iter().map(|t| t.to_string()).collect();
                return plan_err!(
                    "function {}({}) does not exist; it takes a text and a template, as {}('2026-12-09', 'YYYY-MM-DD'){}",
                    self.name(),
                    types.join(", "),
                    self.name(),
                    if self.output == Output::Timestamp { ", or seconds since 1970" } else { "" }
                );
            }
        }
        Ok(match self.output {
            Output::Timestamp => timestamptz(),
            Output::Date => DataType::Date32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let array = match args.args.as_slice() {
            [seconds] => from_epoch(&seconds.to_array(rows)?)?,
            [text, template] => self.read_all(&text.to_array(rows)?, &template.to_array(rows)?)?,
            _ => return exec_err!("{} takes a text and a template", self.name()),
        };
        super::pg_functions::shaped_like(&args.args, array)
    }
}

impl ReadTemplate {
    fn read_all(&self, texts: &ArrayRef, templates: &ArrayRef) -> Result<ArrayRef> {
        let (texts, templates) = (cast(texts, &DataType::Utf8)?, cast(templates, &DataType::Utf8)?);
        let (texts, templates) = (texts.as_string::<i32>(), templates.as_string::<i32>());
        let mut cache: Option<(String, Vec<Piece>)> = None;
        let mut out = Vec::with_capacity(texts.len());
        for i in 0..texts.len() {
            if texts.is_null(i) || templates.is_null(i) {
                out.push(None);
                continue;
            }
            let template = templates.value(i);
            if cache.as_ref().is_none_or(|(t, _)| t != template) {
                let pieces = parse(template).map_err(|m| external(ReadError::Unsupported(m)))?;
                cache = Some((template.to_string(), pieces));
            }
            let pieces = cache.as_ref().map(|(_, p)| p.as_slice()).unwrap_or_default();
            out.push(Some(read(texts.value(i), pieces).map_err(external)?));
        }
        Ok(match self.output {
            Output::Timestamp => Arc::new(
                out.into_iter()
                    .map(|t| t.map(|t| t.and_utc().timestamp_micros()))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone(UTC),
            ),
            Output::Date => Arc::new(
                out.into_iter()
                    .map(|t| t.map(|t| (t.date() - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days() as i32))
                    .collect::<Date32Array>(),
            ),
        })
    }
}

/// `to_timestamp(seconds)`: seconds since 1970 as a timestamptz; text is
/// read as a timestamp.
fn from_epoch(values: &ArrayRef) -> Result<ArrayRef> {
    if matches!(values.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
        let texts = cast(values, &DataType::Utf8)?;
        let texts: StringArray = texts.as_string::<i32>().iter().map(|v| v.map(timestamp_text)).collect();
        return Ok(cast(&texts, &timestamptz())?);
    }
    let seconds = cast(values, &DataType::Float64)?;
    let micros: TimestampMicrosecondArray = seconds
        .as_primitive::<Float64Type>()
        .iter()
        .map(|s| s.filter(|s| s.is_finite()).map(|s| (s * 1e6).round() as i64))
        .collect();
    Ok(Arc::new(micros.with_timezone(UTC)))
}

fn external(e: ReadError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, template: &str) -> Result<String, String> {
        let pieces = parse(template)?;
        read(text, &pieces).map(|t| t.to_string()).map_err(|e| e.to_string())
    }

    /// Each answer is PostgreSQL 15's.
    #[test]
    fn reads_as_postgres_does() {
        let cases = [
            ("2026-12-09 10:30", "YYYY-MM-DD HH24:MI", "2026-12-09 10:30:00"),
            ("2026", "YYYY-MM-DD", "2026-01-01 00:00:00"),
            ("26-12-09", "YY-MM-DD", "2026-12-09 00:00:00"),
            ("2026-12-09 10:30:00.5", "YYYY-MM-DD HH24:MI:SS.MS", "2026-12-09 10:30:00.500"),
            ("2026-12-09 10:30:00.5", "YYYY-MM-DD HH24:MI:SS.US", "2026-12-09 10:30:00.500"),
            ("09 Dec 2026 3:05 pm", "DD Mon YYYY HH12:MI am", "2026-12-09 15:05:00"),
            ("2026/12/09", "YYYY-MM-DD", "2026-12-09 00:00:00"),
            ("20261209", "YYYYMMDD", "2026-12-09 00:00:00"),
            ("2026-12-09 10:30 +05:30", "YYYY-MM-DD HH24:MI TZH:TZM", "2026-12-09 05:00:00"),
            ("December 9, 2026", "Month DD, YYYY", "2026-12-09 00:00:00"),
            ("2026-12-09 10:30", "YYYY-MM-DD", "2026-12-09 00:00:00"),
            ("2026-12-09  10:30", "YYYY-MM-DD HH24:MI", "2026-12-09 10:30:00"),
            ("Wednesday 2026-12-09", "Day YYYY-MM-DD", "2026-12-09 00:00:00"),
            ("2026-12-09 12:30 AM", "YYYY-MM-DD HH:MI AM", "2026-12-09 00:30:00"),
            ("2026-343", "YYYY-DDD", "2026-12-09 00:00:00"),
            ("2461384", "J", "2026-12-09 00:00:00"),
            ("9/12/26", "DD/MM/YYYY", "0026-12-09 00:00:00"),
            ("099-12-09", "YYY-MM-DD", "1999-12-09 00:00:00"),
            ("2,026-12-09", "Y,YYY-MM-DD", "2026-12-09 00:00:00"),
            ("12:30", "HH12:MI", "0000-01-01 00:30:00"),
            ("2026 12:30 pm", "YYYY HH12:MI am", "2026-01-01 12:30:00"),
        ];
        for (text, template, expected) in cases {
            assert_eq!(at(text, template).as_deref(), Ok(expected), "{text} / {template}");
        }
    }

    #[test]
    fn bad_text_and_unread_patterns_are_errors() {
        let out_of_range = "date/time field value out of range: \"2026-13-09\"";
        assert_eq!(at("2026-13-09", "YYYY-MM-DD"), Err(out_of_range.into()));
        assert!(at("2026-02-30", "YYYY-MM-DD").is_err());
        assert!(at("2026-12-09 25:30", "YYYY-MM-DD HH24:MI").is_err());
        assert_eq!(at("2026-xx-09", "YYYY-MM-DD"), Err("invalid value \"xx\" for \"MM\"".into()));
        assert_eq!(
            at("2026-12-09 10:30 UTC", "YYYY-MM-DD HH24:MI TZ"),
            Err("formatting field \"TZ\" is only supported in to_char".into())
        );
        assert!(at("2026 50", "YYYY IW").unwrap_err().contains("not supported by to_timestamp"));
        assert!(at("2026 13:00", "YYYY HH12:MI").unwrap_err().contains("invalid for the 12-hour clock"));
        // These panicked once: a comma inside a multibyte text, a signed
        // fraction, and an offset past the last day chrono has.
        assert_eq!(at("20é,", "Y,YYY"), Ok("0020-01-01 00:00:00".into()));
        assert!(at("12:00:00.-123456", "HH24:MI:SS.US").is_err());
        let last = i64::from(chrono::Datelike::num_days_from_ce(&chrono::NaiveDate::MAX)) + 1_721_425;
        assert!(at(&format!("{last} 23:00 -15"), "J HH24:MI TZH").is_err(), "past chrono's last day");
    }
}
