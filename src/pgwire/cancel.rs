//! CancelRequest: a new connection that names a running session by its
//! process id and secret key, whose statement is then cancelled (see
//! `crate::server::cancel`).

use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;

use crate::server::Engine;

/// Cancels statements for CancelRequests.
#[derive(Debug)]
pub struct EddyCancel(pub Arc<Engine>);

#[async_trait]
impl CancelHandler for EddyCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let secret = match request.secret_key {
            SecretKey::I32(k) => k.to_be_bytes().to_vec(),
            SecretKey::Bytes(b) => b.to_vec(),
        };
        let found = self.0.cancels.cancel(&(request.pid, secret));
        tracing::debug!(pid = request.pid, found, "cancel request");
    }
}
