//! SQL-level prepared statements, for drivers without protocol-level binding
//! (psycopg2): `PREPARE name [(types)] AS statement`, `EXECUTE name
//! [(arguments)]` and `DEALLOCATE [PREPARE] name | ALL`.
//!
//! The statement is parsed once and kept in the session. `EXECUTE` binds its
//! arguments to `$1`..`$n`, each cast to its declared type, and runs the
//! statement as if it had been sent; its reply is the statement's.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, Value};

use super::Reply;
use crate::error::Result;
use crate::server::Session;
use crate::sql::SqlError;

/// One of the three statements.
#[derive(Debug, Clone)]
pub enum PrepareSql {
    /// `PREPARE name (types) AS statement`.
    Prepare { name: String, types: Vec<ast::DataType>, statement: Box<ast::Statement> },
    /// `EXECUTE name (arguments)`.
    Execute { name: String, args: Vec<Expr> },
    /// `DEALLOCATE name`; `None` for `DEALLOCATE ALL`.
    Deallocate(Option<String>),
}

/// A statement kept by `PREPARE`.
#[derive(Debug, Clone)]
pub struct Kept {
    types: Vec<ast::DataType>,
    statement: ast::Statement,
}

impl PrepareSql {
    /// The statement, if `stmt` is one of the three.
    pub fn from_ast(stmt: &ast::Statement) -> Option<Self> {
        match stmt {
            ast::Statement::Prepare { name, data_types, statement } => Some(Self::Prepare {
                name: crate::sql::normalize_ident(name),
                types: data_types.clone(),
                statement: statement.clone(),
            }),
            ast::Statement::Execute { name: Some(name), parameters, .. } => {
                Some(Self::Execute { name: name.to_string().to_lowercase(), args: parameters.clone() })
            }
            ast::Statement::Deallocate { name, .. } => {
                let name = crate::sql::normalize_ident(name);
                Some(Self::Deallocate((name != "all").then_some(name)))
            }
            _ => None,
        }
    }

    /// Keeps, runs or forgets the statement.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        match self {
            Self::Prepare { name, types, statement } => {
                // Checked now, as PostgreSQL does: a statement Eddy cannot run is refused at PREPARE,
                // and only queries and DML can be prepared.
                use super::Statement as S;
                if let S::CreateStream(_) | S::CreateView(_) | S::CreateTable(_) | S::Drop(_) =
                    crate::sql::parser::classify((*statement).clone())?
                {
                    return Err(SqlError::Unsupported(
                        "DDL cannot be prepared; PREPARE takes SELECT, VALUES, INSERT, UPDATE and DELETE".into(),
                    )
                    .into());
                }
                session.keep_prepared(name, Kept { types, statement: *statement })?;
                Ok(Reply::Tag("PREPARE".into()))
            }
            Self::Execute { name, args } => {
                let statement = executed(session, &name, args)?;
                Box::pin(statement.execute(session, None)).await
            }
            Self::Deallocate(name) => {
                session.forget_prepared(name.as_deref()).map_err(SqlError::UnknownPrepared)?;
                Ok(Reply::Tag("DEALLOCATE".into()))
            }
        }
    }
}

/// What `EXECUTE name (args)` runs: the kept statement with its arguments
/// bound (the extended protocol describes and runs this).
pub fn executed(session: &Session, name: &str, args: Vec<Expr>) -> Result<super::Statement, SqlError> {
    let kept = session.prepared(name).ok_or_else(|| SqlError::UnknownPrepared(name.to_string()))?;
    crate::sql::parser::classify(bind(kept, name, args)?)
}

/// The kept statement with `$n` replaced by argument `n`, cast to its
/// declared type.
fn bind(kept: Kept, name: &str, args: Vec<Expr>) -> Result<ast::Statement, SqlError> {
    let mut statement = kept.statement;
    let mut wanted = kept.types.len();
    let _ = ast::visit_expressions(&statement, |e| {
        if let Some(n) = placeholder(e) {
            wanted = wanted.max(n);
        }
        ControlFlow::<()>::Continue(())
    });
    if args.len() != wanted {
        return Err(SqlError::Syntax(format!(
            "wrong number of parameters for prepared statement \"{name}\": expected {wanted}, got {}",
            args.len()
        )));
    }
    let _ = ast::visit_expressions_mut(&mut statement, |e| {
        if let Some(n) = placeholder(e) {
            let arg = args[n - 1].clone();
            *e = match kept.types.get(n - 1) {
                Some(data_type) => Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(Expr::Nested(Box::new(arg))),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                },
                None => Expr::Nested(Box::new(arg)),
            };
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(statement)
}

/// `n` for the placeholder `$n`.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().filter(|n| *n >= 1),
            _ => None,
        },
        _ => None,
    }
}
