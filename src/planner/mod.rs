//! A continuous view's query, split for incremental maintenance.
//!
//! DataFusion plans the view's query; the planner then cuts the plan at its
//! aggregate, PipelineDB's worker/combiner split in DataFusion's terms:
//!
//! - **below and at the cut** (scan, filter, project, *partial* aggregate):
//!   run on every micro-batch, giving one partial state per touched group;
//! - **the state**: partial states merged per group (`crate::state`);
//! - **above the cut** (final aggregate, projection, HAVING, ORDER BY,
//!   LIMIT, window functions over the result): an ordinary DataFusion view
//!   over the state, evaluated at read time.
//!
//! Because the upper part runs at read time over finalized groups, HAVING,
//! ORDER BY, LIMIT and window functions in a view are exact.

pub mod batch_source;
pub mod lookup;
mod resolve;
mod shape;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DataFusionError, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, aggregate_expressions};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Query, Statement as SqlStatement};
use parking_lot::Mutex;

use crate::catalog::Catalog;
use crate::query::context::planning_state;
use crate::query::state_table::StateTable;
use crate::state::{GroupedState, PartialLayout, SessionSpec};
use crate::window::rewrite::{SESSION_KEY, Windowing, rewrite_view};
use crate::window::{ViewOptions, WindowError};
use batch_source::BatchSlot;
pub use resolve::Lookup;
use resolve::{Sources, ViewPlanningSchema};
use shape::{check_lower, check_table_join, check_transform, find_aggregate};

/// Why a view's query cannot be maintained incrementally.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The query is not a valid continuous view (for example, no stream in it).
    #[error("{0}")]
    InvalidView(String),
    /// Valid, but not supported in a continuous view (yet).
    #[error("{0}")]
    Unsupported(String),
    /// A stream was read outside a continuous view.
    #[error(
        "cannot read stream \"{0}\" directly: streams do not store rows; create a continuous view over it, for example CREATE VIEW v AS SELECT count(*) FROM {0}"
    )]
    StreamRead(String),
    /// DataFusion could not plan the query.
    #[error("{}", crate::error::clean_datafusion_message(.0))]
    DataFusion(#[from] DataFusionError),
    /// The view's window is not valid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The query is not valid SQL for a view (`output_of` without a name).
    #[error("{0}")]
    Syntax(String),
}

/// How a view over an input that removes rows (a table) evaluates a change
/// batch up to its aggregate: the rows' group keys and each aggregate's
/// arguments, which are added to or removed from the groups
/// (`crate::state::RetractInput`).
pub struct RetractPlan {
    /// Scan, filter, project and join over the slot: the aggregate's
    /// input, per input of the view (several for a join of tables, each
    /// specialized to a change of that input).
    pub lowers: Vec<Arc<dyn ExecutionPlan>>,
    /// The group keys, over `lower`'s rows.
    pub group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Each aggregate's arguments (and ordering columns).
    pub arg_exprs: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// Each aggregate's `FILTER (WHERE ...)`.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

/// How a view turns evaluated groups into its output rows, so that views
/// over it can follow it: the view's read plan, row by row, over a slot
/// that holds the evaluated groups. Only views whose part above the
/// aggregate works row by row (projection, HAVING) have one.
pub struct EmitPlan {
    /// Where the evaluated groups go.
    pub slot: Arc<BatchSlot>,
    /// Projection and filter over the slot: the view's rows.
    pub plan: Arc<dyn ExecutionPlan>,
}

/// Everything needed to maintain and read one view.
pub struct IncrementalPlan {
    /// For a transform (a derived stream): its filter, projection and
    /// lookups over the slot, whose rows are the view's output, passed on
    /// and not kept.
    pub transform: Option<Arc<dyn ExecutionPlan>>,
    /// Whether the view reads its input's output stream (`output_of('v')`):
    /// `v`'s changes paired into `(old, new)` rows, as added rows.
    pub output_of: bool,
    /// How the view's output rows are made from its groups, when views
    /// may read it; `None` when its query sorts, limits or windows.
    pub emit: Option<EmitPlan>,
    /// The stream, table or view whose changes feed the view (the first
    /// table of a join of tables).
    pub stream: String,
    /// Every relation whose changes feed the view: one, or the tables of a
    /// join of tables.
    pub inputs: Vec<String>,
    /// The tables of a join of tables: a writer of one holds the write
    /// locks of all (`crate::table::write`).
    pub joined_tables: Vec<Arc<crate::table::TableEntry>>,
    /// The tables and views the stream's events are joined with, as they
    /// are when each event is processed.
    pub lookups: Vec<Lookup>,
    /// Whether the plan below the aggregate joins: its join operators keep
    /// what they built, so each run starts from a fresh copy of the plan.
    pub joins: bool,
    /// With an input that removes rows (a table): how changes reach the
    /// aggregate. `None` for an append-only input (a stream).
    pub retract: Option<RetractPlan>,
    /// Where the view's operator puts each change batch, per input.
    pub slots: Vec<Arc<BatchSlot>>,
    /// Scan, filter, project and partial aggregate over the slot.
    pub partial: Arc<dyn ExecutionPlan>,
    /// Column layout of `partial`'s output.
    pub layout: PartialLayout,
    /// The view's groups.
    pub state: Arc<Mutex<GroupedState>>,
    /// What evaluating the groups gives: keys, then finished aggregates.
    pub state_schema: SchemaRef,
    /// The read side: the view's query with its aggregate replaced by a scan
    /// of the state.
    pub upper: LogicalPlan,
    /// The context `partial` runs in.
    pub task_ctx: Arc<TaskContext>,
    /// The view's windows, as the rewrite found them.
    pub windowing: Windowing,
    /// With a sliding window, the key column holding the step (the last).
    pub step_key: Option<usize>,
    /// Output columns that are group keys, by name, with their key index
    /// (what `ttl_column` may name).
    pub key_outputs: Vec<(String, usize)>,
    /// Whether the view windows on its stream's event time, so that late
    /// events are kept from it.
    pub event_windowed: bool,
}

impl std::fmt::Debug for IncrementalPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncrementalPlan").field("stream", &self.stream).finish()
    }
}

