//! A bare PostgreSQL frontend for tests that must send what a well-behaved
//! driver never would: wrong parameter counts, half a COPY, oversized
//! messages.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: its type byte and body.
pub type Message = (u8, Vec<u8>);

/// A raw protocol connection.
pub struct Raw {
    stream: TcpStream,
}

impl Raw {
    /// Connects and completes startup (up to the first ReadyForQuery).
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let mut raw = Raw { stream };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for s in ["user", "eddy", "database", "eddy"] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend(body);
        raw.stream.write_all(&msg).await.expect("startup");
        raw.until_ready().await;
        raw
    }

    /// Sends one frontend message.
    pub async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut msg = vec![tag];
        msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        msg.extend_from_slice(body);
        self.stream.write_all(&msg).await.expect("send");
    }

    /// Sends a simple query.
    pub async fn query(&mut self, sql: &str) {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(b'Q', &body).await;
    }

    /// Reads one backend message.
    pub async fn read(&mut self) -> Message {
        let tag = self.stream.read_u8().await.expect("message type");
        let len = self.stream.read_i32().await.expect("message length") as usize;
        let mut body = vec![0; len - 4];
        self.stream.read_exact(&mut body).await.expect("message body");
        (tag, body)
    }

    /// Reads messages up to and including ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = self.read().await;
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Whether the server has closed the connection (waits up to 5 s).
    pub async fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut byte)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    /// Closes the socket abruptly.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// The SQLSTATE of the first ErrorResponse among `messages`.
pub fn error_code(messages: &[Message]) -> Option<String> {
    let (_, body) = messages.iter().find(|(t, _)| *t == b'E')?;
    let mut fields = body.split(|&b| b == 0);
    fields.find_map(|f| f.strip_prefix(b"C").map(|c| String::from_utf8_lossy(c).to_string()))
}

/// A C string.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
