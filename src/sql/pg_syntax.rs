//! PostgreSQL spellings DataFusion does not plan, rewritten after parsing
//! into ones it does, for client queries and views alike:
//!
//! - `mod(a, b)` is `a % b` (the sign of the dividend, as in PostgreSQL);
//! - the prefix operators `|/` (square root), `||/` (cube root) and `@`
//!   (absolute value), and the factorial `n !`, are `sqrt`, `cbrt`, `abs`
//!   and `factorial`;
//! - a set-returning function in FROM with a bare alias names its one
//!   column after the alias: `SELECT x FROM generate_series(1, 3) AS x`;
//! - `extract(field FROM t)` is a call of Eddy's `date_part` (under the
//!   name `extract`), which has PostgreSQL's fields;
//! - `'{"a": 1}'::json` and `::jsonb` are casts to text, the form Eddy
//!   carries JSON in; `j #> '{a,b}'` and `j #>> '{a,b}'` are
//!   `json_get_json(j, 'a', 'b')` and `json_as_text(j, 'a', 'b')`;
//! - `interval '1 day 02:03:04'` is `interval '1 day 02 hours 03 minutes
//!   04 seconds'`, the form DataFusion parses;
//! - `'{a,"b c",NULL}'::text[]` reads the text with `pg_array_in`
//!   (`crate::query::array_text`), as PostgreSQL reads array text;
//! - `a @> b` and `a <@ b` are `jsonb_contains(a, b)` and
//!   `jsonb_contains(b, a)` (`crate::query::jsonb`), for jsonb and arrays;
//! - a regtype is an oid that shows as its type's name: `x::regtype::text`
//!   is `format_type(x, NULL)` (or `to_regtype(x)` for a name), and
//!   `to_regtype(name)` compared with an oid is `to_regtype_oid(name)`
//!   (psycopg 3's `TypeInfo.fetch`); `oids::regtype[]` is
//!   `regtype_names(oids)`, their names (pgcli's function completions);
//! - `pg_index.indkey` (an int2vector that Eddy's catalog holds as its
//!   text, `1 2`) and its other vectors are read as arrays by `unnest`, and
//!   `generate_subscripts(a, 1)` is `unnest(generate_series(1,
//!   cardinality(a)))` (SQLAlchemy's reflection of primary keys).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, TableAlias,
    TableFactor, UnaryOperator, VisitMut, VisitorMut,
};

/// Whether `expr` is a cast to `regtype`.
fn is_regtype_cast(expr: &Expr) -> bool {
    matches!(expr, Expr::Cast { data_type: DataType::Custom(name, _), .. } if name.to_string().eq_ignore_ascii_case("regtype"))
}

/// Whether an array's element type is `regtype` (`x::regtype[]`).
fn is_regtype_array(element: &ast::ArrayElemTypeDef) -> bool {
    match element {
        ast::ArrayElemTypeDef::SquareBracket(t, _) | ast::ArrayElemTypeDef::AngleBracket(t) => {
            matches!(t.as_ref(), DataType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("regtype"))
        }
        _ => false,
    }
}

/// Table functions that return one column, which an alias names.
const ONE_COLUMN_FUNCTIONS: &[&str] = &["generate_series", "range", "unnest"];

/// Rewrites the PostgreSQL spellings in `statement` (see the module doc).
pub fn rewrite<T: VisitMut>(statement: &mut T) {
    let _ = statement.visit(&mut Rewriter::default());
}

