//! SQL column types of streams, as Arrow fields.
//!
//! Streams are declared with PostgreSQL type names. Each maps to one Arrow
//! type; `json` and `jsonb` are UTF-8 columns tagged with field metadata, so
//! that the wire layer can report their PostgreSQL type.

use std::collections::HashMap;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, TimeUnit};

use super::CatalogError;

/// Field metadata key holding the PostgreSQL type name where Arrow's type
/// alone does not say it (`json`, `jsonb`).
pub const PG_TYPE_KEY: &str = "eddy.pg_type";

/// Field metadata key holding the `n` of a `varchar(n)` or `char(n)`
/// column: longer values are refused (22001), as in PostgreSQL.
pub const MAX_CHARS_KEY: &str = "eddy.max_chars";
/// Field metadata: the declared type where Arrow's type does not say it
/// (a bare `varchar` is Utf8 like `text`; a bare `numeric` is the widest
/// Decimal128 like `numeric(38,10)`), for `\d` and `pg_typeof`.
pub const DECLARED_TYPE_KEY: &str = "eddy.declared_type";

/// The time zone of every `timestamptz` column: values are instants, shown in UTC.
pub const UTC: &str = "+00:00";

/// The type of `arrival_timestamp` and of every `timestamptz` column.
pub fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Maps a PostgreSQL type name (as sqlparser prints it) to an Arrow field.
pub fn field_for_sql_type(name: &str, sql_type: &str) -> Result<Field, CatalogError> {
    let lowered = sql_type.trim().to_ascii_lowercase();
    if let Some(item) = lowered.strip_suffix("[]") {
        // One-dimensional arrays of the scalar types.
        if item.trim_end().ends_with("[]") {
            return Err(CatalogError::UnsupportedType(sql_type.to_string()));
        }
        let item = field_for_sql_type("item", item)?;
        return Ok(Field::new(name, DataType::new_list(item.data_type().clone(), true), true));
    }
    let (base, args) = match lowered.find('(') {
        Some(i) => (lowered[..i].trim().to_string(), lowered[i..].to_string()),
        None => (lowered.clone(), String::new()),
    };
    let mut pg_tag = None;
    let mut max_chars = None;
    let mut declared = None;
    let data_type = match base.as_str() {
        "smallint" | "int2" => DataType::Int16,
        "int" | "integer" | "int4" => DataType::Int32,
        "bigint" | "int8" => DataType::Int64,
        "real" | "float4" => DataType::Float32,
        "double precision" | "double" | "float8" | "float" => DataType::Float64,
        "numeric" | "decimal" => {
            if args.is_empty() {
                declared = Some("numeric");
            }
            decimal_type(&args)
        }
        "varchar" | "character varying" | "char" | "character" | "bpchar" => {
            max_chars = length_limit(&base, &args);
            if max_chars.is_none() && base != "bpchar" {
                declared = Some("character varying");
            }
            DataType::Utf8
        }
        "text" | "string" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" | "timestamp without time zone" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => timestamptz(),
        "interval" => DataType::Interval(IntervalUnit::MonthDayNano),
        "json" | "jsonb" => {
            pg_tag = Some(base.clone());
            DataType::Utf8
        }
        _ if base.starts_with("timestamp") && base.ends_with("with time zone") && !base.contains("without") => {
            timestamptz()
        }
        _ if base.starts_with("timestamp") => DataType::Timestamp(TimeUnit::Microsecond, None),
        _ if base.starts_with("interval") => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => return Err(CatalogError::UnsupportedType(sql_type.to_string())),
    };
    let mut metadata = HashMap::new();
    if let Some(tag) = pg_tag {
        metadata.insert(PG_TYPE_KEY.to_string(), tag);
    }
    if let Some((n, type_name)) = max_chars {
        metadata.insert(MAX_CHARS_KEY.to_string(), format!("{n} {type_name}"));
    }
    if let Some(declared) = declared {
        metadata.insert(DECLARED_TYPE_KEY.to_string(), declared.to_string());
    }
    Ok(Field::new(name, data_type, true).with_metadata(metadata))
}

