//! `CASE WHEN condition THEN (SELECT value FROM ... WHERE filter) ELSE NULL
//! END` in catalog queries (SQLAlchemy's column inspection writes three):
//! DataFusion cannot plan a correlated scalar subquery inside `CASE`. It is
//! rewritten to `(SELECT max(value) FROM ... WHERE condition AND filter)`,
//! which gives the same answer when the subquery gives at most one row, as
//! PostgreSQL requires of a scalar subquery anyway.
//!
//! Likewise a subquery that is an operand of `AND` or `OR`, `(SELECT
//! c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid)` (psql's
//! `\dT`), becomes `EXISTS (SELECT 1 FROM ... WHERE filter AND (value))`:
//! the same truth in a condition when the subquery gives at most one row.
//!
//! Only catalog queries get this (see [`super::parse_catalog_query`]).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, BinaryOperator, Expr, GroupByExpr, SelectItem, SetExpr, Value};

use super::call;

/// Rewrites each such `CASE` in `statement`.
pub fn rewrite(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Some(rewritten) = subquery_of(e) {
            *e = rewritten;
        }
        if let Expr::BinaryOp { left, op: BinaryOperator::And | BinaryOperator::Or, right } = e {
            for side in [left.as_mut(), right.as_mut()] {
                if let Some(exists) = exists_of(side) {
                    *side = exists;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `(SELECT value FROM ... WHERE filter)` as a condition: `EXISTS (SELECT
/// 1 FROM ... WHERE filter AND (value))`.
fn exists_of(e: &Expr) -> Option<Expr> {
    let query = match e {
        Expr::Subquery(q) => q,
        Expr::Nested(inner) => match inner.as_ref() {
            Expr::Subquery(q) => q,
            _ => return None,
        },
        _ => return None,
    };
    let mut query = query.clone();
    let select = plain_select(&mut query)?;
    let [SelectItem::UnnamedExpr(value)] = select.projection.as_slice() else { return None };
    let value = Expr::Nested(Box::new(value.clone()));
    select.projection = vec![SelectItem::UnnamedExpr(Expr::value(Value::Number("1".into(), false)))];
    let filter = select.selection.take().map(|f| Expr::Nested(Box::new(f)));
    select.selection = Some(both(filter, value));
    Some(Expr::Exists { subquery: query, negated: false })
}

/// The one SELECT of `query`, if it has no ORDER BY, LIMIT, GROUP BY,
/// HAVING or DISTINCT: one whose rows its WHERE alone decides.
fn plain_select(query: &mut ast::Query) -> Option<&mut ast::Select> {
    if query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let plain = matches!(&select.group_by, GroupByExpr::Expressions(g, _) if g.is_empty());
    if !plain || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    Some(select)
}

/// `first AND second`, or `second` alone.
fn both(first: Option<Expr>, second: Expr) -> Expr {
    match first {
        Some(first) => Expr::BinaryOp { left: Box::new(first), op: BinaryOperator::And, right: Box::new(second) },
        None => second,
    }
}

fn subquery_of(e: &Expr) -> Option<Expr> {
    let Expr::Case { operand: None, conditions, else_result, .. } = e else { return None };
    let [when] = conditions.as_slice() else { return None };
    if else_result.as_deref().is_some_and(|r| !is_null(r)) {
        return None;
    }
    let Expr::Subquery(query) = &when.result else { return None };
    let mut query = query.clone();
    let select = plain_select(&mut query)?;
    let [item] = select.projection.as_mut_slice() else { return None };
    let (value, alias) = match item {
        SelectItem::UnnamedExpr(v) => (v.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return None,
    };
    let max = call("max", vec![value]);
    *item = match alias {
        Some(alias) => SelectItem::ExprWithAlias { expr: max, alias },
        None => SelectItem::UnnamedExpr(max),
    };
    let condition = Expr::Nested(Box::new(when.condition.clone()));
    select.selection = Some(match select.selection.take() {
        Some(filter) => Expr::BinaryOp {
            left: Box::new(condition),
            op: BinaryOperator::And,
            right: Box::new(Expr::Nested(Box::new(filter))),
        },
        None => condition,
    });
    Some(Expr::Subquery(query))
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if v.value == Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn a_subquery_under_case_becomes_an_aggregate_with_the_condition() {
        let out = rewritten(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
             WHERE d.adrelid = a.attrelid) ELSE NULL END AS dflt FROM pg_attribute a",
        );
        assert_eq!(
            out,
            "SELECT (SELECT max(pg_get_expr(d.adbin, d.adrelid)) FROM pg_attrdef d \
             WHERE (a.atthasdef) AND (d.adrelid = a.attrelid)) AS dflt FROM pg_attribute a"
        );
        assert_eq!(
            rewritten(
                "SELECT 1 FROM pg_type t WHERE (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid))"
            ),
            "SELECT 1 FROM pg_type t WHERE (t.typrelid = 0 OR EXISTS (SELECT 1 FROM pg_class c WHERE (c.oid = t.typrelid) AND (c.relkind = 'c')))"
        );
        // Other CASEs are left alone.
        let other = "SELECT CASE WHEN x THEN 1 ELSE 2 END FROM t";
        assert_eq!(rewritten(other), other);
        let with_else = "SELECT CASE WHEN x THEN (SELECT y FROM u) ELSE 0 END FROM t";
        assert_eq!(rewritten(with_else), with_else);
    }
}