#[derive(Default)]
struct Rewriter {
    /// How many queries the visit is inside: 1 in the outermost.
    depth: usize,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replaced = match expr {
            Expr::UnaryOp { op, expr: operand } => {
                let function = match op {
                    UnaryOperator::PGSquareRoot => "sqrt",
                    UnaryOperator::PGCubeRoot => "cbrt",
                    UnaryOperator::PGAbs => "abs",
                    UnaryOperator::PGPostfixFactorial | UnaryOperator::PGPrefixFactorial => "factorial",
                    _ => return ControlFlow::Continue(()),
                };
                Some(crate::pg_catalog::call(
                    function,
                    vec![std::mem::replace(operand.as_mut(), Expr::value(ast::Value::Null))],
                ))
            }
            // Eddy carries json as text (a json column is text with its
            // PostgreSQL type alongside), so a cast to json or jsonb is a
            // cast to text, which the JSON operators and functions take.
            Expr::Cast { data_type, .. } if matches!(data_type, DataType::JSON | DataType::JSONB) => {
                *data_type = DataType::Text;
                None
            }
            // DataFusion reads `'{1,2}'::int[]` itself, splitting at every
            // comma (quotes and NULLs are not understood); as a call of
            // `pg_array_in` the text is read as PostgreSQL reads it.
            Expr::Cast { data_type: DataType::Array(_), expr: inner, .. } if matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_))) =>
            {
                let text = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
                **inner = crate::pg_catalog::call("pg_array_in", vec![text]);
                None
            }
            Expr::BinaryOp { left, op: op @ (BinaryOperator::HashArrow | BinaryOperator::HashLongArrow), right } => {
                let function = match op {
                    BinaryOperator::HashLongArrow => "json_as_text",
                    _ => "json_get_json",
                };
                json_path(right).map(|path| {
                    let json = std::mem::replace(left.as_mut(), Expr::value(ast::Value::Null));
                    crate::pg_catalog::call(function, std::iter::once(json).chain(path).collect())
                })
            }
            // DataFusion plans `extract` with its own `date_part`, which
            // lacks PostgreSQL's century, julian and other fields; as a
            // call it reaches Eddy's, and keeps PostgreSQL's column name.
            Expr::Extract { field, expr: value, .. } => {
                let field = field.to_string().trim_matches('\'').to_ascii_lowercase();
                let value = std::mem::replace(value.as_mut(), Expr::value(ast::Value::Null));
                Some(crate::pg_catalog::call(
                    "extract",
                    vec![Expr::value(ast::Value::SingleQuotedString(field)), value],
                ))
            }
            Expr::BinaryOp { left, op: op @ (BinaryOperator::AtArrow | BinaryOperator::ArrowAt), right } => {
                let mut args =
                    [left.as_mut(), right.as_mut()].map(|e| std::mem::replace(e, Expr::value(ast::Value::Null)));
                if *op == BinaryOperator::ArrowAt {
                    args.reverse();
                }
                Some(crate::pg_catalog::call("jsonb_contains", args.into()))
            }
            // `interval '1 day 02:03:04'`: PostgreSQL's clock part, in the
            // unit form DataFusion's interval parser takes.
            Expr::Interval(ast::Interval { value, leading_field: None, last_field: None, .. }) => {
                if let Expr::Value(v) = value.as_mut()
                    && let ast::Value::SingleQuotedString(text) = &mut v.value
                {
                    *text = crate::catalog::types::interval_text(text);
                }
                None
            }
            Expr::Cast { data_type: DataType::Text, expr: inner, .. } if is_regtype_cast(inner) => {
                let Expr::Cast { expr: value, .. } = inner.as_mut() else {
                    return ControlFlow::Continue(());
                };
                let value = std::mem::replace(value.as_mut(), Expr::value(ast::Value::Null));
                Some(match &value {
                    Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_)) => {
                        crate::pg_catalog::call("to_regtype", vec![value])
                    }
                    _ => crate::pg_catalog::call("format_type", vec![value, Expr::value(ast::Value::Null)]),
                })
            }
            Expr::Cast { data_type: DataType::Array(element), expr: inner, .. } if is_regtype_array(element) => {
                let value = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
                Some(crate::pg_catalog::call("regtype_names", vec![value]))
            }
            Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
                for side in [left.as_mut(), right.as_mut()] {
                    if let Expr::Function(f) = side
                        && is_named(&f.name, "to_regtype")
                    {
                        f.name = ObjectName::from(vec![ast::Ident::new("to_regtype_oid")]);
                    }
                }
                None
            }
            Expr::Function(f) if is_named(&f.name, "unnest") || is_named(&f.name, "generate_subscripts") => {
                subscripts(f)
            }
            Expr::Function(f) if is_named(&f.name, "mod") => match &mut f.args {
                FunctionArguments::List(list) if list.args.len() == 2 && list.duplicate_treatment.is_none() => {
                    let mut args = list.args.drain(..).filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    });
                    match (args.next(), args.next()) {
                        (Some(left), Some(right)) => Some(Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(left),
                            op: BinaryOperator::Modulo,
                            right: Box::new(right),
                        }))),
                        _ => None,
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(replaced) = replaced {
            *expr = replaced;
        }
        ControlFlow::Continue(())
    }

    /// An unaliased select item of the outermost query that is an operator
    /// rewritten here (`|/`, `@`, `n !`, `#>`, `@>`, ...) is named
    /// `?column?`, as PostgreSQL names it, before the operator becomes a
    /// function whose name the column would take. Only one per select list:
    /// DataFusion needs unique names where PostgreSQL allows repeats (in a
    /// subquery, or an INSERT's SELECT), so several keep their functions'.
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        if let ast::SetExpr::Select(select) = query.body.as_mut()
            && self.depth == 1
            && select.projection.iter().filter(|i| is_operator_item(i)).count() == 1
        {
            for item in &mut select.projection {
                if let ast::SelectItem::UnnamedExpr(expr) = item
                    && is_function_operator(expr)
                {
                    let expr = std::mem::replace(expr, Expr::value(ast::Value::Null));
                    *item = ast::SelectItem::ExprWithAlias { expr, alias: ast::Ident::with_quote('"', "?column?") };
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let (name, alias) = match factor {
            TableFactor::Table { name, alias: Some(alias), args: Some(_), .. } => (name, alias),
            TableFactor::Function { name, alias: Some(alias), .. } => (name, alias),
            _ => return ControlFlow::Continue(()),
        };
        if ONE_COLUMN_FUNCTIONS.iter().any(|f| is_named(name, f)) {
            name_the_column(alias);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        // `unnest(...) AS u` parses as its own factor kind.
        if let ast::SetExpr::Select(select) = query.body.as_mut() {
            for table in &mut select.from {
                for factor in
                    std::iter::once(&mut table.relation).chain(table.joins.iter_mut().map(|j| &mut j.relation))
                {
                    if let TableFactor::UNNEST { alias: Some(alias), array_exprs, .. } = factor
                        && array_exprs.len() == 1
                    {
                        name_the_column(alias);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn is_operator_item(item: &ast::SelectItem) -> bool {
    matches!(item, ast::SelectItem::UnnamedExpr(expr) if is_function_operator(expr))
}

/// Whether `expr` is an operator this room rewrites into a function.
fn is_function_operator(expr: &Expr) -> bool {
    match expr {
        Expr::UnaryOp { op, .. } => matches!(
            op,
            UnaryOperator::PGSquareRoot
                | UnaryOperator::PGCubeRoot
                | UnaryOperator::PGAbs
                | UnaryOperator::PGPostfixFactorial
                | UnaryOperator::PGPrefixFactorial
        ),
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::AtArrow
                | BinaryOperator::ArrowAt
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow
        ),
        _ => false,
    }
}

/// `AS x` becomes `AS x(x)`, as PostgreSQL reads a bare alias of a
/// function returning one column.
fn name_the_column(alias: &mut TableAlias) {
    if alias.columns.is_empty() {
        alias.columns = vec![ast::TableAliasColumnDef::from_name(alias.name.value.clone())];
    }
}

/// `unnest(x.indkey)` reads the int2vector's text as an array of int2;
/// `generate_subscripts(a, 1)` becomes `unnest(generate_series(1,
/// cardinality(a)))`, which DataFusion zips with an `unnest` beside it.
fn subscripts(f: &mut ast::Function) -> Option<Expr> {
    let FunctionArguments::List(list) = &mut f.args else { return None };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) = list.args.first_mut() else { return None };
    let column = match &*first {
        Expr::Identifier(i) => Some(i.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    };
    // pg_index's int2vector and oidvector columns.
    let element = match column.as_deref() {
        Some("indkey" | "indoption") => Some(DataType::SmallInt(None)),
        Some("indclass" | "indcollation") => Some(DataType::Int(None)),
        _ => None,
    };
    if let Some(element) = element {
        let text = std::mem::replace(first, Expr::value(ast::Value::Null));
        let space = Expr::value(ast::Value::SingleQuotedString(" ".into()));
        *first = Expr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(crate::pg_catalog::call("string_to_array", vec![text, space])),
            data_type: DataType::Array(ast::ArrayElemTypeDef::SquareBracket(Box::new(element), None)),
            array: false,
            format: None,
        };
    }
    if !is_named(&f.name, "generate_subscripts") {
        return None;
    }
    let array = std::mem::replace(first, Expr::value(ast::Value::Null));
    let length = crate::pg_catalog::call("cardinality", vec![array]);
    let one = Expr::value(ast::Value::Number("1".into(), false));
    let series = crate::pg_catalog::call("generate_series", vec![one, length]);
    Some(crate::pg_catalog::call("unnest", vec![series]))
}

fn is_named(name: &ObjectName, function: &str) -> bool {
    name.0.len() == 1 && name.0[0].as_ident().is_some_and(|i| i.value.eq_ignore_ascii_case(function))
}

/// The keys of a text-array path literal (`'{a,b,0}'`): text keys, and
/// numbers as array indexes.
fn json_path(path: &Expr) -> Option<Vec<Expr>> {
    let Expr::Value(v) = path else { return None };
    let ast::Value::SingleQuotedString(text) = &v.value else { return None };
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let keys = inner.split(',').map(|k| k.trim().trim_matches('"')).filter(|k| !k.is_empty());
    Some(
        keys.map(|k| match k.parse::<i64>() {
            Ok(_) => Expr::value(ast::Value::Number(k.to_string(), false)),
            Err(_) => Expr::value(ast::Value::SingleQuotedString(k.to_string())),
        })
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use crate::sql::statement::Statement;

    fn rewritten(sql: &str) -> String {
        match crate::sql::parse_sql(sql).expect("parses").pop() {
            Some(Statement::Query(q)) => q.to_string(),
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn postgres_spellings_become_datafusion_ones() {
        assert_eq!(rewritten("SELECT mod(7, -3), MOD(a, 2) FROM t"), "SELECT (7 % -3), (a % 2) FROM t");
        assert_eq!(
            rewritten("SELECT |/ 16, ||/ 27 AS c, 1 + @ -5"),
            "SELECT sqrt(16) AS \"?column?\", cbrt(27) AS c, 1 + abs(-5)"
        );
        assert_eq!(
            rewritten("SELECT |/ 16, 5 ! FROM (SELECT |/ a FROM t) AS s"),
            "SELECT sqrt(16), factorial(5) FROM (SELECT sqrt(a) FROM t) AS s",
            "two in one list, and any in a subquery, keep their functions' names"
        );
        assert_eq!(
            rewritten("SELECT x FROM generate_series(1, 3) AS x"),
            "SELECT x FROM generate_series(1, 3) AS x (x)"
        );
        assert_eq!(
            rewritten("SELECT g FROM generate_series(1, 3) AS g(g)"),
            "SELECT g FROM generate_series(1, 3) AS g (g)"
        );
        assert_eq!(rewritten("SELECT u FROM unnest(ARRAY[1, 2]) AS u"), "SELECT u FROM UNNEST(ARRAY[1, 2]) AS u (u)");
        assert_eq!(rewritten("SELECT * FROM t AS x"), "SELECT * FROM t AS x");
        assert_eq!(
            rewritten("SELECT unnest(pg_catalog.pg_index.indkey) FROM pg_index"),
            "SELECT unnest(CAST(string_to_array(pg_catalog.pg_index.indkey, ' ') AS SMALLINT[])) FROM pg_catalog.pg_index"
        );
        assert_eq!(
            rewritten("SELECT unnest(i.indkey), generate_subscripts(i.indkey, 1) FROM pg_index AS i"),
            "SELECT unnest(CAST(string_to_array(i.indkey, ' ') AS SMALLINT[])), \
             unnest(generate_series(1, cardinality(CAST(string_to_array(i.indkey, ' ') AS SMALLINT[])))) FROM pg_index AS i"
        );
        assert_eq!(
            rewritten("SELECT oid::regtype::text AS r, 'int4'::regtype::text FROM pg_type WHERE oid = to_regtype($1)"),
            "SELECT format_type(oid, NULL) AS r, to_regtype('int4') FROM pg_type WHERE oid = to_regtype_oid($1)"
        );
        assert_eq!(
            rewritten("SELECT interval '1 day 02:03:04.5', interval '3 mons', interval '2' HOUR"),
            "SELECT INTERVAL '1 day 02 hours 03 minutes 04.5 seconds', INTERVAL '3 mons', INTERVAL '2' HOUR"
        );
        assert_eq!(
            rewritten("SELECT extract(century FROM ts), EXTRACT(epoch FROM ts) FROM t"),
            "SELECT extract('century', ts), extract('epoch', ts) FROM t"
        );
        assert_eq!(
            rewritten("SELECT j::jsonb #>> '{a,0}' AS a, j::json #> '{a}' AS b FROM t"),
            "SELECT json_as_text(j::TEXT, 'a', 0) AS a, json_get_json(j::TEXT, 'a') AS b FROM t"
        );
        assert_eq!(
            rewritten("SELECT j @> '{\"a\": 1}' AS a, NOT '[1]' <@ j FROM t"),
            "SELECT jsonb_contains(j, '{\"a\": 1}') AS a, NOT jsonb_contains(j, '[1]') FROM t"
        );
    }
}
