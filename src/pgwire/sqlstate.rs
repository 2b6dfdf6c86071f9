//! The one place errors become SQLSTATEs.
//!
//! Every error a client sees goes through [`error_info`]. DataFusion's
//! errors are classified by kind (and, where DataFusion only gives a
//! message, by its wording); errors Eddy raised inside DataFusion
//! (`DataFusionError::External`) are unwrapped and mapped like the rest.

use crate::auth::AuthError;
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};
use pgwire::error::{ErrorInfo, PgWireError};

use crate::catalog::CatalogError;
use crate::checkpoint::CheckpointError;
use crate::clock::ClockError;
use crate::error::{EddyError, root_datafusion_error};
use crate::ingest::IngestError;
use crate::ingest::kafka::KafkaError;
use crate::planner::PlanError;
use crate::sql::SqlError;
use crate::window::WindowError;

/// Syntax error.
pub const SYNTAX_ERROR: &str = "42601";
/// Undefined table.
pub const UNDEFINED_TABLE: &str = "42P01";
/// Undefined column.
pub const UNDEFINED_COLUMN: &str = "42703";
/// Invalid text representation.
pub const INVALID_TEXT: &str = "22P02";
/// Feature not supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// Protocol violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// Internal error.
pub const INTERNAL: &str = "XX000";
/// In failed transaction.
pub const IN_FAILED_TRANSACTION: &str = "25P02";

/// The SQLSTATE of an error.
pub fn sqlstate(err: &EddyError) -> &'static str {
    match err {
        EddyError::Sql(e) => match e {
            SqlError::Syntax(_) => SYNTAX_ERROR,
            SqlError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
            SqlError::InvalidParameter(_) => "22023",
            SqlError::UnknownSetting(_) => "42704",
            SqlError::UnknownPrepared(_) => "26000",
            SqlError::DuplicatePrepared(_) => "42P05",
            SqlError::UnknownSavepoint(_) => "3B001",
            SqlError::NoTransaction(_) => "25P01",
            SqlError::TooComplex(_) => "54001",
        },
        EddyError::Catalog(e) => catalog_state(e),
        EddyError::Plan(e) => plan_state(e),
        EddyError::Ingest(e) => ingest_state(e),
        EddyError::Table(e) => table_state(e),
        EddyError::Kafka(e) => kafka_state(e),
        EddyError::Push(e) => push_state(e),
        EddyError::Sink(e) => sink_state(e),
        EddyError::Checkpoint(e) => checkpoint_state(e),
        EddyError::Query(e) => datafusion_state(e),
        EddyError::Auth(e) => match e {
            AuthError::ReadOnly { .. } => "42501",
            AuthError::Config(_) | AuthError::Tls(_) => "F0000",
        },
        EddyError::Protocol(_) => PROTOCOL_VIOLATION,
        EddyError::LimitExceeded(_) => "54000",
        EddyError::Canceled(_) => "57014",
        EddyError::Internal(_) => INTERNAL,
    }
}

fn checkpoint_state(e: &CheckpointError) -> &'static str {
    match e {
        _ if e.is_disk_full() => "53100",
        CheckpointError::Io { .. } | CheckpointError::LogBroken(_) => "58030",
        CheckpointError::Corrupt { .. } | CheckpointError::Unrecoverable { .. } => "XX001",
        CheckpointError::LogClosed => "57P01",
        CheckpointError::Locked(_) => "55006",
        CheckpointError::Encode(_) | CheckpointError::Restore(_) => INTERNAL,
    }
}

fn catalog_state(e: &CatalogError) -> &'static str {
    match e {
        CatalogError::UndefinedRelation(_) => UNDEFINED_TABLE,
        CatalogError::DuplicateRelation(_) => "42P07",
        CatalogError::WrongObjectType { .. } => "42809",
        CatalogError::DependentObjects { .. } => "2BP01",
        CatalogError::UndefinedColumn { .. } => UNDEFINED_COLUMN,
        CatalogError::DuplicateColumn(_) => "42701",
        CatalogError::UnsupportedType(_) => "42704",
    }
}

fn plan_state(e: &PlanError) -> &'static str {
    match e {
        PlanError::InvalidView(_) => "42P17",
        PlanError::Unsupported(_) | PlanError::StreamRead(_) => FEATURE_NOT_SUPPORTED,
        PlanError::DataFusion(e) => datafusion_state(e),
        PlanError::Window(e) => window_state(e),
        PlanError::Syntax(_) => SYNTAX_ERROR,
    }
}

fn window_state(e: &WindowError) -> &'static str {
    match e {
        WindowError::InvalidOption(_) => "22023",
        WindowError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        WindowError::Clock(ClockError::NotManual) => "55000",
        WindowError::Clock(ClockError::Backwards { .. }) => "22008",
    }
}

