//! Point lookups for lookup joins.
//!
//! A view that joins its stream with a table on the table's primary key
//! would otherwise read and hash the whole table for every change batch.
//! This rewrite of the view's physical plan makes each run look up only the
//! keys the batch holds:
//!
//! - the stream side becomes the hash join's build side (it is collected
//!   first), through a [`KeyCaptureExec`] that records each batch's join
//!   keys as they pass;
//! - the table's scan becomes a probing [`TableScanExec`], which reads,
//!   when first polled (after the build side is complete), only the rows
//!   whose primary key was recorded.
//!
//! The join itself is unchanged, so its type, its extra conditions and its
//! output are exactly DataFusion's. Joins it cannot prove safe (not on the
//! whole primary key, a table-side expression that is not a column or an
//! exact cast of one, a null-aware anti join) keep the full scan.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode::Recompute, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use futures::StreamExt;

use crate::table::scan::{LookupKeys, TableScanExec};

/// Rewrites every hash join of `plan` on a table's whole primary key into
/// a point lookup (see the module doc).
pub fn point_lookups(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match rewrite(join)? {
                Some(rewritten) => Transformed::yes(rewritten),
                None => Transformed::no(node),
            })
        })?
        .data)
}

/// `join` as a point lookup, if it is one; a join whose table is on its
/// left is swapped first, so that the stream is collected before the
/// table is read.
fn rewrite(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if join.null_aware {
        return Ok(None);
    }
    if let Some(rewritten) = rewrite_oriented(join)? {
        return Ok(Some(rewritten));
    }
    let table_left = table_scan(join.left()).is_some() && table_scan(join.right()).is_none();
    let swappable =
        matches!(join.join_type, JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti);
    if !table_left || !swappable {
        return Ok(None);
    }
    let swapped = join.swap_inputs(join.mode)?;
    if let Some(inner) = swapped.downcast_ref::<HashJoinExec>() {
        return rewrite_oriented(inner);
    }
    // A projection that restores the column order, over the swapped join.
    let Some(child) = swapped.children().first().map(|c| (*c).clone()) else {
        return Ok(None);
    };
    let Some(inner) = child.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    match rewrite_oriented(inner)? {
        Some(rewritten) => Ok(Some(swapped.replace_children(vec![rewritten], ReplaceChildrenOptions::new(Recompute))?)),
        None => Ok(None),
    }
}

/// `join` as a point lookup, if its right side reads a table on the whole
/// primary key and its left side is kept whole (inner, left, semi, anti).
fn rewrite_oriented(join: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if !matches!(
        join.join_type,
        JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark
    ) {
        return Ok(None);
    }
    let Some((scan, columns)) = table_scan(join.right()) else {
        return Ok(None);
    };
    let Some(key) = scan.primary_key_columns() else {
        return Ok(None);
    };
    // For each primary-key column, the stream-side expression it equals.
    let mut probes: Vec<Option<Arc<dyn PhysicalExpr>>> = vec![None; key.len()];
    for (left, right) in join.on() {
        let Some(column) = table_column(right, &columns, &scan) else {
            return Ok(None);
        };
        if let Some(at) = key.iter().position(|&k| k == column) {
            probes[at] = Some(left.clone());
        }
    }
    let Some(probes) = probes.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let keys = Arc::new(LookupKeys::default());
    let capture = Arc::new(KeyCaptureExec {
        input: join.left().clone(),
        probes,
        key_types: scan.primary_key_types(),
        keys: keys.clone(),
    });
    let probing: Arc<dyn ExecutionPlan> = Arc::new(scan.probing(keys));
    let right = replace_scan(join.right().clone(), probing)?;
    Ok(Some(Arc::new(join.builder().with_new_children(vec![capture, right])?.build()?)))
}

/// The table scan under `plan`, through nodes that keep or rename its
/// columns, with the scan column each output column is (if it is one).
fn table_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<(TableScanExec, Vec<Option<usize>>)> {
    if let Some(scan) = plan.downcast_ref::<TableScanExec>() {
        return scan.full_scan().then(|| (scan.clone(), (0..plan.schema().fields().len()).map(Some).collect()));
    }
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let (scan, below) = table_scan(projection.input())?;
        let columns = projection
            .expr()
            .iter()
            .map(|p| p.expr.downcast_ref::<Column>().and_then(|c| below.get(c.index()).copied().flatten()))
            .collect();
        return Some((scan, columns));
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let (scan, below) = table_scan(filter.input())?;
        return Some(match filter.projection() {
            Some(p) => (scan, p.iter().map(|&i| below.get(i).copied().flatten()).collect()),
            None => (scan, below),
        });
    }
    let passes_through = matches!(plan.name(), "CoalesceBatchesExec" | "RepartitionExec" | "CooperativeExec");
    match plan.children().as_slice() {
        [child] if passes_through => table_scan(child),
        _ => None,
    }
}