/// Plans `query` as continuous view `name`, with its window `options`.
pub async fn plan_view(
    catalog: Arc<Catalog>,
    name: &str,
    query: &Query,
    options: &ViewOptions,
) -> Result<IncrementalPlan, PlanError> {
    let event_time =
        |stream: &str| catalog.stream(stream).ok().and_then(|s| s.def.event_time.clone()).map(|e| e.column);
    let (mut query, windowing) = rewrite_view(query, options, &event_time)?;
    crate::sql::output_of::rewrite(&mut query).map_err(|e| match e {
        crate::sql::SqlError::Syntax(m) => PlanError::Syntax(m),
        other => PlanError::Syntax(other.to_string()),
    })?;
    let clock = catalog.clock().clone();
    let schema = Arc::new(ViewPlanningSchema::new(catalog.clone(), &query));
    let state = planning_state(schema.clone())?;
    let stmt = DFStatement::Statement(Box::new(SqlStatement::Query(Box::new(query))));
    let logical = state.statement_to_plan(stmt).await.map_err(unwrap_external)?;
    reject_time_functions(&logical)?;
    let logical = if options.transform { with_arrival(logical)? } else { logical };
    let logical = state.optimize(&logical)?;
    let Sources { inputs, slots, joined_tables, append_only, lookups, output_of } = schema.sources()?;
    let stream = inputs.first().cloned().unwrap_or_default();
    // The name the driving relation's scan has in the plan.
    let driving = if output_of { crate::stream::operator::output_of::relation_name(&stream) } else { stream.clone() };
    if options.transform {
        check_transform(&logical, &driving)?;
        if !append_only {
            return Err(PlanError::Unsupported(format!(
                "a derived stream (a transform) reads a stream or another derived stream; \"{stream}\" is a table or a view, whose rows change: create a view without aggregates over it instead"
            )));
        }
    }
    let logical = with_row_counts(logical)?;

    let aggregate = find_aggregate(&logical)?;
    let joins = if inputs.len() > 1 {
        check_table_join(&aggregate.input)?;
        true
    } else {
        check_lower(&aggregate.input, &driving)?
    };
    if aggregate.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return Err(PlanError::Unsupported(
            "GROUPING SETS, CUBE and ROLLUP are not supported in continuous views; create one view per grouping".into(),
        ));
    }
    let physical =
        state.query_planner().create_physical_plan(&LogicalPlan::Aggregate(aggregate.clone()), &state).await?;
    // A join of tables gets its point lookups per input (`retract_plan`).
    let physical = if joins && inputs.len() == 1 { lookup::point_lookups(physical)? } else { physical };
    tracing::debug!(view = name, plan = %datafusion::physical_plan::displayable(physical.as_ref()).indent(false), "view write plan");
    let (final_exec, partial) = split_physical(&physical)?;
    let layout = partial_layout(&partial)?;
    let key_types: Vec<DataType> =
        partial.schema().fields().iter().take(layout.group_columns).map(|f| f.data_type().clone()).collect();
    let aggregates: Arc<[Arc<AggregateFunctionExpr>]> = final_exec.aggr_expr().to_vec().into();
    let mut grouped = GroupedState::try_new(&key_types, aggregates)?;
    if let Some(spec) = session_spec(&aggregate, &windowing)? {
        grouped.set_session(spec);
    }
    let retract = if append_only {
        None
    } else {
        check_retractable(&stream, &final_exec, &windowing, options)?;
        let retract = retract_plan(&partial, inputs.len())?;
        let input_schema = partial.input().schema();
        let arg_types = retract
            .arg_exprs
            .iter()
            .map(|args| args.iter().map(|e| e.data_type(&input_schema)).collect::<datafusion::common::Result<Vec<_>>>())
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        grouped.set_retracting(&arg_types)?;
        Some(retract)
    };
    let grouped = Arc::new(Mutex::new(grouped));

    let state_schema: SchemaRef = Arc::clone(aggregate.schema.inner());
    let step_key = step_key(&aggregate, &windowing)?;
    let key_outputs = key_outputs(&logical, &aggregate);
    let stream_time = catalog.stream(&stream).ok().and_then(|s| s.def.event_time.clone()).map(|e| e.column);
    let event_windowed = stream_time.is_some_and(|column| {
        windowing.time_column.as_deref() == Some(column.as_str())
            || aggregate.group_expr.iter().any(|e| e.column_refs().iter().any(|c| c.name == column))
    });
    let sliding = windowing.sliding.clone().map(|s| (s, clock));
    let table = Arc::new(StateTable::new(state_schema.clone(), layout.group_columns, grouped.clone(), sliding));
    let emit = emit_plan(&state, &logical, &aggregate, &state_schema).await?;
    let upper = replace_aggregate(logical, &aggregate, &format!("__eddy_state_{name}"), table)?;
    let upper = limits_as_nodes(upper)?;
    tracing::debug!(view = name, plan = %upper.display_indent(), "view read plan");
    let transform = options.transform.then(|| partial.input().clone());
    let partial: Arc<dyn ExecutionPlan> = Arc::new(partial);
    Ok(IncrementalPlan {
        transform,
        output_of,
        emit,
        stream,
        inputs,
        joined_tables,
        lookups,
        joins,
        retract,
        slots,
        partial,
        layout,
        state: grouped,
        state_schema,
        upper,
        task_ctx: state.task_ctx(),
        windowing,
        step_key,
        key_outputs,
        event_windowed,
    })
}

