//! PipelineDB's `output_of('v')` in a view's FROM, and PostgreSQL's
//! composite field access `(new).total`, rewritten before planning.
//!
//! `output_of('v')` becomes the relation the planner binds to `v`'s
//! output stream (`crate::stream::operator::output_of`); `(x).field`,
//! which DataFusion does not plan, becomes `get_field(x, 'field')`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, Query, TableFactor, Value, VisitMut, VisitorMut,
};

use super::SqlError;
use crate::stream::operator::output_of::relation_name;

/// Rewrites `query` in place.
pub fn rewrite(query: &mut Query) -> Result<(), SqlError> {
    let mut rewriter = Rewriter;
    match query.visit(&mut rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let is_output_of = name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("output_of"));
        if !is_output_of {
            return ControlFlow::Continue(());
        }
        let Some(view) = args.as_ref().and_then(|a| match a.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }) else {
            return ControlFlow::Break(SqlError::Syntax(
                "output_of takes the name of a continuous view, as a string: FROM output_of('my_view')".into(),
            ));
        };
        *name = ObjectName::from(vec![Ident::with_quote('"', relation_name(&view.to_lowercase()))]);
        *args = None;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
        let Expr::CompoundFieldAccess { root, access_chain } = expr else {
            return ControlFlow::Continue(());
        };
        if !access_chain.iter().all(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_)))) {
            return ControlFlow::Continue(());
        }
        let mut out = match root.as_ref() {
            Expr::Nested(inner) => inner.as_ref().clone(),
            other => other.clone(),
        };
        for access in access_chain.iter() {
            if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                let field = if field.quote_style.is_some() { field.value.clone() } else { field.value.to_lowercase() };
                let sql = format!("get_field({out}, '{}')", field.replace('\'', "''"));
                out = match super::parser::parse_expr(&sql) {
                    Ok(e) => e,
                    Err(e) => return ControlFlow::Break(e),
                };
            }
        }
        *expr = out;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut query = crate::sql::parser::parse_query(sql).unwrap();
        rewrite(&mut query).unwrap();
        query.to_string()
    }

    #[test]
    fn rewrites_output_of_and_composite_fields() {
        assert_eq!(
            rewritten("SELECT (new).url, (old).n FROM output_of('Hits') AS o WHERE (new).n > 10"),
            "SELECT get_field(new, 'url'), get_field(old, 'n') FROM \"__eddy_output_of__hits\" AS o WHERE get_field(new, 'n') > 10"
        );
        assert_eq!(rewritten("SELECT a.b FROM t"), "SELECT a.b FROM t");
        let mut bad = crate::sql::parser::parse_query("SELECT 1 FROM output_of(1)").unwrap();
        assert!(rewrite(&mut bad).is_err());
    }
}
