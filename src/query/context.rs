//! How DataFusion sessions are configured, for reads and for view planning.
//!
//! Both kinds share one base: the PostgreSQL dialect, UTC, the JSON
//! functions and operators (`->`, `->>`) from datafusion-functions-json, and
//! the PostgreSQL-flavoured functions clients call (`version()`, ...).
//! The planning session differs in two ways: one partition, and no rules
//! that would fuse or rewrite the Partial/Final aggregate split that
//! incremental maintenance depends on.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider};
use datafusion::common::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::optimizer::Optimizer;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::SessionConfig;

use super::functions;

/// The catalog name clients see (`current_database()`).
pub const DATABASE: &str = "eddy";
/// The one schema streams and views live in.
pub const SCHEMA: &str = "public";

fn base_config(target_partitions: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(DATABASE, SCHEMA)
        .with_create_default_catalog_and_schema(false)
        .with_target_partitions(target_partitions)
        // Eddy's information_schema (crate::pg_catalog) replaces DataFusion's.
        .with_information_schema(false);
    let options = config.options_mut();
    options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    options.execution.time_zone = Some("+00:00".into());
    config
}

/// Extra schemas beside `public` and `pg_catalog`, by name.
pub type ExtraSchemas<'a> = Vec<(&'a str, Arc<dyn SchemaProvider>)>;

fn finish(builder: SessionStateBuilder, schema: Arc<dyn SchemaProvider>, extra: ExtraSchemas) -> Result<SessionState> {
    let mut state = builder.build();
    state.add_analyzer_rule(Arc::new(super::checked_arith::CheckedIntegerArithmetic));
    state.add_analyzer_rule(Arc::new(super::datetime_text::DatetimeText));
    state.add_analyzer_rule(Arc::new(super::array_text::ArrayText));
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(SCHEMA, schema)?;
    for (name, provider) in extra {
        catalog.register_schema(name, provider)?;
    }
    state.catalog_list().register_catalog(DATABASE.to_string(), Arc::new(catalog));
    datafusion_functions_json::register_all(&mut state)?;
    functions::register(&mut state)?;
    crate::window::functions::register_time_helpers(&mut state)?;
    Ok(state)
}

/// The session state used for client queries, with `schema` as `public`
/// and `extra` schemas beside it. All client queries share one memory pool
/// of `memory_bytes`: a query whose operators (aggregates, sorts, joins)
/// would need more fails with 53200 instead of growing the process.
pub fn read_state(
    schema: Arc<dyn SchemaProvider>,
    extra: ExtraSchemas,
    target_partitions: usize,
    memory_bytes: usize,
) -> Result<SessionState> {
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(memory_bytes, 1.0).build_arc()?;
    let builder = SessionStateBuilder::new()
        .with_config(base_config(target_partitions))
        .with_runtime_env(runtime)
        .with_default_features();
    finish(builder, schema, extra)
}

/// The optimizer rule that would rewrite `count(DISTINCT x)` into a nested
/// aggregate; nested aggregates cannot be merged incrementally.
const SINGLE_DISTINCT_RULE: &str = "single_distinct_aggregation_to_group_by";
/// The physical rule that fuses Partial and Final aggregates into one.
const COMBINE_AGGREGATES_RULE: &str = "CombinePartialFinalAggregate";

/// The session state used to plan a continuous view's query.
pub fn planning_state(schema: Arc<dyn SchemaProvider>) -> Result<SessionState> {
    let rules = Optimizer::new().rules.into_iter().filter(|r| r.name() != SINGLE_DISTINCT_RULE).collect();
    let physical = PhysicalOptimizer::new().rules.into_iter().filter(|r| r.name() != COMBINE_AGGREGATES_RULE).collect();
    let mut config = base_config(1);
    // A view's plan runs once per change batch: filters a join pushes into
    // its inputs while running would outlive the run.
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = false;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_topk_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(rules)
        .with_physical_optimizer_rules(physical);
    finish(builder, schema, Vec::new())
}
