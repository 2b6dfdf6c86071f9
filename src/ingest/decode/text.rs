//! PostgreSQL's COPY text format: delimiter-separated fields, a NULL marker
//! (`\N`), and backslash escapes.

use datafusion::arrow::array::StringBuilder;

/// Splits `line` into fields, appending each to the next builder. Returns
/// the number of fields found (which may exceed the builders).
pub fn split(
    line: &[u8],
    delimiter: u8,
    null: &str,
    builders: &mut [StringBuilder],
    scratch: &mut Vec<u8>,
) -> Result<usize, String> {
    let mut field = 0;
    let mut start = 0;
    let mut escaped = false;
    let mut i = 0;
    while i <= line.len() {
        let at_end = i == line.len();
        if !at_end && line[i] == b'\\' {
            escaped = true;
            i += 2;
            continue;
        }
        if at_end || line[i] == delimiter {
            let raw = &line[start..i.min(line.len())];
            if let Some(builder) = builders.get_mut(field) {
                append(builder, raw, escaped, null, scratch)?;
            }
            field += 1;
            start = i + 1;
            escaped = false;
        }
        i += 1;
    }
    Ok(field)
}

fn append(
    builder: &mut StringBuilder,
    raw: &[u8],
    escaped: bool,
    null: &str,
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    if raw == null.as_bytes() {
        builder.append_null();
        return Ok(());
    }
    let bytes = if escaped {
        unescape(raw, scratch);
        scratch.as_slice()
    } else {
        raw
    };
    let text = std::str::from_utf8(bytes).map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?;
    builder.append_value(text);
    Ok(())
}

/// Decodes backslash escapes (`\t`, `\n`, `\\`, octal `\123`, hex `\x41`, ...).
fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut digits = 1;
                while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    value = value * 8 + u32::from(raw[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    value = value * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        let mut out = Vec::new();
        unescape(b"a\\tb\\\\c\\101\\x42\\.", &mut out);
        assert_eq!(out, b"a\tb\\cAB.");
    }

    #[test]
    fn escaped_delimiter_stays_in_field() {
        let mut builders = vec![StringBuilder::new(), StringBuilder::new()];
        let n = split(b"a\\\tb\tc", b'\t', "\\N", &mut builders, &mut Vec::new()).unwrap();
        assert_eq!(n, 2);
        let first = builders[0].finish();
        assert_eq!(first.value(0), "a\tb");
    }
}
