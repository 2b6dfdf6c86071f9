//! `to_char(timestamp | timestamptz | date, template)` with PostgreSQL's
//! template patterns (`YYYY-MM-DD HH24:MI:SS`, `FMMonth DDth`, `"quoted"`
//! text), replacing DataFusion's `to_char`, which takes strftime's `%Y` and
//! so printed a PostgreSQL template back as its own text.
//!
//! Timestamps are formatted in UTC, Eddy's session time zone. A pattern
//! PostgreSQL has and Eddy does not, and `to_char` of a number or an
//! interval, are errors that say so, never a silent literal.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Piece {
    /// Printed as is.
    Text(String),
    /// A field, with `FM` (no padding) and `TH`/`th` (an ordinal suffix).
    Field { field: Field, fill: bool, ordinal: Option<bool> },
}

/// The fields Eddy formats. The case of a name's letters (`Month`,
/// `MONTH`, `month`) picks the case of the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Field {
    Hour24,
    Hour12,
    Minute,
    Second,
    Millis,
    Micros,
    SecondsOfDay,
    Meridiem { upper: bool, dots: bool },
    YearComma,
    Year4,
    Year3,
    Year2,
    Year1,
    IsoYear(usize),
    Era { upper: bool, dots: bool },
    MonthName(Case),
    MonthAbbrev(Case),
    Month,
    DayName(Case),
    DayAbbrev(Case),
    DayOfYear,
    IsoDayOfYear,
    Day,
    DayOfWeek,
    IsoDayOfWeek,
    WeekOfMonth,
    WeekOfYear,
    IsoWeek,
    Century,
    Julian,
    Quarter,
    Roman { upper: bool },
    TimeZone { upper: bool },
    TzHours,
    TzMinutes,
    Offset,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Case {
    Upper,
    Capital,
    Lower,
}

/// Patterns matched longest first, with the field each names. Names whose
/// case matters are listed per case; the rest match in any case.
const PATTERNS: &[(&str, Field, bool)] = &[
    ("HH24", Field::Hour24, false),
    ("HH12", Field::Hour12, false),
    ("HH", Field::Hour12, false),
    ("MI", Field::Minute, false),
    ("SSSSS", Field::SecondsOfDay, false),
    ("SSSS", Field::SecondsOfDay, false),
    ("SS", Field::Second, false),
    ("MS", Field::Millis, false),
    ("US", Field::Micros, false),
    ("A.M.", Field::Meridiem { upper: true, dots: true }, true),
    ("P.M.", Field::Meridiem { upper: true, dots: true }, true),
    ("a.m.", Field::Meridiem { upper: false, dots: true }, true),
    ("p.m.", Field::Meridiem { upper: false, dots: true }, true),
    ("AM", Field::Meridiem { upper: true, dots: false }, true),
    ("PM", Field::Meridiem { upper: true, dots: false }, true),
    ("am", Field::Meridiem { upper: false, dots: false }, true),
    ("pm", Field::Meridiem { upper: false, dots: false }, true),
    ("Y,YYY", Field::YearComma, false),
    ("YYYY", Field::Year4, false),
    ("YYY", Field::Year3, false),
    ("YY", Field::Year2, false),
    ("IYYY", Field::IsoYear(4), false),
    ("IYY", Field::IsoYear(3), false),
    ("IY", Field::IsoYear(2), false),
    ("B.C.", Field::Era { upper: true, dots: true }, true),
    ("A.D.", Field::Era { upper: true, dots: true }, true),
    ("b.c.", Field::Era { upper: false, dots: true }, true),
    ("a.d.", Field::Era { upper: false, dots: true }, true),
    ("BC", Field::Era { upper: true, dots: false }, true),
    ("AD", Field::Era { upper: true, dots: false }, true),
    ("bc", Field::Era { upper: false, dots: false }, true),
    ("ad", Field::Era { upper: false, dots: false }, true),
    ("MONTH", Field::MonthName(Case::Upper), true),
    ("Month", Field::MonthName(Case::Capital), true),
    ("month", Field::MonthName(Case::Lower), true),
    ("MON", Field::MonthAbbrev(Case::Upper), true),
    ("Mon", Field::MonthAbbrev(Case::Capital), true),
    ("mon", Field::MonthAbbrev(Case::Lower), true),
    ("MM", Field::Month, false),
    ("DAY", Field::DayName(Case::Upper), true),
    ("Day", Field::DayName(Case::Capital), true),
    ("day", Field::DayName(Case::Lower), true),
    ("DY", Field::DayAbbrev(Case::Upper), true),
    ("Dy", Field::DayAbbrev(Case::Capital), true),
    ("dy", Field::DayAbbrev(Case::Lower), true),
    ("IDDD", Field::IsoDayOfYear, false),
    ("DDD", Field::DayOfYear, false),
    ("DD", Field::Day, false),
    ("ID", Field::IsoDayOfWeek, false),
    ("D", Field::DayOfWeek, false),
    ("WW", Field::WeekOfYear, false),
    ("W", Field::WeekOfMonth, false),
    ("IW", Field::IsoWeek, false),
    ("I", Field::IsoYear(1), false),
    ("Y", Field::Year1, false),
    ("CC", Field::Century, false),
    ("J", Field::Julian, false),
    ("Q", Field::Quarter, false),
    ("RM", Field::Roman { upper: true }, true),
    ("rm", Field::Roman { upper: false }, true),
    ("TZH", Field::TzHours, false),
    ("TZM", Field::TzMinutes, false),
    ("TZ", Field::TimeZone { upper: true }, true),
    ("tz", Field::TimeZone { upper: false }, true),
    ("OF", Field::Offset, false),
];

