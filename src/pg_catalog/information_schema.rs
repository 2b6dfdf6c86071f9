//! `information_schema`: DataFusion's (`tables`, `views`, `schemata`, ...),
//! with `columns` built by Eddy so that `data_type` and `udt_name` are
//! PostgreSQL's names (`timestamp with time zone`, `timestamptz`) rather than
//! Arrow's: Grafana's query builder and other tools map columns by them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int32Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, TableProvider};

use super::catalog_list::WeakCatalogList;
use crate::catalog::types::pg_type_name;
use crate::checkpoint::manifest::{ColumnRecord, Identity};
use crate::table::provider::TableRelation;

/// The schema name.
pub const SCHEMA: &str = "information_schema";

/// `information_schema` over the session's catalogs.
#[derive(Debug)]
pub struct InformationSchema {
    list: WeakCatalogList,
}

impl InformationSchema {
    pub fn new(list: WeakCatalogList) -> Self {
        Self { list }
    }

    fn datafusion(&self) -> Option<InformationSchemaProvider> {
        self.list.get().map(InformationSchemaProvider::new)
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.datafusion().map(|d| d.table_names()).unwrap_or_default();
        names.extend(CONSTRAINT_TABLES.iter().map(|(t, _)| t.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if name.eq_ignore_ascii_case("columns") {
            return Ok(Some(self.columns().await?));
        }
        if name.eq_ignore_ascii_case("views") {
            return Ok(Some(self.views().await?));
        }
        if let Some(columns) = CONSTRAINT_TABLES.iter().find(|(t, _)| name.eq_ignore_ascii_case(t)).map(|(_, c)| c) {
            return Ok(Some(empty(columns)?));
        }
        match self.datafusion() {
            Some(d) => d.table(name).await,
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        CONSTRAINT_TABLES.iter().any(|(t, _)| name.eq_ignore_ascii_case(t))
            || self.datafusion().is_some_and(|d| d.table_exist(name))
    }
}

/// Relations about constraints and sequences, which Eddy does not have as
/// objects of their own: always empty, but there for tools that read them
/// (Metabase looks for primary keys, Doctrine lists sequences).
const CONSTRAINT_TABLES: [(&str, &[&str]); 3] = [
    (
        "sequences",
        &[
            "sequence_catalog",
            "sequence_schema",
            "sequence_name",
            "data_type",
            "numeric_precision",
            "numeric_precision_radix",
            "numeric_scale",
            "start_value",
            "minimum_value",
            "maximum_value",
            "increment",
            "cycle_option",
        ],
    ),
    (
        "table_constraints",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "constraint_type",
        ],
    ),
    (
        "key_column_usage",
        &[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
        ],
    ),
];

/// An empty relation of text columns.
fn empty(columns: &[&str]) -> Result<Arc<dyn TableProvider>> {
    let schema =
        Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()));
    Ok(Arc::new(MemTable::try_new(schema.clone(), vec![vec![RecordBatch::new_empty(schema)]])?))
}

/// Builders for the columns of `information_schema.columns`.
#[derive(Default)]
struct Columns {
    text: [StringBuilder; 12],
    ints: [Int32Builder; 4],
}

const TEXT: [&str; 12] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "column_name",
    "is_nullable",
    "data_type",
    "udt_catalog",
    "udt_schema",
    "udt_name",
    "column_default",
    "is_identity",
    "is_generated",
];
const INTS: [&str; 4] = ["ordinal_position", "character_maximum_length", "numeric_precision", "numeric_scale"];

impl Columns {
    fn push(&mut self, at: [&str; 3], ordinal: usize, field: &Field, declared: Option<(&ColumnRecord, bool)>) {
        let limit = crate::catalog::types::max_chars(field);
        let name = limit.map_or_else(|| pg_type_name(field), |(_, type_name)| type_name.to_string());
        let (data_type, udt) = match name.strip_suffix("[]") {
            // An array is `ARRAY`, its udt the element's with a leading `_`.
            Some(item) => ("ARRAY", format!("_{}", spelled(item).1)),
            None => {
                let (data_type, udt) = spelled(&name);
                (data_type, udt.to_string())
            }
        };
        // A table's provider has every column nullable (the table checks
        // NOT NULL itself): its declaration says which are.
        let nullable = declared.map_or(field.is_nullable(), |(_, not_null)| !not_null);
        let values = [at[0], at[1], at[2], field.name(), if nullable { "YES" } else { "NO" }, data_type];
        for (b, v) in self.text.iter_mut().zip(values) {
            b.append_value(v);
        }
        self.text[6].append_value(at[0]);
        self.text[7].append_value("pg_catalog");
        self.text[8].append_value(&udt);
        let identity = declared.and_then(|(c, _)| c.identity);
        let default = match (declared, identity) {
            (Some((c, _)), Some(Identity::Serial)) => Some(format!("nextval('{}_{}_seq'::regclass)", at[2], c.name)),
            (Some((c, _)), None) => c.default.clone(),
            _ => None,
        };
        self.text[9].append_option(default);
        let is_identity = matches!(identity, Some(Identity::Always | Identity::ByDefault));
        self.text[10].append_value(if is_identity { "YES" } else { "NO" });
        self.text[11].append_value("NEVER");
        self.ints[0].append_value(ordinal as i32);
        self.ints[1].append_option(limit.and_then(|(n, _)| i32::try_from(n).ok()));
        let unconstrained = name == "numeric";
        let (precision, scale) = match field.data_type() {
            DataType::Int16 => (Some(16), Some(0)),
            DataType::Int32 => (Some(32), Some(0)),
            DataType::Int64 => (Some(64), Some(0)),
            DataType::Float32 => (Some(24), None),
            DataType::Float64 => (Some(53), None),
            DataType::Decimal128(_, _) if unconstrained => (None, None),
            DataType::Decimal128(p, s) => (Some(i32::from(*p)), Some(i32::from(*s))),
            _ => (None, None),
        };
        self.ints[2].append_option(precision);
        self.ints[3].append_option(scale);
    }

