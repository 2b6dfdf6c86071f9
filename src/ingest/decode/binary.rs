//! COPY's binary format (`COPY t FROM STDIN (FORMAT binary)`): what
//! asyncpg's `copy_records_to_table` and psycopg's binary copy send.
//!
//! The data is PostgreSQL's `PGCOPY` signature and header, then per row a
//! field count and per field a length (-1 for NULL) and the value in its
//! type's binary form (`int8send`, `numeric_send`, ...), and a trailer of -1.
//! Each value is written as PostgreSQL's text for it, so it goes through the
//! same casts and checks (lengths, ranges) as the text formats.

use chrono::{DateTime, Duration, NaiveDate};
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};

use super::RowDecoder;
use crate::catalog::types::{PG_TYPE_KEY, pg_type_name};
use crate::ingest::IngestError;

/// The signature every binary COPY starts with.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

fn bad(message: impl Into<String>) -> IngestError {
    IngestError::BadCopyData(message.into())
}

/// A big-endian integer of `N` bytes at `at`, if the data holds it.
fn be<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at + N)?.try_into().ok()
}

/// The length of the header at the start of `data`: `None` until all of it
/// has arrived.
fn header_len(data: &[u8]) -> Result<Option<usize>, IngestError> {
    let fixed = SIGNATURE.len() + 8;
    if data.len() < SIGNATURE.len() {
        return match SIGNATURE.starts_with(data) {
            true => Ok(None),
            false => Err(bad("COPY file signature not recognized")),
        };
    }
    if !data.starts_with(SIGNATURE) {
        return Err(bad("COPY file signature not recognized"));
    }
    let (Some(flags), Some(extension)) = (be::<4>(data, SIGNATURE.len()), be::<4>(data, SIGNATURE.len() + 4)) else {
        return Ok(None);
    };
    if u32::from_be_bytes(flags) & (1 << 16) != 0 {
        return Err(bad("COPY binary data with OIDs is not supported"));
    }
    let extension = u32::from_be_bytes(extension) as usize;
    Ok((data.len() >= fixed + extension).then_some(fixed + extension))
}

impl RowDecoder {
    /// Consumes a chunk of binary COPY data; returns the batches that
    /// filled up.
    pub(super) fn feed_binary(
        &mut self,
        data: &[u8],
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>, IngestError> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        if self.skip_header {
            match header_len(&self.pending)? {
                Some(len) => (at, self.skip_header) = (len, false),
                None => return Ok(out),
            }
        }
        while !self.finished {
            let Some(next) = self.binary_row(at)? else {
                break;
            };
            at = next;
            if self.rows >= super::BATCH_ROWS {
                out.push(self.flush()?);
            }
        }
        self.pending.drain(..at);
        if !self.finished && self.pending.len() > self.max_record_bytes {
            return Err(IngestError::TooLarge(format!(
                "row {} of the binary COPY is over {} bytes; raise --max-record-bytes",
                self.line + 1,
                self.max_record_bytes
            )));
        }
        Ok(out)
    }

    /// Ends binary data: what is left must be nothing, or the trailer.
    pub(super) fn finish_binary(&mut self) -> Result<(), IngestError> {
        if self.skip_header && !self.pending.is_empty() || !self.finished && !self.pending.is_empty() {
            return Err(bad("unexpected EOF in COPY data"));
        }
        Ok(())
    }

    /// Decodes the row at `at` if all of it has arrived; returns where the
    /// next one starts.
    fn binary_row(&mut self, at: usize) -> Result<Option<usize>, IngestError> {
        let Some(count) = be::<2>(&self.pending, at).map(i16::from_be_bytes) else {
            return Ok(None);
        };
        if count == -1 {
            self.finished = true;
            return Ok(Some(at + 2));
        }
        if count as usize != self.builders.len() || count < 0 {
            return Err(bad(format!("row field count is {count}, expected {}", self.builders.len())));
        }
        // The fields' extents, once the whole row is here.
        let mut fields = Vec::with_capacity(self.builders.len());
        let mut next = at + 2;
        for _ in 0..count {
            let Some(len) = be::<4>(&self.pending, next).map(i32::from_be_bytes) else {
                return Ok(None);
            };
            next += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let end = next + len as usize;
            if self.pending.len() < end {
                return Ok(None);
            }
            fields.push(Some((next, end)));
            next = end;
        }
        self.line += 1;
        for (i, extent) in fields.into_iter().enumerate() {
            let Some((start, end)) = extent else {
                self.builders[i].append_null();
                continue;
            };
            let field = self.schema.field(self.positions[i]);
            let text = value_text(&self.pending[start..end], field).map_err(|m| {
                bad(format!("{m}, in row {} of the binary COPY, column \"{}\"", self.line, field.name()))
            })?;
            self.builders[i].append_value(text);
        }
        self.rows += 1;
        Ok(Some(next))
    }
}

