//! `col_description`, `obj_description` and `shobj_description` in catalog
//! queries read as NULL text without evaluating their arguments: Eddy has no
//! comments, and Metabase's argument (`CAST(CAST(format('%I.%I', schema,
//! table) AS REGCLASS) AS OID)`) casts a name computed per row, which the
//! `regclass` rewrite only handles for literals.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, CastKind, DataType, Expr, Value};

/// Replaces the three functions' calls in `statement` with `NULL::text`.
pub fn rewrite(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
            if matches!(name, "col_description" | "obj_description" | "shobj_description") {
                *e = Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: DataType::Text,
                    array: false,
                    format: None,
                };
            }
        }
        ControlFlow::<()>::Continue(())
    });
}