fn ingest_state(e: &IngestError) -> &'static str {
    match e {
        IngestError::InvalidText(_) => INVALID_TEXT,
        IngestError::BadCopyData(_) => "22P04",
        IngestError::TooLarge(_) => "54000",
        IngestError::CopyAborted(_) => "57014",
        IngestError::ViewFailed { source, .. } => match datafusion_state(source) {
            INTERNAL => "22000",
            state => state,
        },
        IngestError::ViewStopped(_) => "55000",
        IngestError::Internal(_) => "XX000",
        IngestError::OutOfMemory(_) => "53200",
        IngestError::NotNull { .. } => "23502",
        IngestError::ValueTooLong(_) => "22001",
        IngestError::Durability(e) => checkpoint_state(e),
        IngestError::Table(e) => table_state(e),
    }
}

fn table_state(e: &crate::table::TableError) -> &'static str {
    use crate::table::TableError;
    match e {
        TableError::UniqueViolation { .. } => "23505",
        TableError::NotNull { .. } => "23502",
        TableError::ValueTooLong(_) => "22001",
        TableError::NoConflictTarget { .. } => "42P10",
        TableError::AffectsRowTwice => "21000",
        TableError::SequenceExhausted { .. } => "2200H",
        TableError::GeneratedAlways(_) => "428C9",
        TableError::Deadlock { .. } => "40P01",
        TableError::Unsupported(_) | TableError::FedByKafka { .. } => FEATURE_NOT_SUPPORTED,
        TableError::Arrow(e) => arrow_state(e),
        TableError::Internal(_) => INTERNAL,
    }
}

fn push_state(e: &crate::push::PushError) -> &'static str {
    use crate::push::PushError;
    match e {
        PushError::PayloadTooLong { .. } | PushError::EmptyChannel => "22023",
        PushError::NotSubscribable(_) => FEATURE_NOT_SUPPORTED,
        PushError::Overflow { .. } => "53200",
        PushError::Ended(_) => "55000",
        PushError::UnknownCursor(_) => "34000",
        PushError::DuplicateCursor(_) => "42P03",
        PushError::Internal(_) => INTERNAL,
    }
}

fn sink_state(e: &crate::sink::SinkError) -> &'static str {
    use crate::sink::SinkError;
    match e {
        SinkError::InvalidOption(_) => "22023",
        SinkError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        SinkError::UndefinedColumn { .. } => UNDEFINED_COLUMN,
        SinkError::Duplicate(_) => "42710",
        SinkError::Undefined(_) => "42704",
        SinkError::Dependent { .. } | SinkError::Owned { .. } => "2BP01",
        SinkError::Kafka(_) | SinkError::Topic(_) => "58030",
        SinkError::Internal(_) => INTERNAL,
    }
}

fn kafka_state(e: &KafkaError) -> &'static str {
    match e {
        KafkaError::NoBrokers => "55000",
        KafkaError::UnknownBroker(_) | KafkaError::UnknownTopic(_) | KafkaError::UnknownConsumer { .. } => "42704",
        KafkaError::AlreadyConsuming { .. } => "42710",
        KafkaError::InvalidOption(_) => "22023",
        KafkaError::Client(_) => "58000",
        KafkaError::Produce { .. } => "58030",
    }
}

fn datafusion_state(e: &DataFusionError) -> &'static str {
    match root_datafusion_error(e) {
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42P18",
        },
        DataFusionError::ArrowError(e, _) => arrow_state(e),
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::External(inner) => external_state(inner.as_ref()),
        DataFusionError::Plan(m) => plan_message_state(m),
        DataFusionError::Execution(m) => execution_message_state(m),
        _ => INTERNAL,
    }
}

fn external_state(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> &'static str {
    if let Some(e) = inner.downcast_ref::<PlanError>() {
        return plan_state(e);
    }
    if let Some(e) = inner.downcast_ref::<IngestError>() {
        return ingest_state(e);
    }
    if let Some(e) = inner.downcast_ref::<WindowError>() {
        return window_state(e);
    }
    if let Some(e) = inner.downcast_ref::<crate::table::TableError>() {
        return table_state(e);
    }
    if let Some(e) = inner.downcast_ref::<crate::push::PushError>() {
        return push_state(e);
    }
    if let Some(e) = inner.downcast_ref::<crate::query::to_timestamp::ReadError>() {
        use crate::query::to_timestamp::ReadError;
        return match e {
            ReadError::Invalid(_) => "22007",
            ReadError::OutOfRange(_) => "22008",
            ReadError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        };
    }
    if inner.downcast_ref::<crate::query::checked_arith::OutOfRange>().is_some() {
        return "22003";
    }
    if let Some(e) = inner.downcast_ref::<crate::catalog::pg_array::ArrayTextError>() {
        use crate::catalog::pg_array::ArrayTextError;
        return match e {
            ArrayTextError::Malformed { .. } => "22P02",
            ArrayTextError::Multidimensional(_) => FEATURE_NOT_SUPPORTED,
        };
    }
    if let Some(e) = inner.downcast_ref::<ArrowError>() {
        return arrow_state(e);
    }
    if let Some(e) = inner.downcast_ref::<DataFusionError>() {
        return datafusion_state(e);
    }
    INTERNAL
}

