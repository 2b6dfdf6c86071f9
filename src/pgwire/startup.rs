//! Startup: authentication (trust, md5 or SCRAM-SHA-256, see
//! [`crate::auth`]), the user's role recorded in the session, and the
//! parameters clients read on connect (server_version, TimeZone, DateStyle,
//! ...), sent as ParameterStatus messages.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::md5pass::Md5PasswordAuthStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::startup::SecretKey;

use crate::auth::{Method, Users};
use crate::query::functions::SERVER_VERSION;
use crate::server::Session;

static NEXT_PID: AtomicI32 = AtomicI32::new(1);

/// A secret key a CancelRequest must quote: random, so that no other client
/// can guess it.
fn random_secret() -> PgWireResult<i32> {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| PgWireError::ApiError("no randomness for the cancel key".into()))?;
    Ok(i32::from_be_bytes(bytes))
}

/// How this connection proves who it is.
enum Check {
    Trust,
    Md5(Md5PasswordAuthStartupHandler<Users, DefaultServerParameterProvider>),
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
}

/// One connection's startup.
pub struct EddyStartup {
    session: Arc<Session>,
    users: Users,
    check: Check,
    parameters: Arc<DefaultServerParameterProvider>,
}

impl Debug for EddyStartup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EddyStartup").field("method", &self.users.method()).finish_non_exhaustive()
    }
}

impl EddyStartup {
    /// The startup of a connection to `session`, checking `users`. The
    /// pgwire handlers keep per-connection state, so each connection gets
    /// its own.
    pub fn new(session: Arc<Session>, users: Users) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_string();
        parameters.time_zone = "UTC".into();
        parameters.date_style = "ISO, MDY".into();
        parameters.scram_iterations = Users::scram_iterations();
        let parameters = Arc::new(parameters);
        let check = match users.method() {
            Method::Trust => Check::Trust,
            Method::Md5 => Check::Md5(Md5PasswordAuthStartupHandler::new(Arc::new(users.clone()), parameters.clone())),
            Method::ScramSha256 => {
                let mut scram = ScramAuth::new(Arc::new(users.clone()));
                scram.set_iterations(Users::scram_iterations());
                Check::Scram(SASLAuthStartupHandler::new(parameters.clone()).with_scram(scram))
            }
        };
        Self { session, users, check, parameters }
    }
}

#[async_trait]
impl StartupHandler for EddyStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            let read_only = self.users.is_read_only(&user);
            self.session.set_user(user, read_only);
        }
        match &self.check {
            Check::Md5(handler) => handler.on_startup(client, message).await?,
            Check::Scram(handler) => handler.on_startup(client, message).await?,
            Check::Trust => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
                    client.set_pid_and_secret_key(pid, SecretKey::I32(random_secret()?));
                    finish_authentication(client, self.parameters.as_ref()).await?;
                }
            }
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) && !self.session.is_started() {
            // The startup timeout no longer applies, and CancelRequests may name it.
            let (pid, secret) = client.pid_and_secret_key();
            let secret = match secret {
                SecretKey::I32(k) => k.to_be_bytes().to_vec(),
                SecretKey::Bytes(b) => b.to_vec(),
            };
            self.session.mark_started(pid, secret);
        }
        Ok(())
    }
}