/// The table column a table-side join expression is: a column, or a cast
/// of one that keeps every value distinct (so looking up the cast-back key
/// finds exactly the rows that match).
fn table_column(expr: &Arc<dyn PhysicalExpr>, columns: &[Option<usize>], scan: &TableScanExec) -> Option<usize> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return columns.get(column.index()).copied().flatten();
    }
    let cast = expr.downcast_ref::<CastExpr>()?;
    let column = cast.expr().downcast_ref::<Column>()?;
    let at = columns.get(column.index()).copied().flatten()?;
    let from = scan.column_type(at)?;
    exact_cast(&from, cast.cast_type()).then_some(at)
}

/// Whether every value of `from` stays distinct as `to`.
fn exact_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let width = |t: &DataType| match t {
        Int8 => Some((8, true)),
        Int16 => Some((16, true)),
        Int32 => Some((32, true)),
        Int64 => Some((64, true)),
        UInt8 => Some((8, false)),
        UInt16 => Some((16, false)),
        UInt32 => Some((32, false)),
        UInt64 => Some((64, false)),
        _ => None,
    };
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    match (width(from), width(to)) {
        (Some((a, signed_a)), Some((b, signed_b))) => {
            (signed_a == signed_b && a <= b) || (!signed_a && signed_b && a < b)
        }
        _ => from == to || (text(from) && text(to)),
    }
}

/// `plan` with its table scan replaced by `scan`.
fn replace_scan(plan: Arc<dyn ExecutionPlan>, scan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_down(|node| {
            if node.downcast_ref::<TableScanExec>().is_some() {
                return Ok(Transformed::new(scan.clone(), true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(node))
        })?
        .data)
}

/// Passes its input's batches through, recording each batch's join keys
/// (cast to the primary key's types) for the probing scan.
#[derive(Debug)]
pub struct KeyCaptureExec {
    input: Arc<dyn ExecutionPlan>,
    probes: Vec<Arc<dyn PhysicalExpr>>,
    key_types: Vec<DataType>,
    keys: Arc<LookupKeys>,
}

impl KeyCaptureExec {
    /// The join keys of `batch`, one array per primary-key column.
    fn keys_of(probes: &[Arc<dyn PhysicalExpr>], types: &[DataType], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        probes
            .iter()
            .zip(types)
            .map(|(probe, to)| Ok(cast(&probe.evaluate(batch)?.into_array(batch.num_rows())?, to)?))
            .collect()
    }
}

impl DisplayAs for KeyCaptureExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KeyCaptureExec: keys={}", self.probes.len())
    }
}

impl ExecutionPlan for KeyCaptureExec {
    fn name(&self) -> &str {
        "KeyCaptureExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for probe in &self.probes {
            if f(probe)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(KeyCaptureExec {
                input,
                probes: self.probes.clone(),
                key_types: self.key_types.clone(),
                keys: self.keys.clone(),
            })),
            Err(_) => datafusion::common::internal_err!("KeyCaptureExec has one child"),
        }
    }

    fn execute(&self, _partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.keys.clear();
        let input = execute_stream(self.input.clone(), context)?;
        let schema = input.schema();
        let (probes, types, keys) = (self.probes.clone(), self.key_types.clone(), self.keys.clone());
        let recorded = input.map(move |batch| {
            let batch = batch?;
            keys.push(Self::keys_of(&probes, &types, &batch)?);
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, recorded)))
    }
}

#[cfg(test)]
mod tests {
    use super::exact_cast;
    use datafusion::arrow::datatypes::DataType::*;

    #[test]
    fn only_casts_that_keep_values_distinct_are_exact() {
        assert!(exact_cast(&Int32, &Int64));
        assert!(exact_cast(&UInt32, &Int64));
        assert!(exact_cast(&Utf8, &Utf8View));
        assert!(!exact_cast(&Int64, &Int32));
        assert!(!exact_cast(&Int64, &UInt64));
        assert!(!exact_cast(&Utf8, &Int64));
        assert!(!exact_cast(&Float64, &Int64));
    }
}