/// PostgreSQL patterns Eddy does not format: an error, not text.
const UNSUPPORTED: &[&str] = &["FF1", "FF2", "FF3", "FF4", "FF5", "FF6"];

/// The pattern at the start of `rest`, if any: its length and field.
fn pattern_at(rest: &str) -> Option<(usize, Field)> {
    let mut best: Option<(usize, Field)> = None;
    for (name, field, case_matters) in PATTERNS {
        let Some(head) = rest.get(..name.len()) else { continue };
        let matches = if *case_matters { head == *name } else { head.eq_ignore_ascii_case(name) };
        if matches && best.is_none_or(|(len, _)| name.len() > len) {
            best = Some((name.len(), *field));
        }
    }
    best
}

/// Parses a template into pieces.
pub(super) fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let (quoted, after) = quoted_text(&rest[1..]);
            text.push_str(&quoted);
            rest = after;
            continue;
        }
        if c == '\\' && rest[1..].starts_with('"') {
            text.push('"');
            rest = &rest[2..];
            continue;
        }
        let mut fill = true;
        let mut at = rest;
        loop {
            let prefix = at.get(..2).map(str::to_ascii_uppercase);
            match prefix.as_deref() {
                Some("FM") => fill = false,
                Some("FX") | Some("TM") => {}
                _ => break,
            }
            at = &at[2..];
        }
        if let Some(name) = UNSUPPORTED.iter().find(|n| at.get(..n.len()).is_some_and(|h| h.eq_ignore_ascii_case(n))) {
            return Err(format!("template pattern \"{name}\" is not supported yet; use US (microseconds) or MS"));
        }
        let Some((len, field)) = pattern_at(at) else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        at = &at[len..];
        let ordinal = match at.get(..2) {
            Some("TH") => Some(true),
            Some("th") => Some(false),
            _ => None,
        };
        if ordinal.is_some() {
            at = &at[2..];
        }
        pieces.push(Piece::Field { field, fill, ordinal });
        rest = at;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Text inside double quotes (up to the closing quote; `\"` is a quote),
/// and what follows it.
fn quoted_text(after_quote: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = after_quote.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &after_quote[i + 1..]),
            '\\' => match chars.next() {
                Some((_, next)) => out.push(next),
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    (out, "")
}

pub(super) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(super) const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const ROMAN: [&str; 12] = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"];

fn cased(text: &str, case: Case) -> String {
    match case {
        Case::Upper => text.to_uppercase(),
        Case::Capital => text.to_string(),
        Case::Lower => text.to_lowercase(),
    }
}

/// `n` zero-padded to `width` (unless `FM`), with its ordinal suffix.
fn number(n: i64, width: usize, fill: bool, ordinal: Option<bool>) -> String {
    let mut out = match fill {
        true if n < 0 => format!("-{:0width$}", -n, width = width),
        true => format!("{n:0width$}"),
        false => n.to_string(),
    };
    if let Some(upper) = ordinal {
        let suffix = match (n % 100, n % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        };
        out.push_str(&if upper { suffix.to_uppercase() } else { suffix.to_string() });
    }
    out
}

