//! `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`, and
//! savepoints: `SAVEPOINT`, `RELEASE [SAVEPOINT]`, `ROLLBACK TO [SAVEPOINT]`.
//!
//! Outside a block every statement applies when it runs (autocommit).
//! Inside one, writes to streams and tables are held by the session's
//! [`crate::ingest::transaction::Transaction`]: its statements read the
//! tables with their own changes, nobody else sees them, `COMMIT` applies
//! them all at once and `ROLLBACK` drops them. Savepoints are kept by name,
//! as PostgreSQL keeps them, so that the drivers' nested transactions
//! (Laravel, SQLAlchemy) work; `ROLLBACK TO` undoes the writes made since
//! its savepoint, and leaves a failed transaction block usable again (see
//! `crate::pgwire::serve`).

use datafusion::sql::sqlparser::parser::Parser;

use super::Reply;
use super::set::rest_of_statement;
use crate::server::Session;
use crate::sql::SqlError;

/// A transaction-control statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

impl Transaction {
    /// Recognizes transaction control; other statements give `None` and
    /// consume nothing.
    pub fn parse(parser: &mut Parser) -> Result<Option<Self>, SqlError> {
        let first = match &parser.peek_token_ref().token {
            datafusion::sql::sqlparser::tokenizer::Token::Word(w) => w.value.to_lowercase(),
            _ => return Ok(None),
        };
        if !matches!(
            first.as_str(),
            "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release"
        ) {
            return Ok(None);
        }
        let parts: Vec<String> = rest_of_statement(parser).iter().map(|p| p.to_lowercase()).collect();
        let words: Vec<&str> = parts.iter().map(String::as_str).collect();
        let kind = match words.as_slice() {
            ["start", "transaction", ..] | ["begin", ..] => Transaction::Begin,
            ["start", ..] => {
                return Err(SqlError::Syntax(format!("expected START TRANSACTION, found: {}", parts.join(" "))));
            }
            ["commit" | "end", ..] => Transaction::Commit,
            ["savepoint", name] => Transaction::Savepoint(name.to_string()),
            ["release", "savepoint", name] | ["release", name] => Transaction::Release(name.to_string()),
            ["rollback" | "abort", rest @ ..] => match rest {
                ["work" | "transaction", "to", "savepoint", name]
                | ["work" | "transaction", "to", name]
                | ["to", "savepoint", name]
                | ["to", name] => Transaction::RollbackTo(name.to_string()),
                _ if rest.contains(&"to") => {
                    return Err(SqlError::Syntax(format!(
                        "expected ROLLBACK TO [SAVEPOINT] name, found: {}",
                        parts.join(" ")
                    )));
                }
                _ => Transaction::Rollback,
            },
            _ => {
                return Err(SqlError::Syntax(format!(
                    "expected {} name, found: {}",
                    first.to_uppercase(),
                    parts.join(" ")
                )));
            }
        };
        Ok(Some(kind))
    }

    /// What it is called in the message for one used outside a transaction
    /// block; `None` for those allowed there.
    pub fn needs_block(&self) -> Option<&'static str> {
        match self {
            Transaction::Savepoint(_) => Some("SAVEPOINT"),
            Transaction::Release(_) => Some("RELEASE SAVEPOINT"),
            Transaction::RollbackTo(_) => Some("ROLLBACK TO SAVEPOINT"),
            Transaction::Begin | Transaction::Commit | Transaction::Rollback => None,
        }
    }

    /// Runs it, and gives the reply with the tag PostgreSQL sends.
    /// `COMMIT` applies the block's writes, and `ROLLBACK` drops them; a
    /// savepoint marks a position in them, which `ROLLBACK TO` goes back to.
    pub async fn execute(self, session: &Session) -> crate::error::Result<Reply> {
        Ok(match self {
            Transaction::Begin => {
                session.begin_transaction();
                Reply::TransactionStart("BEGIN".into())
            }
            Transaction::Commit => {
                if let Some(transaction) = session.end_transaction() {
                    transaction.commit(session.commit_mode()).await?;
                }
                Reply::TransactionEnd("COMMIT".into())
            }
            Transaction::Rollback => {
                session.end_transaction();
                Reply::TransactionEnd("ROLLBACK".into())
            }
            Transaction::Savepoint(name) => {
                session.set_savepoint(name);
                Reply::Tag("SAVEPOINT".into())
            }
            Transaction::Release(name) => {
                session.release_savepoint(&name, false).map_err(SqlError::UnknownSavepoint)?;
                Reply::Tag("RELEASE".into())
            }
            Transaction::RollbackTo(name) => {
                let mark = session.release_savepoint(&name, true).map_err(SqlError::UnknownSavepoint)?;
                if let Some(transaction) = session.transaction() {
                    transaction.rollback_to(mark)?;
                }
                Reply::Tag("ROLLBACK".into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> Result<Option<Transaction>, SqlError> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql).unwrap();
        Transaction::parse(&mut parser)
    }

    #[test]
    fn parses_postgres_spellings() {
        use Transaction::*;
        for (sql, want) in [
            ("BEGIN", Begin),
            ("START TRANSACTION ISOLATION LEVEL READ COMMITTED", Begin),
            ("END", Commit),
            ("ABORT", Rollback),
            ("ROLLBACK WORK", Rollback),
            ("SAVEPOINT sa_savepoint_1", Savepoint("sa_savepoint_1".into())),
            ("RELEASE SAVEPOINT trans2", Release("trans2".into())),
            ("RELEASE trans2", Release("trans2".into())),
            ("ROLLBACK TO SAVEPOINT Trans2", RollbackTo("trans2".into())),
            ("ROLLBACK TRANSACTION TO s", RollbackTo("s".into())),
            ("ABORT TO s", RollbackTo("s".into())),
        ] {
            assert_eq!(parse(sql).unwrap(), Some(want), "{sql}");
        }
        assert!(parse("SELECT 1").unwrap().is_none());
        assert!(matches!(parse("SAVEPOINT"), Err(SqlError::Syntax(_))));
        assert!(matches!(parse("ROLLBACK TO"), Err(SqlError::Syntax(_))));
    }
}
