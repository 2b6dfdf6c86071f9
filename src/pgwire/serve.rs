//! One connection's message loop: pgwire's own loop, with every message's
//! framing checked ([`super::frames`]) before pgwire decodes it.
//!
//! It does what `pgwire::tokio::process_socket` does (TLS negotiation,
//! then each message to its handler, errors answered), except that a
//! malformed message is answered with FATAL 08P01 and the connection
//! closed, instead of panicking the task. Timeouts are not kept here: the
//! connection's limits live in `crate::server`.
//!
//! It also does what pgwire's loop cannot: while the session is idle, it
//! sends each notification for the session's LISTENs as soon as it arrives
//! (an asynchronous NotificationResponse, as PostgreSQL does), so a client
//! waiting on its socket (PDO's `pgsqlGetNotify`, psycopg's `poll`) wakes.

use std::io;

use futures::{SinkExt, StreamExt};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::{ClientInfo, ErrorHandler, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::NotificationResponse;
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

    let ConnectionHandlers { handler, startup, cancel, mailbox } = handlers;
    let errors = NoopHandler;
    loop {
        let idle = matches!(socket.state(), PgWireConnectionState::ReadyForQuery);
        // Both branches are cancel-safe: a message half read stays in the
        // framed buffer, and a notification stays in the mailbox.
        let next = tokio::select! {
            biased;
            next = socket.next() => next,
            () = mailbox.arrived(), if idle => {
                feed_notifications(&mut socket, &mailbox).await.map_err(io::Error::other)?;
                socket.flush().await?;
                continue;
            }
        };
        let Some(next) = next else { break };
        let message = match next {
            Ok(m) => m,
            Err(e) => return refuse_malformed(&mut socket, e.to_string()).await,
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        handler.before(&mut socket, &message);
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

/// Queues every waiting notification of `mailbox` on `client`, as
/// NotificationResponses; the caller flushes.
pub async fn feed_notifications<C>(client: &mut C, mailbox: &crate::push::Mailbox) -> PgWireResult<()>
where
    C: futures::Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<C::Error>,
{
    for n in mailbox.take() {
        let message = NotificationResponse::new(n.pid, n.channel, n.payload);
        client.feed(PgWireBackendMessage::NotificationResponse(message)).await?;
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
