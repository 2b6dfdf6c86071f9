//! The type of a parameter compared with `ANY`: `WHERE id = ANY($1)` takes
//! an array of `id`'s type, as PostgreSQL infers it.
//!
//! DataFusion plans `x = ANY($1)` as `array_has($1, x)` and leaves `$1`
//! untyped, so a driver that binds by the type the server reports sent the
//! array as text, and the comparison failed.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};

/// The array types of the untyped parameters `plan` compares with `ANY`,
/// by number (`$1` is 1).
pub fn any_parameter_types(plan: &LogicalPlan) -> HashMap<usize, DataType> {
    let mut types = HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        let Some(schema) = input_schema(node) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                if let Some((n, item)) = any_parameter(e, &schema) {
                    types.entry(n).or_insert_with(|| DataType::new_list(item, true));
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    types
}

/// The schema `node`'s expressions are over: its inputs' columns.
fn input_schema(node: &LogicalPlan) -> Option<DFSchema> {
    let mut inputs = node.inputs().into_iter();
    let mut schema = inputs.next()?.schema().as_ref().clone();
    for input in inputs {
        schema = schema.join(input.schema()).ok()?;
    }
    Some(schema)
}

/// `array_has($n, needle)` with `$n` untyped: `n` and the needle's type.
fn any_parameter(expr: &Expr, schema: &DFSchema) -> Option<(usize, DataType)> {
    let Expr::ScalarFunction(f) = expr else {
        return None;
    };
    if f.name() != "array_has" {
        return None;
    }
    let [Expr::Placeholder(Placeholder { id, field: None }), needle] = f.args.as_slice() else {
        return None;
    };
    let n = id.strip_prefix('$')?.parse().ok()?;
    Some((n, needle.get_type(schema).ok()?))
}
