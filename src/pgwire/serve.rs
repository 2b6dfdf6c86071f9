//! One connection's message loop: pgwire's own loop, with every message's
//! framing checked ([`super::frames`]) before pgwire decodes it.
//!
//! It does what `pgwire::tokio::process_socket` does (TLS negotiation,
//! then each message to its handler, errors answered), except that a
//! malformed message is answered with FATAL 08P01 and the connection
//! closed, instead of panicking the task. Timeouts are not kept here: the
//! connection's limits live in `crate::server`.

use std::io;

use futures::{SinkExt, StreamExt};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::{ClientInfo, ErrorHandler, NoopHandler, PgWireConnectionState};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::ConnectionHandlers;
use super::frames::{Checked, PasswordKind};

/// Serves `socket` until the client leaves or sends a malformed message.
pub async fn serve(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: ConnectionHandlers,
    passwords: PasswordKind,
) -> io::Result<()> {
    type Statement = <super::handler::EddyHandler as ExtendedQueryHandler>::Statement;
    let Some(negotiated) = negotiate_tls::<Statement>(socket, tls).await? else {
        return Ok(()); // a direct TLS handshake without TLS configured
    };
    let old = negotiated.into_parts();
    let checked = Checked::new(old.io, old.read_buf, true, passwords);
    let mut parts = FramedParts::new(checked, old.codec);
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let ConnectionHandlers { handler, startup, cancel } = handlers;
    let errors = NoopHandler;
    while let Some(next) = socket.next().await {
        let message = match next {
            Ok(m) => m,
            Err(e) => return refuse_malformed(&mut socket, e.to_string()).await,
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let outcome = process_message(
            message,
            &mut socket,
            startup.clone(),
            handler.clone(),
            handler.clone(),
            handler.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = outcome {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, is_extended_query).await?;
        }
    }
    Ok(())
}

/// Answers a message that could not be read with FATAL 08P01, and closes.
async fn refuse_malformed<S>(socket: &mut S, error: String) -> io::Result<()>
where
    S: futures::Sink<PgWireBackendMessage, Error = io::Error> + Unpin,
{
    tracing::debug!(%error, "closing a connection that sent a malformed message");
    let info = ErrorInfo::new("FATAL".into(), "08P01".into(), format!("invalid frontend message: {error}"));
    socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await?;
    socket.close().await
}
