//! Checking every frontend message's framing before pgwire decodes it.
//!
//! pgwire's decoders trust the lengths and counts inside a message: a Bind
//! whose parameter length is 0x7fffffff, or a truncated Parse, panics the
//! connection's task, and a Query with bytes after its terminating NUL had
//! those bytes read as the next message (smuggling). [`Checked`] sits
//! between the socket and pgwire's codec. It lets through only whole
//! messages whose inner lengths, counts and terminators add up to exactly
//! the message's length; anything else is an `InvalidData` error, which the
//! connection answers with 08P01 before closing.
//!
//! The layouts are PostgreSQL's (protocol 3.0, "Message Formats").

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest message accepted (PostgreSQL allows 1 GiB; a message is
/// buffered whole before it is decoded).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// The longest startup packet, as PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`.
const MAX_STARTUP_BYTES: usize = 10_000;
/// Request codes of the untyped messages that come before startup.
const CANCEL: u32 = 80_877_102;
const SSL: u32 = 80_877_103;
const GSSENC: u32 = 80_877_104;

/// How the password messages (`p`) of this server are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// A NUL-terminated password (md5, or no password asked at all).
    Text,
    /// SASL: the first is a SASLInitialResponse, then SASLResponses.
    Sasl,
}

/// A socket whose bytes reach the reader only as whole, well-formed messages.
pub struct Checked<S> {
    inner: S,
    /// Bytes read, not yet checked.
    unchecked: BytesMut,
    /// Checked bytes, ready for the reader.
    ready: BytesMut,
    /// Whether the next message is untyped (startup, cancel, SSL request).
    untyped: bool,
    passwords: PasswordKind,
    sasl_started: bool,
    error: Option<String>,
    /// Whether the bytes given at construction are still unchecked.
    fresh: bool,
}

impl<S> Checked<S> {
    /// Wraps `inner`; `already_read` are bytes read from it before (they
    /// are checked too). `untyped` says the startup packet comes next.
    pub fn new(inner: S, already_read: BytesMut, untyped: bool, passwords: PasswordKind) -> Self {
        Self {
            inner,
            unchecked: already_read,
            ready: BytesMut::new(),
            untyped,
            passwords,
            sasl_started: false,
            error: None,
            fresh: true,
        }
    }

    /// Moves every complete, valid message from `unchecked` to `ready`.
    fn check_buffered(&mut self) -> Result<(), String> {
        loop {
            let start = usize::from(!self.untyped);
            if self.unchecked.len() < start + 4 {
                return Ok(());
            }
            let length = read_u32(&self.unchecked, start) as usize;
            let limit = if self.untyped { MAX_STARTUP_BYTES } else { MAX_MESSAGE_BYTES };
            if length < 4 || length > limit {
                return Err(format!("invalid message length {length}"));
            }
            let end = start + length;
            if self.unchecked.len() < end {
                return Ok(());
            }
            let body = &self.unchecked[start + 4..end];
            if self.untyped {
                self.untyped = check_untyped(body)?;
            } else {
                let kind = self.unchecked[0];
                check_typed(kind, body, self.passwords, &mut self.sasl_started)?;
            }
            let message = self.unchecked.split_to(end);
            self.ready.extend_from_slice(&message);
        }
    }
}

/// Checks a typed message's body; `sasl_started` says a SASLInitialResponse
/// was seen (the password messages after it are SASLResponses).
fn check_typed(kind: u8, body: &[u8], passwords: PasswordKind, sasl_started: &mut bool) -> Result<(), String> {
    let mut r = Reader(body);
    let what = match kind {
        b'Q' => r.cstr().map(|_| "Query"),
        b'P' => r.cstr().and_then(|_| r.cstr()).and_then(|_| r.array(4)).map(|_| "Parse"),
        b'B' => r.bind().map(|_| "Bind"),
        b'E' => r.cstr().and_then(|_| r.take(4)).map(|_| "Execute"),
        b'D' | b'C' => r.take(1).and_then(|_| r.cstr()).map(|_| "Describe or Close"),
        b'H' | b'S' | b'X' | b'c' => Some("Flush, Sync, Terminate or CopyDone"),
        b'd' => r.take(r.0.len()).map(|_| "CopyData"),
        b'f' => r.cstr().map(|_| "CopyFail"),
        b'p' => password(&mut r, passwords, sasl_started),
        other => return Err(format!("unknown message type {:?}", other as char)),
    };
    match what {
        Some(_) if r.0.is_empty() => Ok(()),
        Some(name) => Err(format!("{name} message has {} bytes after its end", r.0.len())),
        None => Err(format!("malformed {:?} message: its contents do not fit its length", kind as char)),
    }
}

fn password(r: &mut Reader, passwords: PasswordKind, sasl_started: &mut bool) -> Option<&'static str> {
    match (passwords, *sasl_started) {
        (PasswordKind::Text, _) => r.cstr().map(|_| "PasswordMessage"),
        (PasswordKind::Sasl, false) => {
            *sasl_started = true;
            r.cstr().and_then(|_| r.counted_bytes()).map(|_| "SASLInitialResponse")
        }
        (PasswordKind::Sasl, true) => r.take(r.0.len()).map(|_| "SASLResponse"),
    }
}

