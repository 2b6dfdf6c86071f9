//! `pg_get_viewdef(oid [, pretty])` in catalog queries (SQLAlchemy's
//! `get_view_definition`, psql's `\d+`): a view's OID is only known to
//! `pg_class`, so the call becomes a lookup of the view's definition in
//! `pg_views` through `pg_class`. `pg_get_viewdef('name')` (a string) stays
//! the function, which reads Eddy's catalog directly.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use datafusion::sql::sqlparser::ast::{self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Value};

/// `$1` is replaced by the call's argument.
const BY_OID: &str = "SELECT max(v.definition) FROM pg_catalog.pg_views v JOIN pg_catalog.pg_class c \
                      ON c.relname = v.viewname WHERE c.relkind = 'v' AND c.oid = $1";

fn template() -> Option<Box<Query>> {
    static QUERY: OnceLock<Option<Box<Query>>> = OnceLock::new();
    super::parse_template(&QUERY, BY_OID)
}

/// Rewrites each `pg_get_viewdef` whose argument is not a string in `statement`.
pub fn rewrite(statement: &mut ast::Statement) {
    let Some(template) = template() else { return };
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("pg_get_viewdef")
            && let FunctionArguments::List(list) = &f.args
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))) = list.args.first()
            && !matches!(arg, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
        {
            let arg = arg.clone();
            let mut query = template.clone();
            let _ = ast::visit_expressions_mut(&mut query, |p| {
                if matches!(p, Expr::Value(v) if v.value == Value::Placeholder("$1".into())) {
                    *p = arg.clone();
                }
                ControlFlow::<()>::Continue(())
            });
            *e = Expr::Subquery(query);
        }
        ControlFlow::<()>::Continue(())
    });
}
