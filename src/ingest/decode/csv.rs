//! CSV as PostgreSQL's COPY reads it: quoted fields may hold delimiters,
//! quotes (doubled, or escaped) and newlines; an unquoted empty field (the
//! NULL marker) is NULL, a quoted one is an empty string.

use datafusion::arrow::array::StringBuilder;

/// The offset of the newline ending the first record of `data`, if the
/// record is complete.
pub fn record_end(data: &[u8], quote: u8, escape: u8) -> Option<usize> {
    scan(data, 0, quote, escape, &mut false).ok()
}

/// Looks for the newline that ends the record in `data`, from `from`, with
/// `in_quotes` saying whether `from` is inside a quoted field. `Ok` is the
/// newline's index; `Err` is where to resume once more data has arrived,
/// with `in_quotes` updated, so that a long record is scanned once in all
/// rather than once per chunk.
pub fn scan(data: &[u8], from: usize, quote: u8, escape: u8, in_quotes: &mut bool) -> Result<usize, usize> {
    let mut i = from;
    while i < data.len() {
        let b = data[i];
        if *in_quotes && escape != quote && b == escape {
            if i + 1 == data.len() {
                return Err(i); // what the escape escapes has not arrived
            }
            i += 2;
            continue;
        }
        if b == quote {
            *in_quotes = !*in_quotes;
        } else if b == b'\n' && !*in_quotes {
            return Ok(i);
        }
        i += 1;
    }
    Err(data.len())
}

/// Whether `line` ends inside a quoted field.
pub fn unterminated_quote(line: &[u8], quote: u8, escape: u8) -> bool {
    let mut probe = line.to_vec();
    probe.push(b'\n');
    record_end(&probe, quote, escape).is_none()
}

/// Splits one record into fields, appending each to the next builder.
/// Returns the number of fields.
pub fn split(
    line: &[u8],
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &str,
    builders: &mut [StringBuilder],
    scratch: &mut Vec<u8>,
) -> Result<usize, String> {
    let mut field = 0;
    let mut i = 0;
    loop {
        scratch.clear();
        let mut quoted = false;
        let mut in_quotes = false;
        while i < line.len() {
            let b = line[i];
            if in_quotes {
                if b == escape
                    && i + 1 < line.len()
                    && (line[i + 1] == quote || line[i + 1] == escape)
                    && escape != quote
                {
                    scratch.push(line[i + 1]);
                    i += 2;
                    continue;
                }
                if b == quote {
                    if escape == quote && i + 1 < line.len() && line[i + 1] == quote {
                        scratch.push(quote);
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                    i += 1;
                    continue;
                }
                scratch.push(b);
            } else if b == quote {
                quoted = true;
                in_quotes = true;
            } else if b == delimiter {
                break;
            } else {
                scratch.push(b);
            }
            i += 1;
        }
        if in_quotes {
            return Err("unterminated CSV quoted field".into());
        }
        if let Some(builder) = builders.get_mut(field) {
            if !quoted && scratch.as_slice() == null.as_bytes() {
                builder.append_null();
            } else {
                let text = std::str::from_utf8(scratch)
                    .map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?;
                builder.append_value(text);
            }
        }
        field += 1;
        if i >= line.len() {
            return Ok(field);
        }
        i += 1; // the delimiter
    }
}
