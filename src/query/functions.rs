//! PostgreSQL functions that clients call and DataFusion lacks.
//!
//! `version()` is what psql, PDO and dashboards ask first; the rest of the
//! catalog functions come with the Postgres-ecosystem work.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};

use super::context::{DATABASE, SCHEMA};

/// The server version clients see; drivers parse the leading number.
pub const SERVER_VERSION: &str = "15.0";

/// The text of `SELECT version()`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Eddy {}) on x86_64-pc-linux-gnu, a streaming SQL database",
        env!("CARGO_PKG_VERSION")
    )
}

fn constant_text(name: &str, value: String) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.clone()))))),
    )
}

/// `clock_timestamp()` and friends: the wall clock, read when evaluated.
/// (Eddy's statements are their own transactions, so the three agree.)
fn wall_clock(name: &str) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Volatility::Volatile,
        Arc::new(|_args: &[ColumnarValue]| {
            let now = chrono::Utc::now().timestamp_micros();
            Ok(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(Some(now), Some("+00:00".into()))))
        }),
    )
}

/// Registers `version()`, `current_database()`, `current_schema()`,
/// `pg_backend_pid()`, `clock_timestamp()`, `pg_typeof()`, `age()`,
/// `justify_*()`, and PostgreSQL's
/// `to_char` in place of DataFusion's.
pub fn register(state: &mut SessionState) -> Result<()> {
    // DataFusion's to_char is also registered as `date_format`: drop that
    // name too, or rebuilding the state could bring it back as `to_char`.
    state.deregister_udf("date_format")?;
    state.register_udf(super::array_text::array_in_udf())?;
    state.register_udf(Arc::new(super::to_char::udf()))?;
    state.register_udf(Arc::new(super::to_timestamp::to_timestamp_udf()))?;
    state.register_udf(Arc::new(super::to_timestamp::to_date_udf()))?;
    state.register_udf(Arc::new(super::date_part::udf()))?;
    state.register_udf(Arc::new(super::pg_sleep::udf()))?;
    state.register_udf(Arc::new(super::jsonb::build_object_udf()))?;
    state.register_udf(Arc::new(super::jsonb::build_array_udf()))?;
    state.register_udf(Arc::new(super::jsonb::contains_udf()))?;
    state.register_udf(Arc::new(super::pg_typeof::udf()))?;
    for udf in super::pg_interval::udfs() {
        state.register_udf(Arc::new(udf))?;
    }
    state.register_udf(Arc::new(constant_text("version", version_string())))?;
    state.register_udf(Arc::new(constant_text("current_database", DATABASE.to_string())))?;
    state.register_udf(Arc::new(constant_text("current_schema", SCHEMA.to_string())))?;
    let pid = std::process::id() as i32;
    let backend_pid = create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(pid))))),
    );
    state.register_udf(Arc::new(backend_pid))?;
    for name in ["clock_timestamp", "statement_timestamp", "transaction_timestamp"] {
        state.register_udf(Arc::new(wall_clock(name)))?;
    }
    for udaf in super::pg_aggregates::udafs() {
        state.register_udaf(Arc::new(udaf))?;
    }
    register_aggregate_aliases(state)
}

/// PostgreSQL's names for aggregates DataFusion has under other names.
fn register_aggregate_aliases(state: &mut SessionState) -> Result<()> {
    for (existing, alias) in [("var_samp", "variance"), ("bool_and", "every")] {
        if let Some(udaf) = state.aggregate_functions().get(existing).cloned() {
            let aliased = udaf.as_ref().clone().with_aliases([alias]);
            state.register_udaf(Arc::new(aliased))?;
        }
    }
    Ok(())
}