/// Over an input that removes rows, windows and TTLs have no meaning yet,
/// and an aggregate that cannot take a value back (a sketch) is refused.
fn check_retractable(
    source: &str,
    final_exec: &AggregateExec,
    windowing: &Windowing,
    options: &ViewOptions,
) -> Result<(), PlanError> {
    if windowing.sliding.is_some() || windowing.session.is_some() || options.ttl.is_some() {
        return Err(PlanError::Unsupported(format!(
            "windows and TTLs are for streams; \"{source}\" is a table, whose rows are removed by DELETE and UPDATE instead"
        )));
    }
    if let Some(agg) = final_exec.aggr_expr().iter().find(|a| crate::state::cannot_retract(a)) {
        return Err(PlanError::Unsupported(format!(
            "aggregate {}() cannot be maintained over \"{source}\": it is approximate and cannot remove a value when a row is updated or deleted; use an exact aggregate such as count(DISTINCT ...)",
            agg.fun().name()
        )));
    }
    Ok(())
}

/// The plans and expressions that take a change batch of each of the
/// view's `inputs` up to the aggregate; in a join of tables, a join on a
/// table's primary key looks up only the keys of the change.
fn retract_plan(partial: &AggregateExec, inputs: usize) -> Result<RetractPlan, PlanError> {
    let arg_exprs = aggregate_expressions(partial.aggr_expr(), &AggregateMode::Partial, 0)?;
    let lower = partial.input();
    let lowers = if inputs > 1 {
        (0..inputs)
            .map(|i| {
                let plan = lookup::point_lookups(batch_source::specialize(lower, i)?)?;
                tracing::debug!(input = i, plan = %datafusion::physical_plan::displayable(plan.as_ref()).indent(false), "plan for a change of one table of a join");
                Ok(plan)
            })
            .collect::<Result<Vec<_>, PlanError>>()?
    } else {
        vec![lower.clone()]
    };
    Ok(RetractPlan {
        lowers,
        group_exprs: partial.group_expr().expr().iter().map(|(e, _)| e.clone()).collect(),
        arg_exprs,
        filters: partial.filter_expr().to_vec(),
    })
}

