//! One client connection's life, and the limits on it.
//!
//! - Past `--max-connections`, a new connection is refused at once with
//!   53300, never left waiting in the listen backlog.
//! - A connection that has not finished startup (authentication included)
//!   within `--startup-timeout-ms` is closed, so sockets that never speak
//!   cannot hold the connection slots.
//! - With `--idle-session-timeout-ms`, a session that waits that long for
//!   its client with no statement running is closed, as PostgreSQL's
//!   `idle_session_timeout` does.
//!
//! - A client that disconnects while its statement runs has the statement
//!   cancelled, instead of leaving it to burn a core for nobody.
//!
//! This room only times and counts: the protocol itself is `crate::pgwire`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Engine, Session};
use crate::auth::Users;
use crate::pgwire::ConnectionHandlers;
use crate::pgwire::frames::PasswordKind;
use pgwire::tokio::TlsAcceptor;

/// How often a connection with data waiting is checked for its client
/// having left.
const GONE_CHECK: Duration = Duration::from_millis(100);
/// How often an established session's idleness is checked.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// What every connection is served with.
pub struct Connections {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Who may connect.
    pub users: Users,
    /// TLS, if configured.
    pub tls: Option<TlsAcceptor>,
    /// One permit per connection served.
    pub permits: Arc<Semaphore>,
}

impl Connections {
    /// Serves `socket` until it closes, a limit ends it, or `stop` fires;
    /// refuses it at once when every slot is taken.
    pub async fn serve(&self, socket: TcpStream, peer: SocketAddr, stop: CancellationToken) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            debug!(%peer, "refused: too many connections");
            self.engine.sessions.refused();
            crate::pgwire::refuse::too_many_connections(socket, self.engine.config.max_connections).await;
            return;
        };
        let _counted = self.engine.sessions.connected();
        let (socket, probe) = match with_probe(socket) {
            Ok(pair) => pair,
            Err(e) => return warn!(%peer, error = %e, "could not watch the connection"),
        };
        let session = Arc::new(Session::new(self.engine.clone()));
        let handlers = ConnectionHandlers::new(session.clone(), self.users.clone());
        let passwords = match self.users.method() {
            crate::auth::Method::ScramSha256 => PasswordKind::Sasl,
            _ => PasswordKind::Text,
        };
        let connection = crate::pgwire::serve::serve(socket, self.tls.clone(), handlers, passwords);
        tokio::select! {
            _ = stop.cancelled() => {}
            r = connection => {
                if let Err(e) = r { warn!(error = %e, "connection ended with an error"); }
            }
            why = self.watch(&session) => debug!(%peer, "connection closed: {why}"),
            () = gone(&probe) => {
                // The client left: whatever it was running stops now.
                session.cancel_running();
                debug!(%peer, "the client disconnected");
            }
        }
        session.end();
        drop::<OwnedSemaphorePermit>(permit);
    }

    /// Resolves when a limit ends the session: startup took too long, or it
    /// idled too long.
    async fn watch(&self, session: &Session) -> &'static str {
        let config = &self.engine.config;
        let startup_deadline = tokio::time::Instant::now() + config.startup_timeout;
        loop {
            tokio::time::sleep(IDLE_CHECK.min(config.startup_timeout)).await;
            if !session.is_started() {
                if tokio::time::Instant::now() >= startup_deadline {
                    return "startup did not finish within --startup-timeout-ms";
                }
                continue;
            }
            let Some(idle_max) = config.idle_session_timeout else {
                return std::future::pending().await;
            };
            if session.idle_for().is_some_and(|idle| idle >= idle_max) {
                return "idle longer than --idle-session-timeout-ms";
            }
        }
    }
}

/// The socket, and a second handle on it (a duplicated descriptor) for
/// noticing that the client has gone while pgwire owns the first.
fn with_probe(socket: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std = socket.into_std()?;
    let probe = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, TcpStream::from_std(probe)?))
}

/// Resolves once the client has closed its end. Bytes the client sent
/// ahead (pipelined messages) are only peeked at, never taken.
async fn gone(probe: &TcpStream) {
    let mut byte = [0u8; 1];
    loop {
        if probe.readable().await.is_err() {
            return;
        }
        match probe.peek(&mut byte).await {
            Ok(0) | Err(_) => return,
            // Data waits for pgwire: look again later.
            Ok(_) => tokio::time::sleep(GONE_CHECK).await,
        }
    }
}
