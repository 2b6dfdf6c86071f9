//! Types for `$n` parameters that DataFusion leaves untyped, inferred from
//! the statement as PostgreSQL infers them: `LIMIT $1` and `OFFSET $2` are
//! bigint, and `$1::timestamptz` (or `CAST($1 AS ...)`) has the cast's type.
//!
//! Without a type a parameter is text, which drivers that bind by the type
//! the server reports (asyncpg, JDBC) cannot send an integer or a timestamp
//! as: pagination with `LIMIT $1 OFFSET $2` failed in every such driver.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{self, Expr, LimitClause, Value, Visit, Visitor};

/// The types the statement implies for its parameters, by number (`$1` is 1).
pub fn hinted_types(statement: &ast::Statement) -> HashMap<usize, DataType> {
    let mut hints = Hints::default();
    let _ = statement.visit(&mut hints);
    hints.types
}

/// The PostgreSQL type OIDs of parameters cast to a type that has no Arrow
/// type of its own (`$1::oid[]`, which asyncpg's type introspection sends):
/// reported to the client as that type.
pub fn declared_oids(statement: &ast::Statement) -> HashMap<usize, u32> {
    let mut hints = Hints::default();
    let _ = statement.visit(&mut hints);
    hints.oids
}

/// Casts each `$n` that is a function's argument to the type the client
/// declared for it (`types`, by number), where it declared one: DataFusion
/// cannot infer a parameter's type from a function's signature, and would
/// take it for text (SQLAlchemy's `pg_get_constraintdef(oid, $1)` with a
/// boolean, through psycopg 3).
pub fn cast_function_arguments(statement: &mut ast::Statement, types: &HashMap<usize, ast::DataType>) {
    if types.is_empty() {
        return;
    }
    let _ = ast::visit_expressions_mut(statement, |expr| {
        let Expr::Function(f) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let ast::FunctionArguments::List(list) = &mut f.args else {
            return ControlFlow::Continue(());
        };
        for arg in &mut list.args {
            let (ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))
            | ast::FunctionArg::Named { arg: ast::FunctionArgExpr::Expr(e), .. }) = arg
            else {
                continue;
            };
            if let Some(data_type) = placeholder(e).and_then(|n| types.get(&n)) {
                let value = std::mem::replace(e, Expr::value(Value::Null));
                *e = Expr::Cast {
                    kind: ast::CastKind::DoubleColon,
                    expr: Box::new(value),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                };
            }
        }
        ControlFlow::Continue(())
    });
}

#[derive(Default)]
struct Hints {
    types: HashMap<usize, DataType>,
    oids: HashMap<usize, u32>,
}

/// The number of a `$n` placeholder.
fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => placeholder(inner),
        _ => None,
    }
}

impl Hints {
    fn hint(&mut self, expr: &Expr, data_type: DataType) {
        if let Some(n) = placeholder(expr) {
            self.types.entry(n).or_insert(data_type);
        }
    }
}

impl Visitor for Hints {
    type Break = ();

    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
        if let Some(LimitClause::LimitOffset { limit, offset, .. }) = &query.limit_clause {
            if let Some(limit) = limit {
                self.hint(limit, DataType::Int64);
            }
            if let Some(offset) = offset {
                self.hint(&offset.value, DataType::Int64);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Cast { expr, data_type, .. } = expr
            && let Some(data_type) = cast_type(data_type)
        {
            self.hint(expr, data_type);
        }
        if let Expr::Cast { expr, data_type, .. } = expr
            && let Some(n) = placeholder(expr)
            && data_type_name(data_type) == "oid"
        {
            let oid = if matches!(data_type, ast::DataType::Array(_)) { OID_ARRAY } else { OID };
            self.oids.entry(n).or_insert(oid);
        }
        ControlFlow::Continue(())
    }
}

/// PostgreSQL's `oid` type, and `oid[]`.
const OID: u32 = 26;
const OID_ARRAY: u32 = 1028;

/// The name of a type, or of an array type's elements, in lower case.
fn data_type_name(data_type: &ast::DataType) -> String {
    match data_type {
        ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(item, _))
        | ast::DataType::Array(ast::ArrayElemTypeDef::AngleBracket(item))
        | ast::DataType::Array(ast::ArrayElemTypeDef::Parenthesis(item)) => data_type_name(item),
        other => other.to_string().to_lowercase(),
    }
}

/// The Arrow type of a cast's target: arrays are lists, and `oid` is a
/// 32-bit integer, as in the catalog.
fn cast_type(data_type: &ast::DataType) -> Option<DataType> {
    if let ast::DataType::Array(
        ast::ArrayElemTypeDef::SquareBracket(item, _)
        | ast::ArrayElemTypeDef::AngleBracket(item)
        | ast::ArrayElemTypeDef::Parenthesis(item),
    ) = data_type
    {
        return Some(DataType::new_list(cast_type(item)?, true));
    }
    if data_type_name(data_type) == "oid" {
        return Some(DataType::Int32);
    }
    crate::catalog::types::field_for_sql_type("p", &data_type.to_string()).ok().map(|f| f.data_type().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(sql: &str) -> Vec<(usize, DataType)> {
        let statement = crate::sql::parse_sql(sql).unwrap().pop().unwrap();
        let crate::sql::statement::Statement::Query(ast) = statement else { panic!("not a query: {sql}") };
        let mut types: Vec<_> = hinted_types(&ast).into_iter().collect();
        types.sort_by_key(|(n, _)| *n);
        types
    }

    #[test]
    fn limit_offset_and_casts_type_their_parameters() {
        assert_eq!(hints("SELECT a FROM t LIMIT $1 OFFSET $2"), [(1, DataType::Int64), (2, DataType::Int64)]);
        assert_eq!(
            hints("SELECT a FROM t WHERE at > $1::timestamptz AND n = CAST($2 AS int)"),
            [(1, crate::catalog::types::timestamptz()), (2, DataType::Int32)]
        );
        assert_eq!(hints("SELECT a FROM (SELECT a FROM t LIMIT $1) s"), [(1, DataType::Int64)]);
        assert!(hints("SELECT a FROM t WHERE a = $1").is_empty());
    }
}