/// The length limit of `varchar(n)` and `char(n)`, with the type's name;
/// a bare `char` is `char(1)`, a bare `varchar` or `bpchar` has no limit.
fn length_limit(base: &str, args: &str) -> Option<(usize, &'static str)> {
    let n = args.trim_matches(|c| c == '(' || c == ')').trim().parse::<usize>().ok();
    match base {
        "varchar" | "character varying" | "bpchar" => n.map(|n| (n, "character varying")),
        _ => Some((n.unwrap_or(1), "character")),
    }
}

/// The `n` of a `varchar(n)` or `char(n)` column, and the type's name.
pub fn max_chars(field: &Field) -> Option<(usize, &str)> {
    let (n, name) = field.metadata().get(MAX_CHARS_KEY)?.split_once(' ')?;
    Some((n.parse().ok()?, name))
}

/// The `n` of `field`'s `varchar(n)` or `char(n)`, if it has one.
pub fn char_limit(field: &Field) -> Option<usize> {
    max_chars(field).map(|(n, _)| n)
}

/// Whether `value` has more than `limit` characters. Trailing spaces
/// count: PostgreSQL would cut them off to fit, Eddy refuses the value
/// rather than keep it longer than its type.
pub fn longer_than(value: &str, limit: usize) -> bool {
    value.len() > limit && value.chars().count() > limit
}

/// Whether `value` is longer than `field`'s `varchar(n)` or `char(n)`.
pub fn too_long(field: &Field, value: &str) -> bool {
    char_limit(field).is_some_and(|n| longer_than(value, n))
}

/// PostgreSQL's message (SQLSTATE 22001) for a value too long for `field`.
pub fn too_long_message(field: &Field) -> String {
    match max_chars(field) {
        Some((n, name)) => format!("value too long for type {name}({n})"),
        None => format!("value too long for type {}", pg_type_name(field)),
    }
}

/// The first column of `batch` (whose columns follow `declared`) holding a
/// value too long for its `varchar(n)` or `char(n)`, with that message.
pub fn check_lengths(declared: &Schema, batch: &RecordBatch) -> Result<(), String> {
    for (field, column) in declared.fields().iter().zip(batch.columns()) {
        let Some(limit) = char_limit(field) else {
            continue;
        };
        // Utf8View or LargeUtf8 from a plan must be checked too; Utf8 casts for free.
        let strings = cast(column, &DataType::Utf8).map_err(|e| format!("column \"{}\": {e}", field.name()))?;
        let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        if strings.iter().flatten().any(|v| longer_than(v, limit)) {
            return Err(too_long_message(field));
        }
    }
    Ok(())
}

/// `numeric(p, s)`; a bare `numeric` gets the widest Decimal128 with 10
/// fractional digits, since Arrow has no arbitrary-precision decimal.
fn decimal_type(args: &str) -> DataType {
    let nums: Vec<i64> =
        args.trim_matches(|c| c == '(' || c == ')').split(',').filter_map(|s| s.trim().parse().ok()).collect();
    match nums.as_slice() {
        [p] => DataType::Decimal128((*p).clamp(1, 38) as u8, 0),
        [p, s] => DataType::Decimal128((*p).clamp(1, 38) as u8, (*s).clamp(0, 38) as i8),
        _ => DataType::Decimal128(38, 10),
    }
}

/// The PostgreSQL type name of a column, for error messages and `\d`.
pub fn pg_type_name(field: &Field) -> String {
    if let Some(tag) = field.metadata().get(PG_TYPE_KEY).or_else(|| field.metadata().get(DECLARED_TYPE_KEY)) {
        return tag.clone();
    }
    if let Some((_, type_name)) = max_chars(field) {
        return type_name.to_string(); // as pg_typeof names it, without the length
    }
    match field.data_type() {
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "text".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Interval(_) => "interval".into(),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            let item = pg_type_name(item);
            // PostgreSQL names an array type without the element's modifiers.
            format!("{}[]", item.split('(').next().unwrap_or(&item))
        }
        other => other.to_string(),
    }
}

