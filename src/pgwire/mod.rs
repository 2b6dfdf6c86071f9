//! The PostgreSQL wire protocol, through pgwire: startup, simple and
//! extended queries, COPY, result encoding and error SQLSTATEs.
//!
//! Each connection gets its own [`ConnectionHandlers`] around its
//! [`Session`], so per-connection state (settings, a COPY in progress) never
//! needs a lookup.

pub mod cancel;
pub mod copy_out;
pub mod encode;
pub mod frames;
pub mod handler;
pub mod params;
mod pg_wording;
pub mod refuse;
pub mod serve;
pub mod sqlstate;
mod startup;
mod streamed;
pub mod subscribe;

use std::sync::Arc;

use pgwire::api::PgWireServerHandlers;

use crate::auth::Users;
use crate::server::Session;
use handler::EddyHandler;
use startup::EddyStartup;

/// The handlers pgwire calls for one connection.
#[derive(Debug)]
pub struct ConnectionHandlers {
    handler: Arc<EddyHandler>,
    startup: Arc<EddyStartup>,
    cancel: Arc<cancel::EddyCancel>,
    /// The session's notifications, sent while it is idle.
    mailbox: Arc<crate::push::Mailbox>,
}

impl ConnectionHandlers {
    /// Handlers for a new connection's `session`, authenticating `users`.
    pub fn new(session: Arc<Session>, users: Users) -> Self {
        let startup = Arc::new(EddyStartup::new(session.clone(), users));
        let cancel = Arc::new(cancel::EddyCancel(session.engine().clone()));
        let mailbox = session.mailbox().clone();
        Self { handler: Arc::new(EddyHandler::new(session)), startup, cancel, mailbox }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.handler.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}