/// A session window's key is the last group key; its extent is the `min`
/// and `max` of its time column, which the rewrite selects.
fn session_spec(aggregate: &Aggregate, windowing: &Windowing) -> Result<Option<SessionSpec>, PlanError> {
    let Some(session) = &windowing.session else {
        return Ok(None);
    };
    let unsupported =
        || PlanError::Unsupported("this session window's grouping could not be planned; group by plain columns".into());
    // An analyzer rule may alias a key it rewrote (query::checked_arith).
    match aggregate.group_expr.last().map(|e| e.clone().unalias()) {
        Some(Expr::Column(c)) if c.name == SESSION_KEY => {}
        _ => return Err(unsupported()),
    }
    let find = |name: &str| {
        aggregate.aggr_expr.iter().position(|e| match e.clone().unalias() {
            Expr::AggregateFunction(f) => {
                f.func.name() == name
                    && matches!(f.params.args.as_slice(), [Expr::Column(c)] if c.name == session.column)
            }
            _ => false,
        })
    };
    match (find("min"), find("max")) {
        (Some(start_aggregate), Some(end_aggregate)) => {
            Ok(Some(SessionSpec { gap: session.gap, start_aggregate, end_aggregate }))
        }
        _ => Err(unsupported()),
    }
}

/// The hidden count of a view without aggregates: how many times each
/// distinct row is held.
pub(crate) const ROW_COUNT: &str = "__eddy_rows";
/// The hidden copies of a row, one per time it is held.
const ROW_COPIES: &str = "__eddy_copies";

