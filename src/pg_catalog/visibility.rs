//! `pg_table_is_visible(oid)`: true for relations on the search path
//! (`public` and `pg_catalog`), as in PostgreSQL, so that `\d` and
//! SQLAlchemy's `get_table_names()` list the user's streams and views, not
//! Eddy's own `pipelinedb.*` and `pipeline_kafka.*` relations (which stay
//! readable by their qualified names).
//!
//! Relation OIDs are handed out by datafusion-pg-catalog's `pg_class`, so the
//! call is rewritten into a lookup there:
//! `oid IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ... WHERE
//! n.nspname IN ('public', 'pg_catalog'))`.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SetExpr, VisitMut, VisitorMut,
};

const VISIBLE: &str = "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                       ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'pg_catalog')";

fn visible_oids() -> Option<Box<Query>> {
    static QUERY: OnceLock<Option<Box<Query>>> = OnceLock::new();
    super::parse_template(&QUERY, VISIBLE)
}

/// Rewrites `pg_table_is_visible(x)` in every `WHERE` of `statement` (where
/// clients filter with it; DataFusion runs `IN (subquery)` only in filters,
/// so elsewhere it stays the crate's function, which says true).
pub fn rewrite(statement: &mut ast::Statement) {
    let Some(visible) = visible_oids() else { return };
    let _ = statement.visit(&mut Filters { visible });
}

struct Filters {
    visible: Box<Query>,
}

impl VisitorMut for Filters {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Some(selection) = select.selection.as_mut()
        {
            let _ = ast::visit_expressions_mut(selection, |e| {
                if let Expr::Function(f) = e
                    && f.name.to_string().eq_ignore_ascii_case("pg_table_is_visible")
                    && let FunctionArguments::List(list) = &f.args
                    && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice()
                {
                    let subquery = self.visible.clone();
                    *e = Expr::InSubquery { expr: Box::new(arg.clone()), subquery, negated: false };
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}