/// Text blank-padded to `width` unless `FM`.
fn padded(text: String, width: usize, fill: bool) -> String {
    match fill {
        true => format!("{text:<width$}"),
        false => text,
    }
}

fn field_text(t: &NaiveDateTime, field: Field, fill: bool, ordinal: Option<bool>) -> String {
    let year = t.year() as i64;
    let num = |n: i64, width: usize| number(n, width, fill, ordinal);
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h as i64,
    };
    let iso = t.iso_week();
    match field {
        Field::Hour24 => num(t.hour() as i64, 2),
        Field::Hour12 => num(hour12, 2),
        Field::Minute => num(t.minute() as i64, 2),
        Field::Second => num(t.second() as i64, 2),
        Field::Millis => num((t.nanosecond() / 1_000_000) as i64, 3),
        Field::Micros => num((t.nanosecond() / 1_000) as i64, 6),
        Field::SecondsOfDay => num(t.num_seconds_from_midnight() as i64, 1),
        Field::Meridiem { upper, dots } => {
            let text = match (t.hour() < 12, dots) {
                (true, false) => "AM",
                (false, false) => "PM",
                (true, true) => "A.M.",
                (false, true) => "P.M.",
            };
            if upper { text.to_string() } else { text.to_lowercase() }
        }
        Field::YearComma => {
            let y = year.abs();
            if y >= 1000 { format!("{},{:03}", y / 1000, y % 1000) } else { num(y, 4) }
        }
        Field::Year4 => num(year, 4),
        Field::Year3 => num(year.rem_euclid(1000), 3),
        Field::Year2 => num(year.rem_euclid(100), 2),
        Field::Year1 => num(year.rem_euclid(10), 1),
        Field::IsoYear(digits) => {
            let y = iso.year() as i64;
            match digits {
                4 => num(y, 4),
                n => num(y.rem_euclid(10i64.pow(n as u32)), n),
            }
        }
        Field::Era { upper, dots } => {
            let text = match (year > 0, dots) {
                (true, false) => "AD",
                (false, false) => "BC",
                (true, true) => "A.D.",
                (false, true) => "B.C.",
            };
            if upper { text.to_string() } else { text.to_lowercase() }
        }
        Field::MonthName(case) => padded(cased(MONTHS[t.month0() as usize], case), 9, fill),
        Field::MonthAbbrev(case) => cased(&MONTHS[t.month0() as usize][..3], case),
        Field::Month => num(t.month() as i64, 2),
        Field::DayName(case) => padded(cased(DAYS[t.weekday().num_days_from_sunday() as usize], case), 9, fill),
        Field::DayAbbrev(case) => cased(&DAYS[t.weekday().num_days_from_sunday() as usize][..3], case),
        Field::DayOfYear => num(t.ordinal() as i64, 3),
        Field::IsoDayOfYear => num((iso.week() as i64 - 1) * 7 + t.weekday().number_from_monday() as i64, 3),
        Field::Day => num(t.day() as i64, 2),
        Field::DayOfWeek => num(t.weekday().number_from_sunday() as i64, 1),
        Field::IsoDayOfWeek => num(t.weekday().number_from_monday() as i64, 1),
        Field::WeekOfMonth => num((t.day() as i64 - 1) / 7 + 1, 1),
        Field::WeekOfYear => num((t.ordinal() as i64 - 1) / 7 + 1, 2),
        Field::IsoWeek => num(iso.week() as i64, 2),
        Field::Century => num(if year > 0 { (year + 99) / 100 } else { -((99 - year) / 100) }, 2),
        Field::Julian => num(t.date().num_days_from_ce() as i64 + 1_721_425, 1),
        Field::Quarter => num(t.month0() as i64 / 3 + 1, 1),
        Field::Roman { upper } => {
            let text = padded(ROMAN[t.month0() as usize].to_string(), 4, fill);
            if upper { text } else { text.to_lowercase() }
        }
        Field::TimeZone { upper } => if upper { "UTC" } else { "utc" }.to_string(),
        Field::TzHours => "+00".to_string(),
        Field::TzMinutes => "00".to_string(),
        Field::Offset => "+00".to_string(),
    }
}