/// A view without aggregates keeps the rows it selects, as PipelineDB's
/// did. It is planned as an aggregate like any other: grouped by every
/// output column with a hidden `count(*)`, and read back with each distinct
/// row repeated as many times as it is held (an unnest of `range(count)`).
/// So it is incremental, retracts, checkpoints and takes `ttl_column` by
/// the same machinery.
fn with_row_counts(plan: LogicalPlan) -> Result<LogicalPlan, PlanError> {
    let mut aggregates = false;
    plan.apply(|node| {
        aggregates |= matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_));
        Ok(if aggregates { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    if aggregates {
        return Ok(plan);
    }
    if let LogicalPlan::Sort(_) | LogicalPlan::Limit(_) = &plan {
        // ORDER BY and LIMIT stay on top, applied when the view is read.
        let input = plan.inputs().first().map(|i| (*i).clone());
        if let Some(input) = input {
            let wrapped = with_row_counts(input)?;
            return Ok(plan.with_new_exprs(plan.expressions(), vec![wrapped])?);
        }
    }
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::logical_expr::{col, lit};
    let columns: Vec<Expr> = plan.schema().columns().into_iter().map(Expr::Column).collect();
    let copies = datafusion::functions_nested::expr_fn::range(lit(0i64), col(ROW_COUNT), lit(1i64)).alias(ROW_COPIES);
    let mut with_copies = columns.clone();
    with_copies.push(copies);
    let plan = LogicalPlanBuilder::from(plan)
        .aggregate(columns.clone(), vec![count(lit(1i64)).alias(ROW_COUNT)])?
        .project(with_copies)?
        .unnest_column(ROW_COPIES)?
        .project(columns)?
        .build()?;
    Ok(plan)
}

/// A derived stream carries its stream's `arrival_timestamp` when its
/// query does not select it (by `*` or by name), so that views over it can
/// window on it as they would on a stream.
fn with_arrival(plan: LogicalPlan) -> Result<LogicalPlan, PlanError> {
    use crate::catalog::ARRIVAL_TIMESTAMP;
    let LogicalPlan::Projection(projection) = &plan else {
        return Ok(plan);
    };
    if projection.schema.fields().iter().any(|f| f.name() == ARRIVAL_TIMESTAMP) {
        return Ok(plan);
    }
    let input = projection.input.schema();
    let Some((qualifier, _)) = input.iter().find(|(_, f)| f.name() == ARRIVAL_TIMESTAMP) else {
        return Ok(plan);
    };
    let mut exprs = projection.expr.clone();
    exprs.push(Expr::Column(Column::new(qualifier.cloned(), ARRIVAL_TIMESTAMP)));
    Ok(LogicalPlanBuilder::from(projection.input.as_ref().clone()).project(exprs)?.build()?)
}

/// A sliding window's step is the last group key the rewrite added.
fn step_key(aggregate: &Aggregate, windowing: &Windowing) -> Result<Option<usize>, PlanError> {
    if windowing.sliding.is_none() {
        return Ok(None);
    }
    // An analyzer rule may alias a key it rewrote (query::checked_arith).
    match aggregate.group_expr.last().map(|e| e.clone().unalias()) {
        Some(Expr::ScalarFunction(ref f)) if f.name() == "date_bin" => Ok(Some(aggregate.group_expr.len() - 1)),
        _ => Err(PlanError::Unsupported(
            "this sliding window's grouping could not be planned; group by plain columns or expressions".into(),
        )),
    }
}

/// The view's output columns that are group keys: name and key index.
fn key_outputs(plan: &LogicalPlan, aggregate: &Aggregate) -> Vec<(String, usize)> {
    let groups = aggregate.group_expr.len();
    let key_index = |name: &str| (0..groups).find(|&i| aggregate.schema.field(i).name() == name);
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Projection(p) => {
                return p
                    .expr
                    .iter()
                    .zip(p.schema.fields())
                    .filter_map(|(e, f)| match e.clone().unalias() {
                        Expr::Column(c) => key_index(&c.name).map(|i| (f.name().clone(), i)),
                        _ => None,
                    })
                    .collect();
            }
            LogicalPlan::Aggregate(a) => {
                return (0..groups).map(|i| (a.schema.field(i).name().clone(), i)).collect();
            }
            other => match other.inputs().first() {
                Some(input) => node = input,
                None => return Vec::new(),
            },
        }
    }
}

/// Functions of the current time: in a continuous view they would be frozen
/// at creation (DataFusion folds them to constants), which is never what a
/// user means. The one place they have a meaning, PipelineDB's sliding-window
/// predicate, is rewritten away before planning (`crate::window::rewrite`).
const TIME_FUNCTIONS: &[&str] =
    &["now", "current_timestamp", "current_date", "current_time", "clock_timestamp", "localtimestamp", "localtime"];