/// PostgreSQL's text for one binary value of `field`'s type.
fn value_text(raw: &[u8], field: &Field) -> Result<String, String> {
    let wrong_size = || format!("a {}-byte value is not a binary {}", raw.len(), pg_type_name(field));
    let int = |raw: &[u8]| -> Option<i64> {
        Some(match raw.len() {
            2 => i64::from(i16::from_be_bytes(raw.try_into().ok()?)),
            4 => i64::from(i32::from_be_bytes(raw.try_into().ok()?)),
            8 => i64::from_be_bytes(raw.try_into().ok()?),
            _ => return None,
        })
    };
    Ok(match field.data_type() {
        DataType::Boolean => match raw {
            [0] => "f".into(),
            [_] => "t".into(),
            _ => return Err(wrong_size()),
        },
        DataType::Int16 | DataType::Int32 | DataType::Int64 => int(raw).ok_or_else(wrong_size)?.to_string(),
        DataType::Float32 | DataType::Float64 => float_text(raw).ok_or_else(wrong_size)?,
        DataType::Decimal128(..) => numeric_text(raw)?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            // jsonb's binary form is a version byte, then the text.
            let text = match (field.metadata().get(PG_TYPE_KEY).map(String::as_str), raw) {
                (Some("jsonb"), [1, rest @ ..]) => rest,
                (Some("jsonb"), _) => return Err("unsupported jsonb version".into()),
                _ => raw,
            };
            String::from_utf8(text.to_vec()).map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?
        }
        DataType::Date32 => {
            let days = i32::from_be_bytes(raw.try_into().map_err(|_| wrong_size())?);
            (epoch_date() + Duration::days(i64::from(days))).format("%Y-%m-%d").to_string()
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let micros = i64::from_be_bytes(raw.try_into().map_err(|_| wrong_size())?);
            timestamp_text(micros, zone.is_some())?
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let micros = i64::from_be_bytes(be::<8>(raw, 0).ok_or_else(wrong_size)?);
            let days = i32::from_be_bytes(be::<4>(raw, 8).ok_or_else(wrong_size)?);
            let months = i32::from_be_bytes(be::<4>(raw, 12).ok_or_else(wrong_size)?);
            format!("{months} mons {days} days {micros} microseconds")
        }
        _ => return Err(format!("binary COPY into a column of type {} is not supported", pg_type_name(field))),
    })
}

fn float_text(raw: &[u8]) -> Option<String> {
    let value = match raw.len() {
        4 => f64::from(f32::from_be_bytes(raw.try_into().ok()?)),
        8 => f64::from_be_bytes(raw.try_into().ok()?),
        _ => return None,
    };
    Some(match value {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "Infinity".into(),
        v if v == f64::NEG_INFINITY => "-Infinity".into(),
        // Rust prints the shortest text that reads back the same value.
        v => format!("{v:?}"),
    })
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

/// Microseconds since 2000-01-01 as timestamp text (UTC for timestamptz).
fn timestamp_text(micros: i64, with_zone: bool) -> Result<String, String> {
    const EPOCH_2000: i64 = 946_684_800_000_000;
    let at = micros
        .checked_add(EPOCH_2000)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| "timestamp out of range".to_string())?;
    let text = at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    Ok(if with_zone { format!("{text}+00") } else { text })
}

/// `numeric_send`'s form as numeric text: digit count, weight, sign,
/// display scale, then base-10000 digits.
fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| be::<2>(raw, 2 * i).map(i16::from_be_bytes).ok_or("a truncated binary numeric");
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN is not allowed in a numeric column".into()),
        _ => return Err("invalid sign in external \"numeric\" value".into()),
    }
    let digits = (0..ndigits.max(0) as usize).map(|i| word(4 + i)).collect::<Result<Vec<_>, _>>()?;
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return Err("invalid digit in external \"numeric\" value".into());
    }
    let digit = |w: i32| if w < 0 { 0 } else { digits.get(w as usize).copied().unwrap_or(0) };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    }
    for w in 0..=i32::from(weight) {
        let d = digit(w);
        if w == 0 { text.push_str(&d.to_string()) } else { text.push_str(&format!("{d:04}")) }
    }
    let scale = dscale.max(0) as usize;
    if scale > 0 {
        let mut fraction = String::new();
        let mut w = i32::from(weight) + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(w)));
            w += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(words: &[i16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn numerics_read_as_postgresql_sends_them() {
        assert_eq!(numeric_text(&words(&[2, 0, 0, 4, 1, 5000])).unwrap(), "1.5000");
        assert_eq!(numeric_text(&words(&[3, 1, 0, 2, 123, 4567, 8900])).unwrap(), "1234567.89");
        assert_eq!(numeric_text(&words(&[1, -1, 0x4000, 3, 50])).unwrap(), "-0.005");
        assert_eq!(numeric_text(&words(&[0, 0, 0, 2])).unwrap(), "0.00");
        assert_eq!(numeric_text(&words(&[1, 2, 0, 0, 1])).unwrap(), "100000000");
        assert!(numeric_text(&words(&[0, 0, -16384, 0])).is_err());
    }

    #[test]
    fn times_and_floats_read_as_postgresql_text() {
        assert_eq!(timestamp_text(0, true).unwrap(), "2000-01-01 00:00:00.000000+00");
        assert_eq!(timestamp_text(-1, false).unwrap(), "1999-12-31 23:59:59.999999");
        assert_eq!(float_text(&0.1f64.to_be_bytes()).unwrap(), "0.1");
        assert_eq!(float_text(&1.5f32.to_be_bytes()).unwrap(), "1.5");
        assert_eq!(float_text(&f64::NEG_INFINITY.to_be_bytes()).unwrap(), "-Infinity");
    }

    #[test]
    fn the_header_arrives_in_pieces() {
        let mut header = SIGNATURE.to_vec();
        header.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, 9, 9]);
        assert_eq!(header_len(&header[..5]).unwrap(), None);
        assert_eq!(header_len(&header[..20]).unwrap(), None);
        assert_eq!(header_len(&header).unwrap(), Some(21));
        assert!(header_len(b"PGCOPX").is_err());
    }
}