/// Formats `t` by `pieces`.
fn render(t: &NaiveDateTime, pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field { field, fill, ordinal } => out.push_str(&field_text(t, *field, *fill, *ordinal)),
        }
    }
    out
}

/// PostgreSQL's `to_char` for dates and timestamps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToChar {
    signature: Signature,
}

impl Default for ToChar {
    fn default() -> Self {
        Self { signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable) }
    }
}

/// The `to_char` UDF.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ToChar::default())
}

fn refuse(input: &DataType) -> Result<()> {
    match input {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null => Ok(()),
        DataType::Interval(_) | DataType::Duration(_) => {
            plan_err!("to_char(interval, text) is not supported yet; use extract() or ::text")
        }
        t if t.is_numeric() => {
            plan_err!("to_char(number, text) is not supported yet; use round(), format() or ::text to format numbers")
        }
        other => plan_err!("function to_char({other}, text) does not exist; to_char takes a date or a timestamp"),
    }
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if let Some(input) = args.first() {
            refuse(input)?;
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, template] = args.args.as_slice() else {
            return exec_err!("to_char takes two arguments: a date or timestamp, and a template");
        };
        let rows = args.number_rows;
        let values = value.to_array(rows)?;
        refuse(values.data_type())?;
        let micros = cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let templates = template.to_array(rows)?;
        let templates = cast(&templates, &DataType::Utf8)?;
        let templates = templates.as_string::<i32>();
        let mut cache: Option<(String, Vec<Piece>)> = None;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if micros.is_null(i) || templates.is_null(i) {
                out.push(None);
                continue;
            }
            let text = templates.value(i);
            if cache.as_ref().is_none_or(|(t, _)| t != text) {
                let pieces = parse(text).map_err(DataFusionError::Execution)?;
                cache = Some((text.to_string(), pieces));
            }
            let t = DateTime::from_timestamp_micros(micros.value(i))
                .ok_or_else(|| DataFusionError::Execution("timestamp out of range".into()))?
                .naive_utc();
            out.push(cache.as_ref().map(|(_, pieces)| render(&t, pieces)));
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        Ok(match (value, template) {
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
            }
            _ => ColumnarValue::Array(array),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
    }

    fn fmt(s: &str, template: &str) -> String {
        render(&at(s), &parse(template).unwrap_or_default())
    }

    #[test]
    fn postgres_templates() {
        let t = "2026-03-07 14:05:09.123456";
        assert_eq!(fmt(t, "YYYY-MM-DD"), "2026-03-07");
        assert_eq!(fmt(t, "YYYY-MM-DD HH24:MI:SS"), "2026-03-07 14:05:09");
        assert_eq!(fmt(t, "HH12:MI AM"), "02:05 PM");
        assert_eq!(fmt(t, "hh24:mi:ss.ms us"), "14:05:09.123 123456");
        assert_eq!(fmt(t, "Month"), "March    ");
        assert_eq!(fmt(t, "FMMonth FMDDth, YYYY"), "March 7th, 2026");
        assert_eq!(fmt(t, "MON mon Mon DY Dy day"), "MAR mar Mar SAT Sat saturday ");
        assert_eq!(fmt(t, "Q\"Q\" WW IW D ID DDD"), "1Q 10 10 7 6 066");
        assert_eq!(fmt(t, "\"Year\" YYYY, \"quoted \\\"x\\\"\""), "Year 2026, quoted \"x\"");
        assert_eq!(fmt(t, "Y,YYY CC RM J"), "2,026 21 III  2461107");
        assert_eq!(fmt("2026-01-01 00:00:00", "HH12 am DDth"), "12 am 01st");
        assert_eq!(fmt("2026-01-12 00:00:00", "FMDDth FMDDTH"), "12th 12TH");
        assert_eq!(fmt(t, "YYYY-MM-DD\"T\"HH24:MI:SS TZ OF"), "2026-03-07T14:05:09 UTC +00");
    }

    #[test]
    fn unsupported_patterns_are_errors() {
        assert!(parse("HH24:MI:SS.FF3").is_err_and(|e| e.contains("FF3")));
    }

    #[test]
    fn text_without_patterns_stays() {
        assert_eq!(fmt("2026-03-07 00:00:00", "-- / , . ;"), "-- / , . ;");
    }
}
