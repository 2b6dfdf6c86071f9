//! The crate's catalog relations, patched with what Eddy knows better:
//!
//! - `pg_class`: streams are foreign tables (`relkind` `f`), as PipelineDB
//!   showed them, so `\d` lists them as such and `\dt` (ordinary tables)
//!   does not; tables' primary keys are indexes ([`primary_keys`]);
//! - `pg_attribute`: tables' `NOT NULL` columns, and `varchar(n)` and
//!   `char(n)` columns of streams and tables ([`super::char_types`]);
//! - `pg_index` and `pg_constraint`: tables' primary keys;
//! - `pg_foreign_table` and `pg_foreign_server`: streams, as foreign tables
//!   of the `pipelinedb` server ([`super::foreign`]).
//!
//! Each read scans the crate's `pg_class` (a few rows per relation) to find
//! the OIDs the crate gave Eddy's tables, patches the relation, and scans
//! that.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

use super::primary_keys::{self, Declared, IndexDefinitions};

/// Which relation is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// `pg_class`.
    Class,
    /// `pg_attribute`.
    Attribute,
    /// `pg_index`.
    Index,
    /// `pg_constraint`.
    Constraint,
    /// `pg_foreign_table`: the streams ([`super::foreign`]).
    ForeignTable,
    /// `pg_foreign_server`: the server the streams belong to.
    ForeignServer,
}

/// A crate relation with Eddy's patch.
#[derive(Debug)]
pub struct Patched {
    /// The relation to patch.
    pub inner: Arc<dyn TableProvider>,
    /// The crate's `pg_class`.
    pub pg_class: Arc<dyn TableProvider>,
    /// Eddy's streams, by name.
    pub streams: HashSet<String>,
    /// The `varchar(n)` and `char(n)` columns of streams and tables.
    pub char_columns: super::char_types::CharColumns,
    /// Eddy's tables.
    pub tables: Vec<Declared>,
    /// Filled for `pg_get_indexdef`.
    pub definitions: IndexDefinitions,
    /// Which relation `inner` is.
    pub patch: Patch,
}

impl Patched {
    async fn all_of(&self, table: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<RecordBatch> {
        let plan = table.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        Ok(concat_batches(&table.schema(), &batches)?)
    }

    /// The patched relation, whole.
    async fn patched(&self, state: &dyn Session) -> Result<RecordBatch> {
        let class = relabel_streams(self.all_of(&self.pg_class, state).await?, &self.streams)?;
        let located = primary_keys::locate(&class, &self.tables);
        self.definitions.remember(&located);
        let schema = self.inner.schema();
        match self.patch {
            Patch::Class => with_options_and_acl(primary_keys::patch_pg_class(class, &located)?),
            Patch::Attribute => {
                let batch = primary_keys::patch_pg_attribute(self.all_of(&self.inner, state).await?, &located)?;
                super::char_types::patch_pg_attribute(batch, &class, &self.char_columns)
            }
            Patch::Index => {
                let ours = primary_keys::pg_index_rows(&schema, &located)?;
                Ok(concat_batches(&schema, &[self.all_of(&self.inner, state).await?, ours])?)
            }
            Patch::Constraint => {
                let ours = primary_keys::pg_constraint_rows(&schema, &located)?;
                Ok(concat_batches(&schema, &[self.all_of(&self.inner, state).await?, ours])?)
            }
            Patch::ForeignTable => {
                let ours = super::foreign::table_rows(&schema, &class)?;
                Ok(concat_batches(&schema, &[self.all_of(&self.inner, state).await?, ours])?)
            }
            Patch::ForeignServer => {
                let ours = super::foreign::server_rows(&schema)?;
                Ok(concat_batches(&schema, &[self.all_of(&self.inner, state).await?, ours])?)
            }
        }
    }
}

/// The columns `pg_class` gains: `reloptions` and `relacl`, which psql's
/// `\d+` and `\dp` read and the crate's `pg_class` lacks.
fn class_extras() -> [Field; 2] {
    let text_array = DataType::new_list(DataType::Utf8, true);
    [Field::new("reloptions", text_array.clone(), true), Field::new("relacl", text_array, true)]
}

/// `schema` with [`class_extras`].
fn class_schema(schema: SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).chain(class_extras()).collect();
    Arc::new(Schema::new(fields))
}

/// `pg_class` rows with NULL options and ACLs (default storage options and
/// default privileges, as psql prints them).
fn with_options_and_acl(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = class_schema(batch.schema());
    let mut columns = batch.columns().to_vec();
    columns.extend(class_extras().iter().map(|f| new_null_array(f.data_type(), batch.num_rows())));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_class` with the `relkind` of `streams` set to `f`.
fn relabel_streams(batch: RecordBatch, streams: &HashSet<String>) -> Result<RecordBatch> {
    let schema = batch.schema();
    let (Ok(name_at), Ok(kind_at)) = (schema.index_of("relname"), schema.index_of("relkind")) else {
        return Ok(batch);
    };
    let (Some(names), Some(kinds)) =
        (batch.column(name_at).as_string_opt::<i32>(), batch.column(kind_at).as_string_opt::<i32>())
    else {
        return Ok(batch);
    };
    let relabelled: StringArray = (0..batch.num_rows())
        .map(|i| {
            let kind = (!kinds.is_null(i)).then(|| kinds.value(i));
            match kind {
                Some("r") if !names.is_null(i) && streams.contains(names.value(i)) => Some("f"),
                other => other,
            }
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[kind_at] = Arc::new(relabelled);
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[async_trait]
impl TableProvider for Patched {
    fn schema(&self) -> SchemaRef {
        match self.patch {
            Patch::Class => class_schema(self.inner.schema()),
            _ => self.inner.schema(),
        }
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.patched(state).await?;
        MemTable::try_new(self.schema(), vec![vec![batch]])?.scan(state, projection, filters, limit).await
    }
}
