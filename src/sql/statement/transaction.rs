//! `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`.
//!
//! Eddy applies every statement when it runs (autocommit). Transaction
//! control is accepted so that drivers that wrap work in transactions (PDO,
//! JDBC, psycopg) work; the transaction status they see is tracked.
//! `ROLLBACK` does not undo rows already written to a stream: this is
//! documented in docs/sql-reference.md.

use datafusion::sql::sqlparser::parser::Parser;

use super::Reply;
use super::set::rest_of_statement;
use crate::sql::SqlError;

/// A transaction-control statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
}

impl Transaction {
    /// Recognizes transaction control; other statements give `None` and
    /// consume nothing.
    pub fn parse(parser: &mut Parser) -> Result<Option<Self>, SqlError> {
        let first = match &parser.peek_token_ref().token {
            datafusion::sql::sqlparser::tokenizer::Token::Word(w) => w.value.to_lowercase(),
            _ => return Ok(None),
        };
        let kind = match first.as_str() {
            "begin" => Transaction::Begin,
            "start" => Transaction::Begin,
            "commit" | "end" => Transaction::Commit,
            "rollback" | "abort" => Transaction::Rollback,
            _ => return Ok(None),
        };
        let parts = rest_of_statement(parser);
        if first == "start" && parts.get(1).map(|p| p.to_lowercase()) != Some("transaction".into()) {
            return Err(SqlError::Syntax(format!("expected START TRANSACTION, found: {}", parts.join(" "))));
        }
        if kind == Transaction::Rollback
            && parts.iter().any(|p| p.eq_ignore_ascii_case("savepoint") || p.eq_ignore_ascii_case("to"))
        {
            return Err(SqlError::Unsupported("savepoints are not supported".into()));
        }
        Ok(Some(kind))
    }

    /// The reply, with the tag PostgreSQL sends.
    pub fn execute(self) -> Reply {
        match self {
            Transaction::Begin => Reply::TransactionStart("BEGIN".into()),
            Transaction::Commit => Reply::TransactionEnd("COMMIT".into()),
            Transaction::Rollback => Reply::TransactionEnd("ROLLBACK".into()),
        }
    }
}
