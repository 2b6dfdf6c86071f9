//! Refusing a connection before pgwire takes it: past `--max-connections`,
//! a client gets PostgreSQL's own answer at once (FATAL 53300 "sorry, too
//! many clients already") instead of waiting in the listen backlog until its
//! own timeout.
//!
//! The client speaks first: an SSLRequest or GSSENCRequest (answered `N`,
//! so that libpq shows the real error rather than a failed negotiation),
//! then its startup packet. The error is sent after that, as PostgreSQL
//! does; a client that says nothing for a second gets it anyway.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refused client may take to send its first packets.
const LISTEN_FOR: Duration = Duration::from_secs(1);
/// The longest packet read (and ignored) before answering.
const PACKET_MAX: usize = 10_000;
/// The request codes of SSLRequest and GSSENCRequest.
const ENCRYPTION_REQUESTS: [u32; 2] = [80_877_103, 80_877_104];

/// Sends FATAL 53300 to `socket` and closes it.
pub async fn too_many_connections(mut socket: TcpStream, limit: usize) {
    let _ = tokio::time::timeout(LISTEN_FOR, skip_startup(&mut socket)).await;
    let message = format!(
        "sorry, too many clients already: the server serves at most {limit} connections; \
         close idle connections, use a connection pool, or raise --max-connections"
    );
    let _ = socket.write_all(&error_response("53300", &message)).await;
    let _ = socket.shutdown().await;
}

/// Reads the client's first packets: encryption requests, answered `N`,
/// then the startup packet.
async fn skip_startup(socket: &mut TcpStream) -> std::io::Result<()> {
    loop {
        let length = socket.read_u32().await? as usize;
        if !(8..=PACKET_MAX).contains(&length) {
            return Ok(());
        }
        let mut body = vec![0; length - 4];
        socket.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if !ENCRYPTION_REQUESTS.contains(&code) {
            return Ok(());
        }
        socket.write_all(b"N").await?;
    }
}

/// A FATAL ErrorResponse message with `code` and `message`.
fn error_response(code: &str, message: &str) -> BytesMut {
    let mut fields = BytesMut::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', message)] {
        fields.put_u8(tag);
        fields.put_slice(value.as_bytes());
        fields.put_u8(0);
    }
    fields.put_u8(0);
    let mut out = BytesMut::with_capacity(fields.len() + 5);
    out.put_u8(b'E');
    out.put_u32(fields.len() as u32 + 4);
    out.put_slice(&fields);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_is_a_well_formed_error_response() {
        let bytes = super::error_response("53300", "sorry");
        assert_eq!(bytes[0], b'E');
        assert_eq!(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize, bytes.len() - 1);
        assert!(bytes.ends_with(b"Msorry\0\0"));
    }
}
