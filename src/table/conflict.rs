//! `INSERT ... ON CONFLICT [(key) | ON CONSTRAINT t_pkey] DO NOTHING | DO
//! UPDATE SET ... [WHERE ...]`, as PostgreSQL does it: a proposed row whose
//! primary key is already held is skipped, or updates the held row, with
//! `excluded.col` naming the proposed values and plain or table-qualified
//! columns the held ones.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast;

use super::{TableEntry, TableError};

fn arrow(e: datafusion::arrow::error::ArrowError) -> IngestError {
    IngestError::Table(TableError::Arrow(e))
}
use crate::ingest::IngestError;

/// The column that pairs a held row with the proposed one.
const ROW_NUMBER: &str = "__eddy_rn";

/// What to do with a proposed row whose key is taken.
#[derive(Debug, Clone)]
pub enum ConflictAction {
    /// Skip it.
    DoNothing,
    /// Update the held row.
    DoUpdate {
        /// Column and new value (SQL, columns qualified).
        set: Vec<(String, ast::Expr)>,
        /// Only rows where this holds are updated.
        selection: Option<Box<ast::Expr>>,
    },
}

/// An `ON CONFLICT` clause, checked against the table.
#[derive(Debug, Clone)]
pub struct OnConflict {
    /// The name the table goes by in the clause (its alias, or its name).
    target_name: String,
    action: ConflictAction,
}

fn unsupported(what: &str) -> TableError {
    TableError::Unsupported(what.to_string())
}

impl OnConflict {
    /// Checks `on` against `table`: the conflict target must be its primary key.
    pub fn from_ast(table: &TableEntry, on: &ast::OnInsert, alias: Option<&ast::Ident>) -> Result<Self, TableError> {
        let ast::OnInsert::OnConflict(on) = on else {
            return Err(unsupported("ON DUPLICATE KEY UPDATE is MySQL's; write ON CONFLICT (key) DO UPDATE SET ..."));
        };
        let key = &table.def.primary_key;
        let no_target = || TableError::NoConflictTarget { table: table.def.name.clone(), key: key.join(", ") };
        if key.is_empty() {
            return Err(no_target());
        }
        match &on.conflict_target {
            None => {}
            Some(ast::ConflictTarget::Columns(columns)) => {
                let mut named: Vec<String> = columns.iter().map(crate::sql::normalize_ident).collect();
                let mut wanted = key.clone();
                named.sort();
                wanted.sort();
                if named != wanted {
                    return Err(no_target());
                }
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let name = name.to_string().trim_matches('"').to_string();
                if name != format!("{}_pkey", table.def.name) {
                    return Err(TableError::Unsupported(format!(
                        "constraint \"{name}\" for table \"{}\" does not exist; its primary key is \"{}_pkey\"",
                        table.def.name, table.def.name
                    )));
                }
            }
        }
        let target_name = alias.map(crate::sql::normalize_ident).unwrap_or_else(|| table.def.name.clone());
        let action = match &on.action {
            ast::OnConflictAction::DoNothing => ConflictAction::DoNothing,
            ast::OnConflictAction::DoUpdate(update) => {
                let mut set = Vec::new();
                for assignment in &update.assignments {
                    let ast::AssignmentTarget::ColumnName(column) = &assignment.target else {
                        return Err(unsupported(
                            "ON CONFLICT DO UPDATE SET (a, b) = ... is not supported; set each column",
                        ));
                    };
                    let column = column.0.last().and_then(|p| p.as_ident()).map(crate::sql::normalize_ident);
                    let Some(column) = column.filter(|c| table.def.schema.index_of(c).is_ok()) else {
                        return Err(unsupported(&format!(
                            "ON CONFLICT DO UPDATE sets an unknown column: {}",
                            assignment.target
                        )));
                    };
                    set.push((column, qualify(assignment.value.clone(), &target_name)));
                }
                let selection = update.selection.clone().map(|e| Box::new(qualify(e, &target_name)));
                ConflictAction::DoUpdate { set, selection }
            }
        };
        Ok(Self { target_name, action })
    }