/// PostgreSQL's timestamp text in the form Arrow parses: a time without
/// seconds (`2026-12-09 10:00`, `10:00+02`) gets `:00`, and a one-digit
/// hour a leading zero. Any other text is returned as it is.
pub fn timestamp_text(value: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let bytes = value.as_bytes();
    let is_date = bytes.len() >= 12
        && bytes[..10].iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
        && (bytes[10] == b' ' || bytes[10] == b'T');
    if !is_date {
        return Cow::Borrowed(value);
    }
    let time = &value[11..];
    let hour_digits = time.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &time[hour_digits..];
    let minutes = rest.strip_prefix(':').filter(|m| m.len() >= 2 && m.as_bytes()[..2].iter().all(u8::is_ascii_digit));
    let Some(minutes) = minutes.filter(|_| (1..=2).contains(&hour_digits)) else {
        return Cow::Borrowed(value);
    };
    let has_seconds = minutes.as_bytes().get(2) == Some(&b':');
    if hour_digits == 2 && has_seconds {
        return Cow::Borrowed(value);
    }
    let seconds = if has_seconds { "" } else { ":00" };
    let hour = &time[..hour_digits];
    let pad = if hour_digits == 1 { "0" } else { "" };
    Cow::Owned(format!("{} {pad}{hour}:{}{seconds}{}", &value[..10], &minutes[..2], &minutes[2..]))
}

