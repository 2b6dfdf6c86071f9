//! The one error type a client can see.
//!
//! Every room has its own error enum (`SqlError`, `CatalogError`, ...). They all
//! convert into [`EddyError`], and `crate::pgwire::sqlstate` maps an
//! `EddyError` to a SQLSTATE in exactly one place.

use datafusion::error::DataFusionError;

use crate::catalog::CatalogError;
use crate::checkpoint::CheckpointError;
use crate::ingest::IngestError;
use crate::ingest::kafka::KafkaError;
use crate::planner::PlanError;
use crate::sql::SqlError;

/// Any error that ends a statement.
#[derive(Debug, thiserror::Error)]
pub enum EddyError {
    /// The statement text could not be parsed or is not supported.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A name was missing, taken, or had dependents.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A continuous view's query cannot be maintained incrementally.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Rows could not be written to a stream.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A table refused a change (a constraint).
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// The data directory could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A user may not do this, or authentication is misconfigured.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A notification or subscription failed.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// A Kafka sink could not be made or dropped.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    /// A Kafka function or binding failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// DataFusion failed to plan or run a query.
    #[error("{}", clean_datafusion_message(.0))]
    Query(#[from] DataFusionError),
    /// The client broke the wire protocol (for example, the wrong number of
    /// parameters for a prepared statement).
    #[error("{0}")]
    Protocol(String),
    /// A limit was hit; the message names the limit and how to stay under it.
    #[error("{0}")]
    LimitExceeded(String),
    /// The statement was cancelled (a CancelRequest or `statement_timeout`).
    #[error("{0}")]
    Canceled(String),
    /// A bug in Eddy: this should never reach a client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results whose error is an [`EddyError`].
pub type Result<T, E = EddyError> = std::result::Result<T, E>;

/// DataFusion wraps errors in context and prefixes them with their category;
/// clients want the message that says what went wrong.
pub fn clean_datafusion_message(err: &DataFusionError) -> String {
    let root = root_datafusion_error(err);
    let text = match root {
        DataFusionError::ArrowError(e, _) => e.to_string(),
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::ResourcesExhausted(m) => m.clone(),
        DataFusionError::SchemaError(e, _) => e.to_string(),
        DataFusionError::SQL(e, _) => e.to_string(),
        DataFusionError::External(e) => e.to_string(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_string()
}

/// Strips DataFusion's `Context`, `Shared` and `Diagnostic` wrappers.
pub fn root_datafusion_error(err: &DataFusionError) -> &DataFusionError {
    match err {
        DataFusionError::Context(_, inner) => root_datafusion_error(inner),
        DataFusionError::Diagnostic(_, inner) => root_datafusion_error(inner),
        DataFusionError::Shared(inner) => root_datafusion_error(inner),
        DataFusionError::Collection(errs) if !errs.is_empty() => root_datafusion_error(&errs[0]),
        other => other,
    }
}
