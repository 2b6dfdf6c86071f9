//! Column defaults in catalog queries. psql's `\d` and Doctrine's
//! `listTableColumns` read a column's default with a correlated subquery,
//! `(SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE
//! d.adrelid = a.attrelid AND d.adnum = a.attnum)`, which the catalog would
//! read as NULL (DataFusion cannot plan it). [`rewrite`] turns each such
//! subquery into `eddy_column_default(a.attrelid, a.attnum)` ([`rewrite_sql`]), which looks
//! the default up in what the last read of `pg_attribute` or `pg_class`
//! found ([`super::primary_keys::IndexDefinitions`]). Doctrine finds a
//! serial column by its `nextval(...)` default.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, Expr, SelectItem, SetExpr, TableFactor};

use super::primary_keys::IndexDefinitions;
use crate::checkpoint::manifest::{ColumnRecord, Identity};

/// A column's default as `pg_get_expr` shows it: a serial's
/// `nextval('<table>_<column>_seq'::regclass)`, or the declared expression.
pub fn shown(table: &str, column: &ColumnRecord) -> Option<String> {
    match column.identity {
        Some(Identity::Serial) => Some(format!("nextval('{table}_{}_seq'::regclass)", column.name)),
        Some(_) => None,
        None => column.default.clone(),
    }
}

/// `sql` with each `pg_attrdef` subquery replaced (see the module doc), or
/// as it is if it has none. It works on the text, before the catalog
/// crate's parser, whose rules read the subquery as NULL.
pub fn rewrite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    if !sql.to_ascii_lowercase().contains("pg_attrdef") {
        return std::borrow::Cow::Borrowed(sql);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return std::borrow::Cow::Borrowed(sql);
    };
    let mut changed = false;
    for statement in &mut statements {
        changed |= rewrite(statement);
    }
    if !changed {
        return std::borrow::Cow::Borrowed(sql);
    }
    std::borrow::Cow::Owned(statements.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n"))
}

/// Replaces each `pg_attrdef` subquery in `statement`; whether there was one.
fn rewrite(statement: &mut ast::Statement) -> bool {
    let mut changed = false;
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Expr::Subquery(query) = e
            && let Some((relid, attnum)) = attrdef_lookup(query)
        {
            *e = crate::pg_catalog::call("eddy_column_default", vec![relid, attnum]);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// The outer relation and column number a `pg_attrdef` subquery of
/// `pg_get_expr` looks up.
fn attrdef_lookup(query: &ast::Query) -> Option<(Expr, Expr)> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(Expr::Function(f)) | SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }] =
        select.projection.as_slice()
    else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return None;
    };
    let is_attrdef =
        name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("pg_attrdef"));
    if !is_attrdef || !from.joins.is_empty() || !f.name.to_string().to_ascii_lowercase().ends_with("pg_get_expr") {
        return None;
    }
    let qualifier = alias.as_ref().map_or_else(|| "pg_attrdef".to_string(), |a| a.name.value.to_ascii_lowercase());
    let mut conjuncts = Vec::new();
    split_and(select.selection.as_ref()?, &mut conjuncts);
    let find = |column: &str| {
        conjuncts.iter().find_map(|c| match c {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
                match (is_own(left, &qualifier, column), is_own(right, &qualifier, column)) {
                    (true, false) => Some(right.as_ref().clone()),
                    (false, true) => Some(left.as_ref().clone()),
                    _ => None,
                }
            }
            _ => None,
        })
    };
    Some((find("adrelid")?, find("adnum")?))
}

fn split_and<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

/// Whether `expr` is `column` of `pg_attrdef` (qualified by `qualifier`, or bare).
fn is_own(expr: &Expr, qualifier: &str, column: &str) -> bool {
    match expr {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(column),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => q.value.eq_ignore_ascii_case(qualifier) && c.value.eq_ignore_ascii_case(column),
            _ => false,
        },
        _ => false,
    }
}

/// `eddy_column_default(relid, attnum)`.
#[derive(Debug)]
struct ColumnDefault {
    signature: Signature,
    definitions: IndexDefinitions,
}

impl PartialEq for ColumnDefault {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ColumnDefault {}

impl std::hash::Hash for ColumnDefault {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for ColumnDefault {
    fn name(&self) -> &str {
        "eddy_column_default"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [relids, attnums] = args.args.as_slice() else {
            return datafusion::common::exec_err!("eddy_column_default takes a relation OID and a column number");
        };
        let relids = cast(&relids.to_array(args.number_rows)?, &DataType::Int32)?;
        let attnums = cast(&attnums.to_array(args.number_rows)?, &DataType::Int32)?;
        let out: StringArray = relids
            .as_primitive::<Int32Type>()
            .iter()
            .zip(attnums.as_primitive::<Int32Type>().iter())
            .map(|(r, a)| self.definitions.column_default(r?, a?))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The `eddy_column_default` function, reading `definitions`.
pub fn udf(definitions: IndexDefinitions) -> ScalarUDF {
    ScalarUDF::new_from_impl(ColumnDefault { signature: Signature::any(2, Volatility::Stable), definitions })
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
    fn psql_and_doctrine_default_subqueries_become_lookups() {
        let psql = "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef) FROM pg_catalog.pg_attribute a";
        assert!(rewritten(psql).contains("eddy_column_default(a.attrelid, a.attnum)"), "{}", rewritten(psql));
        let doctrine = "SELECT (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE c.oid = pg_attrdef.adrelid AND pg_attrdef.adnum=a.attnum) AS default FROM pg_attribute a, pg_class c";
        assert!(
            rewritten(doctrine).contains("eddy_column_default(c.oid, a.attnum) AS default"),
            "{}",
            rewritten(doctrine)
        );
        let other = "SELECT (SELECT max(x) FROM t WHERE t.a = b.a) FROM b";
        assert_eq!(rewritten(other), other);
    }
}