fn arrow_state(e: &ArrowError) -> &'static str {
    match e {
        ArrowError::CastError(m) | ArrowError::ParseError(m)
            if m.contains("overflow") || m.contains("Can't cast value") || m.contains("too large") =>
        {
            "22003"
        }
        ArrowError::CastError(m) | ArrowError::ParseError(m)
            if ["date", "Date", "timestamp", "Timestamp", "time zone"].iter().any(|w| m.contains(w)) =>
        {
            "22007"
        }
        ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT,
        ArrowError::DivideByZero => "22012",
        ArrowError::ArithmeticOverflow(_) => "22003",
        ArrowError::ExternalError(inner) => external_state(inner.as_ref()),
        _ => INTERNAL,
    }
}

/// DataFusion reports some user errors only as plan messages.
fn plan_message_state(m: &str) -> &'static str {
    let lower = m.to_lowercase();
    if lower.contains("table") && lower.contains("not found") {
        UNDEFINED_TABLE
    } else if lower.contains("invalid function")
        || lower.contains("function") && lower.contains("not found")
        || lower.contains("no function matches")
    {
        "42883"
    } else if lower.contains("no field named") || lower.contains("column") && lower.contains("not found") {
        UNDEFINED_COLUMN
    } else if lower.contains("cannot") && lower.contains("cast") || lower.contains("cannot infer common") {
        "42804"
    } else if lower.contains("not supported") || lower.contains("unsupported") {
        FEATURE_NOT_SUPPORTED
    } else if lower.contains("placeholder") || lower.contains("parameter") {
        PROTOCOL_VIOLATION
    } else {
        "42000"
    }
}

fn execution_message_state(m: &str) -> &'static str {
    let lower = m.to_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        "22012"
    } else if lower.contains("overflow") {
        "22003"
    } else if lower.contains("cast") || lower.contains("parse") {
        INVALID_TEXT
    } else {
        "22000"
    }
}

/// The ErrorResponse fields for an error.
pub fn error_info(err: &EddyError) -> ErrorInfo {
    let message = message(err);
    let (state, message) = match super::pg_wording::translate(&message) {
        Some((state, message)) => (state, message),
        None => (sqlstate(err), message),
    };
    ErrorInfo::new("ERROR".to_owned(), state.to_owned(), message)
}

/// The message a client sees: errors raised inside DataFusion lose
/// DataFusion's wrapping, and DataFusion's wording is replaced by
/// PostgreSQL's where clients look for it.
fn message(err: &EddyError) -> String {
    if let EddyError::Query(e) | EddyError::Plan(PlanError::DataFusion(e)) = err {
        match root_datafusion_error(e) {
            DataFusionError::External(inner) => return inner.to_string(),
            DataFusionError::Plan(m) => {
                if let Some(name) = missing_table(m) {
                    return format!("relation \"{name}\" does not exist");
                }
            }
            _ => {}
        }
    }
    err.to_string()
}

/// The table name in DataFusion's "table 'eddy.public.x' not found".
fn missing_table(message: &str) -> Option<String> {
    let rest = message.strip_prefix("table '")?;
    let name = rest.strip_suffix("' not found")?;
    let short = name.strip_prefix("eddy.public.").unwrap_or(name);
    Some(short.to_string())
}

/// An error as pgwire sends it.
pub fn to_pgwire(err: EddyError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_room() {
        assert_eq!(sqlstate(&SqlError::Syntax("x".into()).into()), SYNTAX_ERROR);
        assert_eq!(sqlstate(&CatalogError::UndefinedRelation("t".into()).into()), UNDEFINED_TABLE);
        assert_eq!(sqlstate(&IngestError::InvalidText("x".into()).into()), INVALID_TEXT);
        let external = DataFusionError::External(Box::new(PlanError::StreamRead("s".into())));
        assert_eq!(
            sqlstate(&EddyError::Query(DataFusionError::Context("c".into(), Box::new(external)))),
            FEATURE_NOT_SUPPORTED
        );
        let cast =
            DataFusionError::ArrowError(Box::new(ArrowError::CastError("Cannot cast string 'abc'".into())), None);
        assert_eq!(sqlstate(&EddyError::Query(cast)), INVALID_TEXT);
    }
}