    /// Splits `proposed` into the rows of `rows` (the table's, or a
    /// transaction's copy) to remove and the rows to add, and counts the
    /// rows inserted or updated (what `INSERT 0 n` reports).
    pub async fn resolve(
        &self,
        table: &Arc<TableEntry>,
        rows: &parking_lot::Mutex<super::rows::TableRows>,
        proposed: RecordBatch,
    ) -> Result<(RecordBatch, RecordBatch, u64), IngestError> {
        let (fresh, conflicting, held) = {
            let rows = rows.lock();
            let keys = rows.key_rows(&proposed)?;
            let mut seen = std::collections::HashSet::new();
            let (mut fresh, mut conflicting) = (Vec::new(), Vec::new());
            for (i, key) in keys.iter().enumerate() {
                if !seen.insert(key.as_ref().to_vec()) {
                    match self.action {
                        ConflictAction::DoNothing => continue,
                        ConflictAction::DoUpdate { .. } => return Err(TableError::AffectsRowTwice.into()),
                    }
                }
                if rows.holds_key(key) { conflicting.push(i as u32) } else { fresh.push(i as u32) }
            }
            let conflicting = take_record_batch(&proposed, &UInt32Array::from(conflicting)).map_err(arrow)?;
            let held = rows.rows_with_keys_of(&conflicting)?;
            (take_record_batch(&proposed, &UInt32Array::from(fresh)).map_err(arrow)?, conflicting, held)
        };
        let ConflictAction::DoUpdate { set, selection } = &self.action else {
            let n = fresh.num_rows() as u64;
            return Ok((proposed.slice(0, 0), fresh, n));
        };
        if held.num_rows() == 0 {
            let n = fresh.num_rows() as u64;
            return Ok((held, fresh, n));
        }
        let (updated, which) =
            self.updated_rows(&table.def.schema, &held, &conflicting, set, selection.as_deref()).await?;
        let removed = take_record_batch(&held, &which).map_err(arrow)?;
        let n = (fresh.num_rows() + updated.num_rows()) as u64;
        let added = concat_batches(&table.def.schema, [&fresh, &updated]).map_err(arrow)?;
        Ok((removed, added, n))
    }

    /// Evaluates `SET` (and `WHERE`) over each held row and its proposed
    /// one with DataFusion: the new rows, and which held rows they replace.
    async fn updated_rows(
        &self,
        schema: &SchemaRef,
        held: &RecordBatch,
        proposed: &RecordBatch,
        set: &[(String, ast::Expr)],
        selection: Option<&ast::Expr>,
    ) -> Result<(RecordBatch, UInt32Array), IngestError> {
        let ctx = SessionContext::new();
        let failed = |e: datafusion::error::DataFusionError| {
            IngestError::InvalidText(crate::error::clean_datafusion_message(&e))
        };
        for (name, rows) in [(self.target_name.as_str(), held), ("excluded", proposed)] {
            let numbered = with_row_numbers(rows)?;
            let provider = MemTable::try_new(numbered.schema(), vec![vec![numbered]]).map_err(failed)?;
            ctx.register_table(name, Arc::new(provider)).map_err(failed)?;
        }
        let t = quote(&self.target_name);
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match set.iter().find(|(c, _)| c == f.name()) {
                Some((_, value)) => format!("({value}) AS {}", quote(f.name())),
                None => format!("{t}.{}", quote(f.name())),
            })
            .collect();
        let filter = selection.map(|s| format!("WHERE {s}")).unwrap_or_default();
        let sql = format!(
            "SELECT {}, {t}.{ROW_NUMBER} FROM {t} JOIN excluded ON {t}.{ROW_NUMBER} = excluded.{ROW_NUMBER} {filter} ORDER BY {t}.{ROW_NUMBER}",
            columns.join(", ")
        );
        let batches = ctx.sql(&sql).await.map_err(failed)?.collect().await.map_err(failed)?;
        let out_schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::empty()));
        let all = if batches.is_empty() { None } else { Some(concat_batches(&out_schema, &batches).map_err(arrow)?) };
        let Some(all) = all else {
            return Ok((RecordBatch::new_empty(schema.clone()), UInt32Array::from(Vec::<u32>::new())));
        };
        let n = schema.fields().len();
        let which = datafusion::arrow::compute::cast(all.column(n), &DataType::UInt32).map_err(arrow)?;
        let which = which
            .as_any()
            .downcast_ref::<UInt32Array>()
            .cloned()
            .unwrap_or_else(|| UInt32Array::from(Vec::<u32>::new()));
        let options = datafusion::arrow::compute::CastOptions { safe: false, ..Default::default() };
        let columns = (0..n)
            .map(|i| {
                datafusion::arrow::compute::cast_with_options(all.column(i), schema.field(i).data_type(), &options)
                    .map_err(|e| IngestError::InvalidText(format!("column \"{}\": {e}", schema.field(i).name())))
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok((RecordBatch::try_new(schema.clone(), columns).map_err(arrow)?, which))
    }
}

/// `rows` with a trailing row number.
fn with_row_numbers(rows: &RecordBatch) -> Result<RecordBatch, IngestError> {
    let mut fields: Vec<Arc<Field>> = rows.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ROW_NUMBER, DataType::UInt32, false)));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(UInt32Array::from_iter_values(0..rows.num_rows() as u32)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Qualifies bare column names with the target table, as PostgreSQL reads
/// them in `DO UPDATE` (a bare name is the held row's column).
fn qualify(mut expr: ast::Expr, target: &str) -> ast::Expr {
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        if let ast::Expr::Identifier(ident) = e {
            *e = ast::Expr::CompoundIdentifier(vec![ast::Ident::with_quote('"', target), ident.clone()]);
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}