#[cfg(test)]
mod plan_tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::{ExecutionPlan, displayable};

    use crate::catalog::types::field_for_sql_type;
    use crate::catalog::{Catalog, StreamDef};
    use crate::checkpoint::Durability;
    use crate::planner::plan_view;
    use crate::table::{TableDef, TableEntry};
    use crate::window::ViewOptions;

    fn table(catalog: &Catalog, id: u64, name: &str, columns: &[(&str, &str)], key: &str) {
        let fields: Vec<Field> =
            columns.iter().map(|(c, t)| field_for_sql_type(c, t).unwrap().with_nullable(*c != key)).collect();
        let def = TableDef {
            id,
            name: name.into(),
            schema: Arc::new(Schema::new(fields)),
            columns: Vec::new(),
            primary_key: vec![key.to_string()],
            kafka_topic: None,
            defaults: Vec::new(),
            sequences: Vec::new(),
        };
        catalog.add_table(Arc::new(TableEntry::try_new(def, Durability::ephemeral()).unwrap())).unwrap();
    }

    /// A catalog with stream `s (k text, v bigint)`, and tables
    /// `u (id text PRIMARY KEY, tier text)` and
    /// `o (id bigint PRIMARY KEY, uid text, amount bigint)`.
    fn catalog() -> Arc<Catalog> {
        let catalog = Arc::new(Catalog::default());
        let schema = Schema::new(vec![
            field_for_sql_type("k", "text").unwrap(),
            field_for_sql_type("v", "bigint").unwrap(),
            Field::new("arrival_timestamp", crate::catalog::types::timestamptz(), true),
        ]);
        catalog
            .add_stream(StreamDef { name: "s".into(), schema: Arc::new(schema), columns: Vec::new(), event_time: None })
            .unwrap();
        table(&catalog, 1, "u", &[("id", "text"), ("tier", "text")], "id");
        table(&catalog, 2, "o", &[("id", "bigint"), ("uid", "text"), ("amount", "bigint")], "id");
        catalog
    }

    async fn shown(query: &str) -> (String, Vec<String>) {
        let query = crate::sql::parser::parse_query(query).unwrap();
        let plan = plan_view(catalog(), "v", &query, &ViewOptions::default()).await.unwrap();
        let show = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(false).to_string();
        let lowers = plan.retract.as_ref().map(|r| r.lowers.iter().map(show).collect()).unwrap_or_default();
        (show(&plan.partial), lowers)
    }

    #[tokio::test]
    async fn a_stream_joined_on_a_tables_key_looks_up_only_its_keys() {
        let (plan, _) = shown("SELECT u.tier, count(*) FROM s JOIN u ON s.k = u.id GROUP BY u.tier").await;
        assert!(plan.contains("KeyCaptureExec") && plan.contains("table=u, keys=probed"), "{plan}");
        // With the table on the left, too.
        let (plan, _) = shown("SELECT u.tier, count(*) FROM u JOIN s ON s.k = u.id GROUP BY u.tier").await;
        assert!(plan.contains("table=u, keys=probed"), "{plan}");
    }

    #[tokio::test]
    async fn a_join_on_another_column_reads_the_whole_table() {
        let (plan, _) = shown("SELECT count(*) FROM s JOIN u ON s.k = u.tier").await;
        assert!(!plan.contains("probed") && plan.contains("TableScanExec: table=u"), "{plan}");
    }

    #[tokio::test]
    async fn a_join_of_tables_looks_up_by_key_in_the_direction_it_can() {
        let (_, lowers) = shown("SELECT u.tier, sum(o.amount) FROM o JOIN u ON o.uid = u.id GROUP BY u.tier").await;
        assert_eq!(lowers.len(), 2, "{lowers:?}");
        // A change of `o` probes `u` by its key; a change of `u` reads all of `o`.
        let (of_o, of_u): (Vec<&String>, Vec<&String>) = lowers.iter().partition(|p| p.contains("table=u"));
        assert!(of_o.len() == 1 && of_o[0].contains("table=u, keys=probed"), "{lowers:?}");
        assert!(
            of_u.len() == 1 && of_u[0].contains("TableScanExec: table=o") && !of_u[0].contains("probed"),
            "{lowers:?}"
        );
    }
}
