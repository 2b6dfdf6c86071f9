//! `CHECKPOINT`, as in PostgreSQL: takes a checkpoint now, so that a
//! restart loads it instead of replaying the insert log.

use super::Reply;
use crate::error::Result;
use crate::server::Session;

/// Runs a checkpoint and waits until it is on disk.
pub async fn execute(session: &Session) -> Result<Reply> {
    session.engine().checkpoint().await?;
    Ok(Reply::Tag("CHECKPOINT".into()))
}
