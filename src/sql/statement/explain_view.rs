//! `EXPLAIN [CONTINUOUS | MATERIALIZED] VIEW name`: a continuous view's
//! incremental plan, in three parts, as one `QUERY PLAN` column:
//!
//! - **per write**: what runs over each write's rows (DataFusion's physical
//!   plan of the pre-aggregation, or of a derived stream's transform, and
//!   how retractions reach the aggregate when the input removes rows);
//! - **state**: what the view keeps between writes, with its size now;
//! - **on read**: what a `SELECT` runs over the state.
//!
//! (`EXPLAIN SELECT ... FROM view` is DataFusion's plan of that one read.)

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::sql::sqlparser::parser::Parser;

use super::Reply;
use crate::error::Result;
use crate::server::Session;
use crate::sql::SqlError;
use crate::sql::parser::word_is;
use crate::stream::ViewRuntime;

/// `EXPLAIN VIEW name`.
#[derive(Debug, Clone)]
pub struct ExplainView {
    /// The view.
    pub name: String,
}

impl ExplainView {
    /// Parses `EXPLAIN [CONTINUOUS | MATERIALIZED] VIEW name`; `None` (with
    /// nothing consumed) for any other statement.
    pub fn parse(parser: &mut Parser) -> Result<Option<Self>, SqlError> {
        if !word_is(parser, 0, "explain") {
            return Ok(None);
        }
        let skip = usize::from(word_is(parser, 1, "continuous") || word_is(parser, 1, "materialized"));
        if !word_is(parser, 1 + skip, "view") {
            return Ok(None);
        }
        for _ in 0..2 + skip {
            parser.next_token();
        }
        let name = parser.parse_object_name(false).map_err(|e| SqlError::Syntax(e.to_string()))?;
        Ok(Some(Self { name: crate::sql::normalize_object_name(&name)? }))
    }

    /// Its one column, `QUERY PLAN`, as PostgreSQL's `EXPLAIN` has it.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("QUERY PLAN", DataType::Utf8, false)]))
    }

    /// The plan, one line per row.
    pub fn execute(&self, session: &Session) -> Result<Reply> {
        let view = session.engine().catalog.view(&self.name)?;
        let lines = describe(&view);
        let schema = Self::schema();
        let column = Arc::new(StringArray::from(lines));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![column]).map_err(datafusion::error::DataFusionError::from)?;
        Ok(Reply::Rows { schema, batches: vec![batch] })
    }
}

/// The lines of `view`'s plan.
pub fn describe(view: &ViewRuntime) -> Vec<String> {
    let plan = view.plan();
    let mut lines = vec![format!("Continuous view {} over {}", view.name(), view.inputs().join(", "))];
    let input = match &plan.retract {
        None => "append-only input: each write's rows are pre-aggregated and merged into the groups",
        Some(_) => "input that removes rows: each change carries a weight (+1 or -1) into the groups",
    };
    lines.push(format!("  Per write ({input}):"));
    match &plan.transform {
        Some(transform) => indent(&mut lines, transform, "    Transform (rows passed on, none kept): "),
        None => match &plan.retract {
            Some(retract) => retract.lowers.iter().for_each(|lower| indent(&mut lines, lower, "    Changes: ")),
            None => indent(&mut lines, &plan.partial, "    Pre-aggregate: "),
        },
    }
    for lookup in &plan.lookups {
        lines.push(format!("    Lookup join: {} as of each write", lookup.name()));
    }
    let (groups, bytes) = (view.groups(), view.state_bytes());
    let plural = if groups == 1 { "" } else { "s" };
    lines.push(format!("  State: {groups} group{plural}, {bytes} bytes"));
    let columns: Vec<String> = plan
        .state_schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), crate::catalog::types::pg_type_name(f)))
        .collect();
    lines.push(format!("    Columns: {}", columns.join(", ")));
    lines.push("  On read:".into());
    for line in plan.upper.display_indent().to_string().lines() {
        lines.push(format!("    {line}"));
    }
    lines
}

/// `plan` as indented lines, the first one after `first`.
fn indent(lines: &mut Vec<String>, plan: &Arc<dyn ExecutionPlan>, first: &str) {
    let text = displayable(plan.as_ref()).indent(true).to_string();
    for (i, line) in text.lines().enumerate() {
        match i {
            0 => lines.push(format!("{first}{}", line.trim_start())),
            _ => lines.push(format!("      {line}")),
        }
    }
}