/// Checks an untyped message (its body after the length); returns whether
/// the next message is untyped too (after an SSL or GSSENC request).
fn check_untyped(body: &[u8]) -> Result<bool, String> {
    if body.len() < 4 {
        return Err("startup packet too short".into());
    }
    match read_u32(body, 0) {
        SSL | GSSENC if body.len() == 4 => Ok(true),
        CANCEL if body.len() == 12 => Ok(false),
        SSL | GSSENC | CANCEL => Err("malformed request packet".into()),
        _ if startup_parameters_fit(&body[4..]) => Ok(false),
        _ => Err("startup packet parameters are not name/value pairs ending in an empty name".into()),
    }
}

/// Whether `rest` is NUL-terminated name/value pairs, then one more NUL.
fn startup_parameters_fit(mut rest: &[u8]) -> bool {
    let mut strings = 0;
    loop {
        let Some(nul) = rest.iter().position(|&b| b == 0) else { return false };
        if nul == 0 {
            return rest.len() == 1 && strings % 2 == 0;
        }
        strings += 1;
        rest = &rest[nul + 1..];
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads a message body front to back; `None` when it runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<()> {
        if self.0.len() < n {
            return None;
        }
        self.0 = &self.0[n..];
        Some(())
    }

    fn cstr(&mut self) -> Option<()> {
        let nul = self.0.iter().position(|&b| b == 0)?;
        self.take(nul + 1)
    }

    fn i16(&mut self) -> Option<i16> {
        let v = i16::from_be_bytes([*self.0.first()?, *self.0.get(1)?]);
        self.take(2).map(|_| v)
    }

    fn i32(&mut self) -> Option<i32> {
        let v = i32::from_be_bytes(self.0.get(..4)?.try_into().ok()?);
        self.take(4).map(|_| v)
    }

    /// An i16 count, then that many items of `width` bytes.
    fn array(&mut self, width: usize) -> Option<()> {
        let n = usize::try_from(self.i16()?).ok()?;
        self.take(n.checked_mul(width)?)
    }

    /// An i32 length (−1 for NULL), then that many bytes.
    fn counted_bytes(&mut self) -> Option<()> {
        match self.i32()? {
            -1 => Some(()),
            n => self.take(usize::try_from(n).ok()?),
        }
    }

    fn bind(&mut self) -> Option<()> {
        self.cstr()?;
        self.cstr()?;
        self.array(2)?;
        let parameters = usize::try_from(self.i16()?).ok()?;
        for _ in 0..parameters {
            self.counted_bytes()?;
        }
        self.array(2)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Checked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(why) = &this.error {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why.clone())));
            }
            if this.fresh {
                // Bytes handed over at construction may hold whole messages.
                this.fresh = false;
                if let Err(why) = this.check_buffered() {
                    this.error = Some(why);
                }
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())), // EOF
                Poll::Ready(Ok(())) => {
                    this.unchecked.extend_from_slice(read.filled());
                    if let Err(why) = this.check_buffered() {
                        this.error = Some(why); // the valid messages before it go first
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Checked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn check(passwords: PasswordKind, bytes: &[u8]) -> Result<usize, String> {
        let mut c = Checked::new((), BytesMut::from(bytes), false, passwords);
        c.check_buffered().map(|()| c.ready.len())
    }

    #[test]
    fn well_formed_messages_pass_and_malformed_ones_are_named() {
        let mut bind = b"\0stmt\0".to_vec();
        bind.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]);
        let good = [message(b'Q', b"SELECT 1\0"), message(b'B', &bind), message(b'S', b"")].concat();
        assert_eq!(check(PasswordKind::Text, &good), Ok(good.len()));
        assert_eq!(check(PasswordKind::Text, &good[..good.len() - 2]), Ok(good.len() - 5), "a partial message waits");

        let mut huge_parameter = b"\0\0".to_vec();
        huge_parameter.extend_from_slice(&[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, b'7', 0, 0]);
        let mut negative_count = b"\0\0".to_vec();
        negative_count.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 0]);
        let smuggled = [b"SELECT 1\0".to_vec(), message(b'Q', b"SELECT 2\0")].concat();
        for (what, bad) in [
            ("a parameter longer than the message", message(b'B', &huge_parameter)),
            ("a parameter count of -1", message(b'B', &negative_count)),
            ("a truncated Parse", message(b'P', b"\0SELECT 1")),
            ("a truncated Execute", message(b'E', b"\0\0\0")),
            ("a truncated Describe", message(b'D', b"")),
            ("a Query with a second message inside", message(b'Q', &smuggled)),
            ("a length under 4", vec![b'Q', 0, 0, 0, 2]),
            ("an unknown type", message(b'!', b"")),
        ] {
            assert!(check(PasswordKind::Text, &bad).is_err(), "{what} passed");
        }
        let truncated_sasl = message(b'p', b"SCRAM-SHA-256\0\0\0\0\x40n,,n=");
        assert!(check(PasswordKind::Sasl, &truncated_sasl).is_err());
        let sasl = message(b'p', b"SCRAM-SHA-256\0\0\0\0\x05n,,n=");
        assert!(check(PasswordKind::Sasl, &sasl).is_ok());
    }

    #[test]
    fn startup_packets_are_checked_untyped() {
        let mut startup = 196_608u32.to_be_bytes().to_vec();
        startup.extend_from_slice(b"user\0eddy\0\0");
        let mut packet = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&startup);
        let mut c = Checked::new((), BytesMut::from(&packet[..]), true, PasswordKind::Text);
        assert!(c.check_buffered().is_ok());
        assert!(!c.untyped, "typed messages follow the startup packet");
        let mut c = Checked::new((), BytesMut::from(&packet[..packet.len() - 1][..]), true, PasswordKind::Text);
        c.unchecked[3] -= 1; // the same packet without its final NUL
        assert!(c.check_buffered().is_err());
    }
}