fn reject_time_functions(plan: &LogicalPlan) -> Result<(), PlanError> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && TIME_FUNCTIONS.contains(&f.name())
                {
                    found = Some(f.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match found {
        Some(name) => Err(PlanError::Unsupported(format!(
            "{name}() is not supported here in a continuous view: it would be evaluated once, when the view is created; for a sliding window write WHERE arrival_timestamp > clock_timestamp() - interval '1 hour', or WITH (sw = '1 hour')"
        ))),
        None => Ok(()),
    }
}

/// DataFusion wraps errors raised by table resolution; ours come back out.
fn unwrap_external(e: DataFusionError) -> PlanError {
    let root = crate::error::root_datafusion_error(&e);
    if let DataFusionError::External(inner) = root
        && let Some(ours) = inner.downcast_ref::<PlanError>()
    {
        return match ours {
            PlanError::InvalidView(m) => PlanError::InvalidView(m.clone()),
            PlanError::Unsupported(m) => PlanError::Unsupported(m.clone()),
            PlanError::StreamRead(m) => PlanError::StreamRead(m.clone()),
            PlanError::Syntax(m) => PlanError::Syntax(m.clone()),
            PlanError::DataFusion(_) | PlanError::Window(_) => PlanError::DataFusion(e),
        };
    }
    PlanError::DataFusion(e)
}

/// Finds the Final aggregate at the top and the Partial one below it.
fn split_physical(plan: &Arc<dyn ExecutionPlan>) -> Result<(AggregateExec, AggregateExec), PlanError> {
    let internal = |m: &str| PlanError::DataFusion(DataFusionError::Internal(m.to_string()));
    let top = plan.downcast_ref::<AggregateExec>().ok_or_else(|| internal("aggregate plan has no final aggregate"))?;
    let mut node = top.input().clone();
    loop {
        if let Some(agg) = node.downcast_ref::<AggregateExec>()
            && *agg.mode() == AggregateMode::Partial
        {
            return Ok((top.clone(), agg.clone()));
        }
        let next = node.children().first().map(|c| (*c).clone());
        node = next.ok_or_else(|| internal("aggregate plan has no partial aggregate"))?;
    }
}

fn partial_layout(partial: &AggregateExec) -> Result<PartialLayout, PlanError> {
    let group_columns = partial.group_expr().expr().len();
    let mut state_columns = Vec::new();
    let mut at = group_columns;
    for agg in partial.aggr_expr() {
        let n = agg.state_fields()?.len();
        state_columns.push(at..at + n);
        at += n;
    }
    if at != partial.schema().fields().len() {
        return Err(PlanError::DataFusion(DataFusionError::Internal(format!(
            "partial aggregate has {} columns, expected {at}",
            partial.schema().fields().len()
        ))));
    }
    Ok(PartialLayout { group_columns, state_columns })
}

/// The optimizer folds `LIMIT` into `Sort { fetch }`; DataFusion's SQL
/// planner drops a Sort inside an inlined view unless a Limit node is above
/// it. Splitting the fetch back out keeps `ORDER BY ... LIMIT` in views.
fn limits_as_nodes(plan: LogicalPlan) -> Result<LogicalPlan, PlanError> {
    let out = plan.transform_up(|node| match node {
        LogicalPlan::Sort(sort) if sort.fetch.is_some() => {
            let fetch = sort.fetch;
            let unlimited = LogicalPlan::Sort(datafusion::logical_expr::Sort { fetch: None, ..sort });
            let limited = LogicalPlanBuilder::from(unlimited).limit(0, fetch)?.build()?;
            Ok(Transformed::yes(limited))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(out.data)
}

/// The view's part above the aggregate over a slot of evaluated groups,
/// if that part works row by row.
async fn emit_plan(
    state: &datafusion::execution::SessionState,
    logical: &LogicalPlan,
    aggregate: &Aggregate,
    state_schema: &SchemaRef,
) -> Result<Option<EmitPlan>, PlanError> {
    let mut row_wise = true;
    let mut above = logical;
    while !matches!(above, LogicalPlan::Aggregate(_)) {
        row_wise &= matches!(
            above,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Unnest(_)
        );
        match above.inputs().first() {
            Some(input) => above = input,
            None => break,
        }
    }
    if !row_wise {
        return Ok(None);
    }
    let slot = Arc::new(BatchSlot::default());
    let source = Arc::new(batch_source::StreamSource::new(state_schema.clone(), slot.clone()));
    let over_slot = replace_aggregate(logical.clone(), aggregate, "__eddy_groups", source)?;
    let plan = state.create_physical_plan(&over_slot).await?;
    Ok(Some(EmitPlan { slot, plan }))
}

/// Replaces the aggregate with a scan of `table` (the state, or a slot of
/// evaluated groups), projected to the aggregate's exact (qualified)
/// output schema.
fn replace_aggregate(
    plan: LogicalPlan,
    aggregate: &Aggregate,
    table_name: &str,
    table: Arc<dyn datafusion::datasource::TableProvider>,
) -> Result<LogicalPlan, PlanError> {
    let scan = LogicalPlanBuilder::scan(table_name, provider_as_source(table), None)?;
    let exprs: Vec<Expr> = aggregate
        .schema
        .iter()
        .map(|(qualifier, field)| {
            Expr::Column(Column::new(Some(TableReference::bare(table_name)), field.name()))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let replacement = scan.project(exprs)?.build()?;
    let mut replaced = false;
    let out = plan.transform_down(|node| {
        if !replaced && matches!(node, LogicalPlan::Aggregate(_)) {
            replaced = true;
            return Ok(Transformed::new(replacement.clone(), true, TreeNodeRecursion::Jump));
        }
        Ok(Transformed::no(node))
    })?;
    Ok(out.data)
}
