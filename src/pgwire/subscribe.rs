//! Sends a SUBSCRIBE to its client, epoch by epoch, until it is cancelled.
//!
//! As rows (RowDescription, then DataRows) for a plain `SUBSCRIBE`, or as
//! `COPY ... TO STDOUT` text for `COPY (SUBSCRIBE ...) TO STDOUT`, which
//! psql and psycopg2's `copy_expert` print as it comes. Each epoch's rows
//! are flushed together: pgwire's own result helpers buffer until the
//! statement ends, and a subscription never ends by itself.
//!
//! It ends with an error: 57014 when the client cancels it (or leaves),
//! 53200 when it fell too far behind, 55000 when its view was dropped.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Format;
use pgwire::error::PgWireError;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyOutResponse};
use pgwire::messages::data::{DataRow, RowDescription};

use super::encode;
use crate::error::{EddyError, Result};
use crate::push::Subscription;

/// Streams `subscription` to `client`, as COPY text when `copy`.
pub async fn stream<C>(client: &mut C, mut subscription: Subscription, copy: bool) -> Result<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
{
    let schema = subscription.schema();
    let fields = Arc::new(encode::pg_fields(&schema, &Format::UnifiedText).map_err(wire)?);
    let start = match copy {
        true => {
            PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(0, fields.len() as i16, vec![0; fields.len()]))
        }
        false => PgWireBackendMessage::RowDescription(RowDescription::new(fields.iter().map(Into::into).collect())),
    };
    client.send(start).await.map_err(|e| wire(e.into()))?;
    loop {
        let batch = subscription.next().await?;
        for row in encode::data_rows(batch, &fields, &Format::UnifiedText).map_err(wire)? {
            let message = match copy {
                true => PgWireBackendMessage::CopyData(CopyData::new(copy_line(&row))),
                false => PgWireBackendMessage::DataRow(row),
            };
            client.feed(message).await.map_err(|e| wire(e.into()))?;
        }
        client.flush().await.map_err(|e| wire(e.into()))?;
    }
}

fn wire(e: PgWireError) -> EddyError {
    EddyError::Protocol(format!("could not send the subscription: {e}"))
}

/// A text DataRow as a line of COPY's text format: tab-separated, `\N` for
/// NULL, with backslash, tab, newline and carriage return escaped.
fn copy_line(row: &DataRow) -> Bytes {
    let format = crate::ingest::decode::CopyFormat::default();
    Bytes::from(crate::sql::statement::copy_to::line(&super::copy_out::row_fields(row), &format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn copy_lines_escape_as_postgresql_does() {
        let mut data = BytesMut::new();
        for field in [Some(&b"1"[..]), None, Some(&b"a\tb\\c\nd"[..])] {
            match field {
                Some(v) => {
                    data.put_i32(v.len() as i32);
                    data.put_slice(v);
                }
                None => data.put_i32(-1),
            }
        }
        let row = DataRow::new(data, 3);
        assert_eq!(&copy_line(&row)[..], b"1\t\\N\ta\\tb\\\\c\\nd\n");
    }
}
