//! `LIKE ... ESCAPE 'c'` with an escape character other than the backslash,
//! which DataFusion refuses: the pattern is rewritten to escape with `\`
//! instead. SQLAlchemy's inspector writes `nspname NOT LIKE 'pg/_%' ESCAPE
//! '/'` in its first catalog query.
//!
//! The rewrite replaces `c_`, `c%` and `cc` in the pattern at run time, so a
//! pattern that holds a literal backslash as well matches differently than
//! in PostgreSQL; catalog queries do not.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, Value};

use super::call;

/// Rewrites every `LIKE`/`ILIKE` with a non-backslash escape in `statement`.
pub fn rewrite(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Expr::Like { pattern, escape_char, .. } | Expr::ILike { pattern, escape_char, .. } = e
            && let Some(escape) = escape_char.as_ref().and_then(|v| escape_of(&v.value))
            && escape != '\\'
        {
            let mut p = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
            for (from, to) in [(format!("{escape}{escape}"), "\u{1}".to_string()), (format!("{escape}_"), "\\_".into())]
                .into_iter()
                .chain([(format!("{escape}%"), "\\%".into()), ("\u{1}".into(), escape.to_string())])
            {
                p = call("replace", vec![p, text(&from), text(&to)]);
            }
            **pattern = p;
            *escape_char = None;
        }
        ControlFlow::<()>::Continue(())
    });
}

fn escape_of(v: &Value) -> Option<char> {
    match v {
        Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
        _ => None,
    }
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn slash_escapes_become_backslash_escapes() {
        let sql = "SELECT 1 FROM t WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/'";
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut stmt);
        let out = stmt.to_string();
        assert!(!out.contains("ESCAPE"), "{out}");
        assert!(out.contains("replace(replace(replace(replace('pg/_' || '%', '//', '\u{1}'), '/_', '\\_')"), "{out}");
        let backslash = "SELECT 1 FROM t WHERE n LIKE 'a\\_b' ESCAPE '\\'";
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, backslash).unwrap().remove(0);
        rewrite(&mut stmt);
        assert!(stmt.to_string().contains("ESCAPE"), "{stmt}");
    }
}
