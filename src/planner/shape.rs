//! The shape a view's plan may have: what may sit above its aggregate,
//! and what below it, on the path down to the relation whose changes feed
//! it and in what that relation is joined with.

use datafusion::common::DataFusionError;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Aggregate, LogicalPlan};

use super::{PlanError, unwrap_external};

/// Walks down from the root through the nodes that may sit above the
/// aggregate, and returns the aggregate.
pub(super) fn find_aggregate(plan: &LogicalPlan) -> Result<Aggregate, PlanError> {
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Aggregate(a) => return Ok(a.clone()),
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::SubqueryAlias(_) => {
                let inputs = node.inputs();
                node = inputs.first().ok_or_else(|| PlanError::Unsupported("unexpected plan shape".into()))?;
            }
            LogicalPlan::TableScan(_) => {
                return Err(PlanError::Unsupported(
                    "a continuous view must aggregate: use GROUP BY, an aggregate function such as count(*), or SELECT DISTINCT; raw events are not stored".into(),
                ));
            }
            other => {
                return Err(PlanError::Unsupported(format!(
                    "continuous views do not support {} above their aggregate yet",
                    describe(other)
                )));
            }
        }
    }
}

/// A transform (a derived stream) passes each event of its stream through
/// filters, projections and lookup joins: it keeps nothing, so it cannot
/// aggregate, sort or limit. Returns whether it joins.
pub(super) fn check_transform(plan: &LogicalPlan, driving: &str) -> Result<bool, PlanError> {
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::Aggregate(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Window(_) = node
        {
            found = Some(describe(node));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(what) = found {
        let what = if what == "a nested aggregate" { "an aggregate" } else { what };
        return Err(PlanError::Unsupported(format!(
            "a derived stream (a transform) passes each event through and keeps nothing, so it cannot have {what}; create a continuous view over the derived stream for that"
        )));
    }
    check_lower(plan, driving)
}

/// The part below the aggregate runs on each change batch of the driving
/// relation. On the path from the aggregate down to that relation's scan it
/// may filter, project and join; what it joins with (a lookup: a table or
/// a view, read live) may be any query. Returns whether it joins.
pub(super) fn check_lower(plan: &LogicalPlan, driving: &str) -> Result<bool, PlanError> {
    let mut node = plan;
    let mut joins = false;
    loop {
        match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Unnest(_) => match node.inputs().first() {
                Some(input) => node = input,
                None => return Ok(joins),
            },
            LogicalPlan::TableScan(_) => return Ok(joins),
            LogicalPlan::Join(join) => {
                joins = true;
                node = driving_side(join, driving)?;
            }
            other => {
                return Err(PlanError::Unsupported(format!(
                    "continuous views support one level of aggregation over one stream; {} below the aggregate is not supported",
                    describe(other)
                )));
            }
        }
    }
}

/// Below the aggregate of a join of tables, each change of one table is
/// joined with the others as they are; that is exact for inner joins (the
/// delta rule), which are all this allows for now.
pub(super) fn check_table_join(plan: &LogicalPlan) -> Result<(), PlanError> {
    plan.apply(|node| match node {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Unnest(_) => Ok(TreeNodeRecursion::Continue),
        LogicalPlan::Join(join) if join.join_type == datafusion::logical_expr::JoinType::Inner => {
            Ok(TreeNodeRecursion::Continue)
        }
        LogicalPlan::Join(join) => Err(DataFusionError::External(Box::new(PlanError::Unsupported(format!(
            "a {} join between tables is not maintained yet: a view over several tables may join them with inner joins only; for an enrichment that keeps every row, join a stream with the tables instead",
            join.join_type
        ))))),
        other => Err(DataFusionError::External(Box::new(PlanError::Unsupported(format!(
            "continuous views over a join of tables support one level of aggregation; {} below the aggregate is not supported",
            describe(other)
        ))))),
    })
    .map_err(unwrap_external)?;
    Ok(())
}

/// The side of `join` that reads the driving relation; the join must keep
/// that side's rows (INNER, or an outer or semi join that preserves it).
fn driving_side<'a>(join: &'a datafusion::logical_expr::Join, driving: &str) -> Result<&'a LogicalPlan, PlanError> {
    use datafusion::logical_expr::JoinType::*;
    let (left, right) = (reads(&join.left, driving), reads(&join.right, driving));
    let stream_left = match (left, right) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => {
            return Err(PlanError::Unsupported(format!(
                "this view joins \"{driving}\" with itself, which is not supported in a continuous view yet (for a stream, such a join must also be bounded in time)"
            )));
        }
        (false, false) => {
            return Err(PlanError::DataFusion(DataFusionError::Internal(format!(
                "neither side of a join reads \"{driving}\""
            ))));
        }
    };
    let keeps_stream = match join.join_type {
        Inner => true,
        Left | LeftSemi | LeftAnti | LeftMark => stream_left,
        Right | RightSemi | RightAnti | RightMark => !stream_left,
        Full => false,
    };
    if !keeps_stream {
        return Err(PlanError::Unsupported(format!(
            "a {} join that keeps the rows of a table or view with no matching event is not supported in a continuous view: each event of stream \"{driving}\" is looked up in the table as it arrives; write FROM {driving} LEFT JOIN the table, or an inner JOIN",
            join.join_type
        )));
    }
    Ok(if stream_left { &join.left } else { &join.right })
}

/// Whether `plan` scans relation `name`.
fn reads(plan: &LogicalPlan, name: &str) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.table() == name
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn describe(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Join(_) => "a join",
        LogicalPlan::Aggregate(_) => "a nested aggregate",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Window(_) => "a window function",
        LogicalPlan::Values(_) => "VALUES",
        LogicalPlan::EmptyRelation(_) => "a query without FROM",
        LogicalPlan::Distinct(_) => "DISTINCT",
        _ => "this construct",
    }
}