/// PostgreSQL's `interval_out` in its default style: `1 year 2 mons 3 days
/// 04:05:06.5`, `-1 days`, `00:00:00`, for rows sent to clients and for
/// `::text`. (arrow-pg printed a NULL interval as `00:00:00` and six digits
/// of every fraction; Arrow's cast prints `1 hours 30 mins`.)
pub fn interval_out(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let (mut is_zero, mut is_before) = (true, false);
    let mut part = |value: i64, unit: &str, out: &mut String| {
        if value == 0 {
            return;
        }
        let space = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let plural = if value != 1 { "s" } else { "" };
        out.push_str(&format!("{space}{plus}{value} {unit}{plural}"));
        (is_before, is_zero) = (value < 0, false);
    };
    part(i64::from(months / 12), "year", &mut out);
    part(i64::from(months % 12), "mon", &mut out);
    part(i64::from(days), "day", &mut out);
    if is_zero || micros != 0 {
        let sign = if micros < 0 {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let abs = micros.unsigned_abs();
        let (hours, minutes, seconds, fraction) =
            (abs / 3_600_000_000, abs / 60_000_000 % 60, abs / 1_000_000 % 60, abs % 1_000_000);
        let space = if is_zero { "" } else { " " };
        out.push_str(&format!("{space}{sign}{hours:02}:{minutes:02}:{seconds:02}"));
        if fraction != 0 {
            out.push_str(format!(".{fraction:06}").trim_end_matches('0'));
        }
    }
    out
}

/// PostgreSQL writes intervals as `1 day 02:03:04.5`; Arrow parses units
/// only, so a clock part becomes `2 hours 3 minutes 4.5 seconds`.
pub fn interval_text(value: &str) -> String {
    value
        .split_whitespace()
        .map(|token| {
            let (sign, clock) = token.strip_prefix('-').map_or(("", token), |rest| ("-", rest));
            let parts: Vec<&str> = clock.split(':').collect();
            let numeric = parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'));
            match (parts.as_slice(), numeric) {
                ([h, m], true) => format!("{sign}{h} hours {sign}{m} minutes"),
                ([h, m, sec], true) => {
                    format!("{sign}{h} hours {sign}{m} minutes {sign}{sec} seconds")
                }
                _ => token.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `schema` with every column nullable: how a relation whose rows another
/// view reads is declared to that view (NOT NULL is checked at the source).
pub fn all_nullable(schema: &datafusion::arrow::datatypes::Schema) -> datafusion::arrow::datatypes::SchemaRef {
    let fields: Vec<datafusion::arrow::datatypes::Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_print_like_postgres() {
        // PostgreSQL 15's interval_out for the same values.
        assert_eq!(interval_out(14, 3, 14_706_500_000), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(interval_out(0, -1, 0), "-1 days");
        assert_eq!(interval_out(0, 0, 0), "00:00:00");
        assert_eq!(interval_out(0, 0, 129_600_000_000), "36:00:00");
        assert_eq!(interval_out(1, -2, 10_800_000_000), "1 mon -2 days +03:00:00");
        assert_eq!(interval_out(-12, 0, -1), "-1 years -00:00:00.000001");
        assert_eq!(interval_out(0, 1, 0), "1 day");
    }

    #[test]
    fn maps_postgres_names() {
        let f = |t| field_for_sql_type("c", t).map(|f| f.data_type().clone());
        assert_eq!(f("INT").unwrap(), DataType::Int32);
        assert_eq!(f("bigint").unwrap(), DataType::Int64);
        assert_eq!(f("double precision").unwrap(), DataType::Float64);
        assert_eq!(f("NUMERIC(10,2)").unwrap(), DataType::Decimal128(10, 2));
        assert_eq!(f("varchar(20)").unwrap(), DataType::Utf8);
        assert_eq!(f("TIMESTAMP WITH TIME ZONE").unwrap(), timestamptz());
        assert_eq!(f("timestamptz").unwrap(), timestamptz());
        assert!(f("point").is_err());
        let json = field_for_sql_type("p", "json").unwrap();
        assert_eq!(pg_type_name(&json), "json");
    }

    #[test]
    fn timestamp_text_gets_the_seconds_arrow_needs() {
        let cases = [
            ("2026-12-09 10:00", "2026-12-09 10:00:00"),
            ("2026-12-09T10:00", "2026-12-09 10:00:00"),
            ("2026-12-09 10:00+02", "2026-12-09 10:00:00+02"),
            ("2026-12-09 10:00 UTC", "2026-12-09 10:00:00 UTC"),
            ("2026-12-09 1:00:00", "2026-12-09 01:00:00"),
            ("2026-12-09 7:05", "2026-12-09 07:05:00"),
            ("2026-12-09 10:00:00", "2026-12-09 10:00:00"),
            ("2026-12-09 10:00:00.5+02:00", "2026-12-09 10:00:00.5+02:00"),
            ("2026-12-09", "2026-12-09"),
            ("not a time", "not a time"),
            ("2026-12-09 10", "2026-12-09 10"),
            ("2026-12-09 10:0", "2026-12-09 10:0"),
        ];
        for (given, expected) in cases {
            assert_eq!(timestamp_text(given), expected, "{given}");
        }
    }

    #[test]
    fn varchar_and_char_limit_their_length() {
        let code = field_for_sql_type("code", "varchar(2)").unwrap();
        assert_eq!(pg_type_name(&code), "character varying", "as pg_typeof names it");
        assert!(!too_long(&code, "FR"));
        assert!(!too_long(&code, "éé"), "characters, not bytes");
        assert!(too_long(&code, "FR  "), "trailing spaces count: refused, not cut");
        assert!(too_long(&code, "FRA"));
        assert_eq!(too_long_message(&code), "value too long for type character varying(2)");
        let flag = field_for_sql_type("flag", "char").unwrap();
        assert_eq!(too_long_message(&flag), "value too long for type character(1)");
        assert!(too_long(&flag, "ab"));
        for (unlimited, name) in [("varchar", "character varying"), ("text", "text"), ("bpchar", "text")] {
            let f = field_for_sql_type("t", unlimited).unwrap();
            assert!(!too_long(&f, &"x".repeat(10_000)));
            assert_eq!(pg_type_name(&f), name);
        }
        let schema = Schema::new(vec![code]);
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(schema.clone()),
            vec![std::sync::Arc::new(StringArray::from(vec![Some("FR"), None, Some("FRA")]))],
        )
        .unwrap();
        assert_eq!(check_lengths(&schema, &batch), Err("value too long for type character varying(2)".into()));
        assert!(check_lengths(&schema, &batch.slice(0, 2)).is_ok());
    }
}
