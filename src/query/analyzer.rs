//! What Eddy's analyzer rules share (`checked_arith`, `datetime_text`):
//! rewriting every expression of a plan, subqueries included, bottom up,
//! while each rewritten expression keeps the name it had, so that the plan
//! nodes above it still find their columns.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// Applies `rewrite` to every expression node of `plan`; `rewrite` gets
/// the schema of the node's inputs to type the expression.
pub fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|plan| {
        let schema = merge_schema(&plan.inputs());
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
            Ok(if rewritten.transformed { rewritten.update_data(|e| saved.restore(e)) } else { rewritten })
        })
    })
    .map(|t| t.data)
}
