//! psql's `\d` on a foreign table (a stream, which `pg_class` shows as one)
//! lists each column's FDW options with
//! `ARRAY(SELECT ... FROM pg_options_to_table(attfdwoptions))`, which
//! DataFusion cannot plan. Eddy's columns have no FDW options (the query
//! only reads them when `attfdwoptions` is not NULL, and it always is; the
//! server's options are printed only when there are some), so that array
//! is a NULL `text[]`.
//!
//! In a catalog query ([`super::parse_catalog_query`]) every
//! `ARRAY(subquery)` is a NULL `text[]` ([`rewrite_catalog`]): psql's `\d+`
//! (a table's options), `\du` (a role's memberships) and other clients use
//! them as correlated subqueries, which the catalog reads as NULL as it
//! reads correlated scalar subqueries. One over `pg_auth_members` (a role's
//! memberships) is an empty `text[]`: Eddy's roles are members of none.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, FunctionArguments};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Replaces each `ARRAY(subquery over pg_options_to_table)` in `statement`
/// with `CAST(NULL AS TEXT[])`.
pub fn rewrite(statement: &mut ast::Statement) {
    null_arrays(statement, |query| query.to_string().contains("pg_options_to_table"));
}

/// Replaces every `ARRAY(subquery)` in `statement`, a catalog query, with
/// `CAST(NULL AS TEXT[])`.
pub fn rewrite_catalog(statement: &mut ast::Statement) {
    null_arrays(statement, |_| true);
}

fn null_arrays(statement: &mut ast::Statement, which: impl Fn(&ast::Query) -> bool) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &f.args
            && which(query)
        {
            let value = match query.to_string().contains("pg_auth_members") {
                true => "CAST('{}' AS TEXT[])",
                false => "CAST(NULL AS TEXT[])",
            };
            if let Ok(value) = Parser::new(&PostgreSqlDialect {}).try_with_sql(value).and_then(|mut p| p.parse_expr()) {
                *e = value;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdw_options_arrays_are_null_and_other_arrays_stay() {
        let sql = "SELECT CASE WHEN attfdwoptions IS NULL THEN '' ELSE '(' || pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_ident(option_name) FROM pg_catalog.pg_options_to_table(attfdwoptions)), ', ') || ')' END, ARRAY(SELECT 1) FROM pg_attribute";
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut stmt);
        let out = stmt.to_string();
        assert!(
            !out.contains("pg_options_to_table") && out.contains("array_to_string(CAST(NULL AS TEXT[]), ', ')"),
            "{out}"
        );
        assert!(out.contains("ARRAY(SELECT 1)"), "{out}");
    }
}
