//! PostgreSQL's text form of a one-dimensional array: `{1,2,NULL}`,
//! `{a,"b c","say \"hi\""}`. [`parse`] reads it (array literals, casts,
//! text parameters and COPY), [`parse_column`] a column of it; [`format`]
//! writes it (casts to text), [`format_column`] a column of lists.

/// Why a text is not an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayTextError {
    /// Not of the form `{...}`.
    #[error("malformed array literal: \"{text}\"; {why}")]
    Malformed {
        /// The text.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `{{1,2},{3,4}}`.
    #[error("multidimensional arrays are not supported: \"{0}\"; give a one-dimensional array such as '{{1,2,3}}'")]
    Multidimensional(String),
}

/// The elements of `text`, `None` for an unquoted NULL.
pub fn parse(text: &str) -> Result<Vec<Option<String>>, ArrayTextError> {
    let malformed = |why| ArrayTextError::Malformed { text: text.to_string(), why };
    let mut body = text.trim();
    // An explicit lower bound, `[1:3]={a,b,c}`, changes nothing here.
    if body.starts_with('[') {
        let (_, rest) = body.split_once('=').ok_or_else(|| malformed("a dimension must be followed by \"=\""))?;
        body = rest.trim_start();
    }
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| malformed("an array value must start with \"{\" and end with \"}\""))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let element = match chars.peek() {
            Some('{') => return Err(ArrayTextError::Multidimensional(text.to_string())),
            Some('"') => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => value.push(chars.next().ok_or_else(|| malformed("unexpected end of input"))?),
                        Some(c) => value.push(c),
                        None => return Err(malformed("unexpected end of input")),
                    }
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                Some(value)
            }
            _ => {
                let (mut value, mut escaped) = (String::new(), false);
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    match c {
                        '\\' => {
                            value.push(chars.next().ok_or_else(|| malformed("unexpected end of input"))?);
                            escaped = true;
                        }
                        '{' | '}' | '"' => return Err(malformed("unexpected character in an unquoted element")),
                        c => value.push(c),
                    }
                }
                let value = value.trim_end().to_string();
                if value.is_empty() {
                    return Err(malformed("unexpected \",\" or empty element"));
                }
                (escaped || !value.eq_ignore_ascii_case("null")).then_some(value)
            }
        };
        elements.push(element);
        match chars.next() {
            None => return Ok(elements),
            Some(',') => {}
            Some(_) => return Err(malformed("junk after a quoted element")),
        }
    }
}

/// Reads a column of array texts into lists of text elements (NULL for a
/// NULL text), for a cast to lists of another type.
pub fn parse_column(
    texts: &datafusion::arrow::array::StringArray,
) -> Result<datafusion::arrow::array::ListArray, ArrayTextError> {
    use datafusion::arrow::array::{ListBuilder, StringBuilder};
    let mut lists = ListBuilder::new(StringBuilder::new());
    for text in texts.iter() {
        match text {
            None => lists.append_null(),
            Some(text) => {
                for element in parse(text)? {
                    lists.values().append_option(element);
                }
                lists.append(true);
            }
        }
    }
    Ok(lists.finish())
}

/// Writes a column of lists as PostgreSQL's array text (NULL for a NULL
/// list; booleans as `t` and `f`, as PostgreSQL prints them).
pub fn format_column(
    lists: &dyn datafusion::arrow::array::Array,
) -> Result<datafusion::arrow::array::StringArray, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{Array, AsArray, StringArray, StringBuilder};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field};
    let item = match lists.data_type() {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.data_type().clone(),
        other => other.clone(),
    };
    let lists = cast(lists, &DataType::List(std::sync::Arc::new(Field::new_list_field(item, true))))?;
    let mut out = StringBuilder::new();
    for values in lists.as_list::<i32>().iter() {
        let Some(values) = values else {
            out.append_null();
            continue;
        };
        let texts: StringArray = match values.data_type() {
            DataType::Boolean => values.as_boolean().iter().map(|b| b.map(|b| if b { "t" } else { "f" })).collect(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => format_column(&values)?,
            _ => cast(&values, &DataType::Utf8)?.as_string::<i32>().clone(),
        };
        out.append_value(format(texts.iter()));
    }
    Ok(out.finish())
}

/// `elements` as PostgreSQL writes an array: quoted where needed, `NULL`
/// for a null.
pub fn format<'a>(elements: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("{");
    for (i, element) in elements.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match element {
            None => out.push_str("NULL"),
            Some(e) if needs_quotes(e) => {
                out.push('"');
                for c in e.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            Some(e) => out.push_str(e),
        }
    }
    out.push('}');
    out
}

fn needs_quotes(e: &str) -> bool {
    e.is_empty()
        || e.eq_ignore_ascii_case("null")
        || e.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|e| e.map(str::to_string)).collect()
    }

    #[test]
    fn reads_postgresql_array_text() {
        assert_eq!(parse("{1,2,3}"), Ok(owned(&[Some("1"), Some("2"), Some("3")])));
        assert_eq!(parse(" { 1 , 2 } "), Ok(owned(&[Some("1"), Some("2")])));
        assert_eq!(parse("{}"), Ok(vec![]));
        assert_eq!(
            parse(r#"{a,"b c",NULL,"NULL",null,"say \"hi\"",x\,y}"#),
            Ok(owned(&[Some("a"), Some("b c"), None, Some("NULL"), None, Some("say \"hi\""), Some("x,y")]))
        );
        assert_eq!(parse("[1:2]={7,8}"), Ok(owned(&[Some("7"), Some("8")])));
        assert_eq!(parse(r#"{"",b}"#), Ok(owned(&[Some(""), Some("b")])));
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        for bad in ["1,2", "{1,2", "{1,,2}", "{1,}", r#"{"a"b}"#, r#"{"a}"#, "{a\"b}"] {
            assert!(matches!(parse(bad), Err(ArrayTextError::Malformed { .. })), "{bad}");
        }
        assert!(matches!(parse("{{1,2},{3,4}}"), Err(ArrayTextError::Multidimensional(_))));
    }

    #[test]
    fn writes_postgresql_array_text() {
        assert_eq!(format([Some("1"), None, Some("3")]), "{1,NULL,3}");
        assert_eq!(
            format([Some("a b"), Some(""), Some("NULL"), Some("x\"y"), Some("p\\q")]),
            r#"{"a b","","NULL","x\"y","p\\q"}"#
        );
        assert_eq!(format(std::iter::empty()), "{}");
        let text = format([Some("a,b"), None, Some("{c}")]);
        assert_eq!(parse(&text), Ok(owned(&[Some("a,b"), None, Some("{c}")])));
    }
}
