//! Changes going out to clients: LISTEN/NOTIFY ([`notify`]) and
//! SUBSCRIBE ([`subscribe`]).
//!
//! This room hands out bounded queues and fills them; it knows nothing of
//! the wire. `crate::pgwire` drains them onto connections, and
//! `crate::stream` publishes a view's changes into them. Nothing here ever
//! waits on a reader: a full queue loses its reader, never slows a writer.

pub mod json;
pub mod notify;
pub mod subscribe;

pub use notify::{Mailbox, Notification, Notifier};
pub use subscribe::{Follower, Subscribers, Subscription};

/// Why a notification or a subscription failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A NOTIFY payload of 8000 bytes or more.
    #[error("payload string too long: a notification's payload must be shorter than {max} bytes")]
    PayloadTooLong {
        /// The limit.
        max: usize,
    },
    /// `NOTIFY ""`.
    #[error("channel name cannot be empty")]
    EmptyChannel,
    /// The relation cannot be subscribed to.
    #[error("{0}")]
    NotSubscribable(String),
    /// The subscriber fell too far behind and was cut off.
    #[error(
        "the subscription to \"{relation}\" fell more than {rows} changed rows behind and was ended; read it faster (FETCH more often, or use COPY (SUBSCRIBE ...) TO STDOUT), then subscribe again"
    )]
    Overflow {
        /// The subscribed relation.
        relation: String,
        /// The limit.
        rows: usize,
    },
    /// The subscribed relation went away.
    #[error("\"{0}\" was dropped, which ends its subscriptions")]
    Ended(String),
    /// `FETCH` or `CLOSE` of a cursor that was never declared.
    #[error("cursor \"{0}\" does not exist")]
    UnknownCursor(String),
    /// `DECLARE` of a name already in use.
    #[error("cursor \"{0}\" already exists")]
    DuplicateCursor(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}
