//! Arrow's and DataFusion's wording of bad values, replaced by
//! PostgreSQL's, with PostgreSQL's SQLSTATE: a client sees
//! `invalid input syntax for type integer: "x"` (22P02), not
//! `Cast error: Cannot cast string 'x' to value of Int32 type`, and a
//! numeric overflow is 22003 `numeric field overflow`, not XX000. Text
//! before the error (`continuous view "v" failed to apply the rows: `) is
//! kept.

/// A SQLSTATE and PostgreSQL's message.
type Worded = Option<(&'static str, String)>;

/// Arrow's wording (the text a message holds) and how to reword what follows it.
type Rule = (&'static str, fn(&str) -> Worded);

/// PostgreSQL's SQLSTATE and message for a message that holds one of
/// Arrow's wordings, or `None` to keep the message as it is.
pub fn translate(message: &str) -> Worded {
    let rules: [Rule; 6] = [
        ("Execution error: Function '", undefined_function),
        ("Cast error: Cannot cast string '", bad_string),
        ("Cast error: Cannot cast value '", bad_string),
        ("Cast error: Can't cast value ", out_of_range),
        ("Invalid argument error: ", numeric_overflow),
        ("Parser error: Error parsing timestamp from '", bad_timestamp),
    ];
    rules.iter().find_map(|(prefix, rule)| {
        let at = message.find(prefix)?;
        let (state, text) = rule(&message[at + prefix.len()..])?;
        Some((state, format!("{}{text}", &message[..at])))
    })
}

/// `x' to value of Int32 type`: text that is not a value of the type,
/// or (for an integer that does not fit) a value out of its range.
fn bad_string(rest: &str) -> Option<(&'static str, String)> {
    let (value, after) = rest.rsplit_once("' to value of ")?;
    let arrow_type = after.strip_suffix(" type")?;
    let type_name = pg_name(arrow_type);
    if matches!(arrow_type, "Int8" | "Int16" | "Int32" | "Int64") && value.trim().parse::<i128>().is_ok() {
        return Some(("22003", format!("value \"{value}\" is out of range for type {type_name}")));
    }
    let state = if matches!(arrow_type, "Date32" | "Date64") || arrow_type.starts_with("Timestamp") {
        "22007"
    } else {
        "22P02"
    };
    Some((state, format!("invalid input syntax for type {type_name}: \"{value}\"")))
}

/// `sum' user-defined coercion failed with: Error during planning:
/// function sum(text) does not exist. No function matches ...`: Eddy's
/// aggregates name the PostgreSQL types they were given.
fn undefined_function(rest: &str) -> Worded {
    let (_, planning) = rest.split_once("coercion failed with: Error during planning: ")?;
    let message = planning.split_once(". No function matches").map_or(planning, |(m, _)| m);
    message.ends_with("does not exist").then(|| ("42883", message.to_string()))
}

/// `99999999999 to type Int32`: a number that does not fit its type.
fn out_of_range(rest: &str) -> Option<(&'static str, String)> {
    let (_, arrow_type) = rest.rsplit_once(" to type ")?;
    Some(("22003", format!("{} out of range", pg_name(arrow_type))))
}

/// `123456.00 is too large to store in a Decimal128 of precision 5. ...`
fn numeric_overflow(rest: &str) -> Option<(&'static str, String)> {
    rest.contains("is too large to store in a Decimal").then(|| ("22003", "numeric field overflow".to_string()))
}

/// `x': timestamp must contain ...`: text that is not a timestamp.
fn bad_timestamp(rest: &str) -> Option<(&'static str, String)> {
    let (value, _) = rest.split_once("': ")?;
    Some(("22007", format!("invalid input syntax for type timestamp: \"{value}\"")))
}

/// PostgreSQL's name for an Arrow type as Arrow prints it.
fn pg_name(arrow_type: &str) -> &str {
    match arrow_type {
        "Int8" | "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float16" | "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        "Utf8" | "LargeUtf8" | "Utf8View" => "text",
        t if t.starts_with("Decimal") => "numeric",
        t if t.starts_with("Timestamp") && t.contains('"') => "timestamp with time zone",
        t if t.starts_with("Timestamp") => "timestamp without time zone",
        t if t.starts_with("Interval") => "interval",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each translation is PostgreSQL 15's message for the same input.
    #[test]
    fn arrow_wording_becomes_postgres_wording() {
        let cases = [
            (
                "Cast error: Cannot cast string 'x' to value of Int32 type",
                "22P02",
                "invalid input syntax for type integer: \"x\"",
            ),
            (
                "Cast error: Cannot cast string 'x' to value of Float64 type",
                "22P02",
                "invalid input syntax for type double precision: \"x\"",
            ),
            (
                "Cast error: Cannot cast string 'x' to value of Decimal128(38, 10) type",
                "22P02",
                "invalid input syntax for type numeric: \"x\"",
            ),
            (
                "Cast error: Cannot cast value 'maybe' to value of Boolean type",
                "22P02",
                "invalid input syntax for type boolean: \"maybe\"",
            ),
            (
                "Cast error: Cannot cast string 'x' to value of Date32 type",
                "22007",
                "invalid input syntax for type date: \"x\"",
            ),
            (
                "Cast error: Cannot cast string '99999999999' to value of Int32 type",
                "22003",
                "value \"99999999999\" is out of range for type integer",
            ),
            ("Cast error: Can't cast value 99999999999 to type Int32", "22003", "integer out of range"),
            (
                "Execution error: Function 'sum' user-defined coercion failed with: Error during planning: function sum(text) does not exist. No function matches the given name and argument types 'sum(Utf8View)'. You might need to add explicit type casts.",
                "42883",
                "function sum(text) does not exist",
            ),
            (
                "Invalid argument error: 123456.00 is too large to store in a Decimal128 of precision 5. Max is 999.99",
                "22003",
                "numeric field overflow",
            ),
            (
                "Parser error: Error parsing timestamp from 'x': timestamp must contain at least 10 characters",
                "22007",
                "invalid input syntax for type timestamp: \"x\"",
            ),
            (
                "continuous view \"v\" failed to apply the rows: Cast error: Can't cast value 5 to type Int16",
                "22003",
                "continuous view \"v\" failed to apply the rows: smallint out of range",
            ),
        ];
        for (given, state, message) in cases {
            assert_eq!(translate(given), Some((state, message.to_string())), "{given}");
        }
        assert_eq!(translate("relation \"x\" does not exist"), None);
    }
}
