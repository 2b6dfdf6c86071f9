//! Startup: any user and database are accepted (authentication comes with
//! the Postgres-ecosystem work), and the server announces the parameters
//! clients read on connect (server_version, TimeZone, DateStyle, ...).

use std::fmt::Debug;
use std::sync::atomic::{AtomicI32, Ordering};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::ClientInfo;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::startup::SecretKey;

use crate::query::functions::SERVER_VERSION;

static NEXT_PID: AtomicI32 = AtomicI32::new(1);

/// Accepts every startup.
#[derive(Debug)]
pub struct EddyStartup;

#[async_trait]
impl StartupHandler for EddyStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
            client.set_pid_and_secret_key(pid, SecretKey::I32(pid.wrapping_mul(7919)));
            let mut parameters = DefaultServerParameterProvider::default();
            parameters.server_version = SERVER_VERSION.to_string();
            parameters.time_zone = "UTC".into();
            parameters.date_style = "ISO, MDY".into();
            finish_authentication(client, &parameters).await?;
        }
        Ok(())
    }
}