    fn finish(mut self) -> Result<Arc<dyn TableProvider>> {
        let mut fields: Vec<Field> = TEXT.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect();
        fields.extend(INTS.iter().map(|n| Field::new(*n, DataType::Int32, true)));
        let schema = Arc::new(Schema::new(fields));
        let mut arrays: Vec<datafusion::arrow::array::ArrayRef> =
            self.text.iter_mut().map(|b| Arc::new(b.finish()) as _).collect();
        arrays.extend(self.ints.iter_mut().map(|b| Arc::new(b.finish()) as _));
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

impl InformationSchema {
    /// Every column of every relation, with PostgreSQL's type names.
    async fn columns(&self) -> Result<Arc<dyn TableProvider>> {
        let mut out = Columns::default();
        let Some(list) = self.list.get() else { return out.finish() };
        for catalog_name in list.catalog_names() {
            let Some(catalog) = list.catalog(&catalog_name) else { continue };
            // Not this schema's own relations: `columns` would build itself.
            for schema_name in catalog.schema_names().into_iter().filter(|s| s != SCHEMA) {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                for table_name in schema.table_names() {
                    let Some(table) = schema.table(&table_name).await? else { continue };
                    let declared = table.downcast_ref::<TableRelation>();
                    for (i, field) in table.schema().fields().iter().enumerate() {
                        let column = declared.and_then(|t| t.declared_column(i));
                        out.push([&catalog_name, &schema_name, &table_name], i + 1, field, column);
                    }
                }
            }
        }
        out.finish()
    }
}

/// The columns of `information_schema.views`, PostgreSQL's.
const VIEW_COLUMNS: [&str; 10] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "view_definition",
    "check_option",
    "is_updatable",
    "is_insertable_into",
    "is_trigger_updatable",
    "is_trigger_deletable",
    "is_trigger_insertable_into",
];

impl InformationSchema {
    /// Every view with its query, as PostgreSQL's `information_schema.views`
    /// shows it (Doctrine's `listViews` reads `view_definition`).
    async fn views(&self) -> Result<Arc<dyn TableProvider>> {
        let mut builders: Vec<StringBuilder> = VIEW_COLUMNS.iter().map(|_| StringBuilder::new()).collect();
        if let Some(list) = self.list.get() {
            for catalog_name in list.catalog_names() {
                let Some(catalog) = list.catalog(&catalog_name) else { continue };
                for schema_name in catalog.schema_names().into_iter().filter(|s| s != SCHEMA) {
                    let Some(schema) = catalog.schema(&schema_name) else { continue };
                    for table_name in schema.table_names() {
                        let Some(table) = schema.table(&table_name).await? else { continue };
                        if table.table_type() != datafusion::datasource::TableType::View {
                            continue;
                        }
                        let definition = table.get_table_definition().map(str::to_string);
                        let values = [&catalog_name, &schema_name, &table_name];
                        for (b, v) in builders.iter_mut().zip(values) {
                            b.append_value(v);
                        }
                        builders[3].append_option(definition);
                        for (b, v) in builders[4..].iter_mut().zip(["NONE", "NO", "NO", "NO", "NO", "NO"]) {
                            b.append_value(v);
                        }
                    }
                }
            }
        }
        let schema = Arc::new(Schema::new(
            VIEW_COLUMNS.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        let arrays = builders.iter_mut().map(|b| Arc::new(b.finish()) as datafusion::arrow::array::ArrayRef).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// `information_schema`'s `data_type` and `udt_name` for a type as
/// `pg_type_name` writes it.
fn spelled(name: &str) -> (&str, &str) {
    let base = name.split('(').next().unwrap_or(name);
    match base {
        "smallint" => ("smallint", "int2"),
        "integer" => ("integer", "int4"),
        "bigint" => ("bigint", "int8"),
        "real" => ("real", "float4"),
        "double precision" => ("double precision", "float8"),
        "numeric" => ("numeric", "numeric"),
        "text" => ("text", "text"),
        "character varying" => ("character varying", "varchar"),
        "character" => ("character", "bpchar"),
        "boolean" => ("boolean", "bool"),
        "date" => ("date", "date"),
        "timestamp with time zone" => ("timestamp with time zone", "timestamptz"),
        "timestamp without time zone" => ("timestamp without time zone", "timestamp"),
        "interval" => ("interval", "interval"),
        "json" => ("json", "json"),
        "jsonb" => ("jsonb", "jsonb"),
        "bytea" => ("bytea", "bytea"),
        _ => ("USER-DEFINED", base),
    }
}
