//! SQL text to [`Statement`]s: sqlparser plus the statements of our own.
//!
//! Eddy speaks both PipelineDB dialects (`CREATE STREAM` / `CREATE
//! CONTINUOUS VIEW` from 0.9, `CREATE FOREIGN TABLE ... SERVER pipelinedb` /
//! `CREATE VIEW` from 1.0). The [`parser`] recognizes them; everything else
//! is left to sqlparser's PostgreSQL dialect and run by DataFusion.
//! `statement/` holds one file per statement kind, each with the same shape:
//! a parsed struct and an `execute` that applies it and returns a [`statement::Reply`].

pub mod complexity;
pub mod naming;
pub mod output_of;
pub mod param_hints;
pub mod parser;
pub mod pg_syntax;
pub mod proctime;
pub mod statement;

pub use parser::parse_sql;
pub use statement::Statement;

/// Errors in the statement text itself.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid SQL that Eddy does not do (yet); the message says what to use.
    #[error("{0}")]
    Unsupported(String),
    /// A value that does not fit its place (for example a bad option value).
    #[error("{0}")]
    InvalidParameter(String),
    /// `SHOW` of a setting that does not exist.
    #[error("unrecognized configuration parameter \"{0}\"")]
    UnknownSetting(String),
    /// `EXECUTE` or `DEALLOCATE` of a name no `PREPARE` gave.
    #[error("prepared statement \"{0}\" does not exist")]
    UnknownPrepared(String),
    /// `PREPARE` of a name already taken in this session.
    #[error("prepared statement \"{0}\" already exists; DEALLOCATE it first")]
    DuplicatePrepared(String),
    /// `RELEASE` or `ROLLBACK TO` of a savepoint not set.
    #[error("savepoint \"{0}\" does not exist")]
    UnknownSavepoint(String),
    /// `SAVEPOINT`, `RELEASE` or `ROLLBACK TO` outside `BEGIN ... COMMIT`.
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(&'static str),
    /// A statement too deep or too long to plan safely.
    #[error("statement too complex: {0}")]
    TooComplex(String),
}

/// Normalizes an identifier as PostgreSQL does: unquoted names fold to lower case.
pub fn normalize_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// Normalizes a possibly schema-qualified name. `public.x` and `x` are the
/// same relation; other schemas are not supported.
pub fn normalize_object_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> =
        name.0.iter().map(|p| p.as_ident().map(normalize_ident).unwrap_or_else(|| p.to_string())).collect();
    match parts.as_slice() {
        [n] => Ok(n.clone()),
        [schema, n] if schema == "public" => Ok(n.clone()),
        _ => Err(SqlError::Unsupported(format!(
            "schema-qualified name \"{name}\" is not supported; streams and views live in schema public"
        ))),
    }
}
