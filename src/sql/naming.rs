//! PostgreSQL's names for unaliased result columns.
//!
//! PostgreSQL names `count(*)` "count", `sum(v)` "sum", `x::int` "x",
//! `'1'::int` "int4", `CASE ...` "case" and any other expression
//! "?column?". DataFusion names columns after the whole expression. Clients
//! and PipelineDB users read columns by name (`SELECT count FROM
//! message_count`), so Eddy aliases the top-level select list the way
//! PostgreSQL would, before DataFusion plans it. A name that would collide
//! with another column keeps DataFusion's name, since DataFusion requires
//! unique names.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr};

/// Marks a repeated column name made unique for DataFusion (`count`,
/// `count\u{1}2`); the wire layer shows the name before it
/// ([`shown_name`]), so that a client sees two columns named `count`, as
/// PostgreSQL sends them.
pub const REPEAT_MARK: char = '\u{1}';

/// The name a client is shown for the column `name`.
pub fn shown_name(name: &str) -> &str {
    name.split(REPEAT_MARK).next().unwrap_or(name)
}

/// Aliases the unaliased expressions of `query`'s select list. A client
/// query (`repeats`) may name two columns alike, as PostgreSQL allows:
/// the second and later get [`REPEAT_MARK`]ed names. A view's columns
/// must be unique, so there a repeated name keeps DataFusion's.
pub fn apply_pg_column_names(query: &mut Query, repeats: bool) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let names: Vec<Option<String>> = select.projection.iter().map(item_name).collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for name in names.iter().flatten() {
        *counts.entry(name.clone()).or_default() += 1;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (item, name) in select.projection.iter_mut().zip(names) {
        let Some(name) = name else { continue };
        if !repeats && counts.get(&name).copied().unwrap_or(0) > 1 {
            continue;
        }
        let nth = seen.entry(name.clone()).or_default();
        *nth += 1;
        let name = match *nth {
            1 => name,
            n => format!("{name}{REPEAT_MARK}{n}"),
        };
        match item {
            SelectItem::UnnamedExpr(expr)
                if name.contains(REPEAT_MARK) || !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) =>
            {
                let alias = Ident::with_quote('"', name);
                *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
            }
            SelectItem::ExprWithAlias { alias, .. } if name.contains(REPEAT_MARK) => {
                *alias = Ident::with_quote('"', name);
            }
            _ => {}
        }
    }
}

/// The name a select item gets: its alias, or what PostgreSQL would call it.
fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => Some(figure_name(expr).unwrap_or_else(|| "?column?".into())),
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
        _ => None,
    }
}

/// PostgreSQL's FigureColname: `None` means no better name than `?column?`.
fn figure_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(i.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_lowercase()),
        Expr::Function(f) => f.name.0.last().map(|p| p.to_string().trim_matches('"').to_lowercase()),
        Expr::Cast { expr, data_type, .. } => figure_name(expr)
            .filter(|n| n != "pg_array_in") // an array literal (`crate::sql::pg_syntax`)
            .or_else(|| Some(pg_type_name(&data_type.to_string()))),
        // `timestamp '2026-12-09'`, `date '...'`: named after the type.
        Expr::TypedString(typed) => Some(pg_type_name(&typed.data_type.to_string())),
        Expr::Interval(_) => Some("interval".into()),
        Expr::Nested(inner) => figure_name(inner),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Array(_) => Some("array".into()),
        _ => None,
    }
}

/// PostgreSQL's internal name of a type, as it names cast columns.
fn pg_type_name(sql: &str) -> String {
    let lower = sql.to_lowercase();
    let base = lower.split('(').next().unwrap_or(&lower).trim().trim_end_matches("[]");
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "double" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "character varying" | "varchar" => "varchar",
        "decimal" | "numeric" => "numeric",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Statement, parse_sql};
    use datafusion::sql::sqlparser::ast::Statement as Ast;

    fn names(sql: &str) -> Vec<String> {
        names_with(sql, false)
    }

    fn names_with(sql: &str, repeats: bool) -> Vec<String> {
        let Some(Statement::Query(stmt)) = parse_sql(sql).unwrap().pop() else { panic!("not a query") };
        let Ast::Query(mut q) = *stmt else { panic!("not a query") };
        apply_pg_column_names(&mut q, repeats);
        let SetExpr::Select(s) = q.body.as_ref() else { panic!() };
        s.projection
            .iter()
            .map(|i| match i {
                SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    #[test]
    fn names_like_postgres() {
        assert_eq!(
            names(
                "SELECT k, count(*), sum(v), (p->>'n')::int, x::text, 1 + 2, CASE WHEN true THEN 1 END, \
                 extract(year FROM ts), timestamp '2026-12-09', date '2026-12-09', interval '1 day' FROM s"
            ),
            vec!["k", "count", "sum", "int4", "x", "?column?", "case", "extract", "timestamp", "date", "interval"]
        );
        assert_eq!(names("SELECT |/ v, @ v AS a FROM s"), vec!["?column?", "a"]);
    }

    #[test]
    fn collisions_keep_datafusion_names() {
        assert_eq!(names("SELECT count(*), count(x) AS c, count(y) FROM s"), vec!["count(*)", "c", "count(y)"]);
        assert_eq!(names("SELECT 1, 2"), vec!["1", "2"]);
    }

    #[test]
    fn a_client_query_may_repeat_a_name() {
        assert_eq!(
            names_with("SELECT count(*), count(x) AS c, count(y), k, k, 1 AS c FROM s", true),
            vec!["count", "c", "count\u{1}2", "k", "k\u{1}2", "c\u{1}2"]
        );
        assert_eq!(shown_name("count\u{1}2"), "count");
        assert_eq!(shown_name("count"), "count");
    }
}
