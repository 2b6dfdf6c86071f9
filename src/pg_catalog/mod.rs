//! What PostgreSQL clients look up in `pg_catalog`.
//!
//! For now this is `pg_type`, which drivers read to name result column types
//! (PHP PDO's `getColumnMeta` runs `SELECT typname FROM pg_type WHERE
//! oid = ...`). The catalog relations `\d` and dashboards need come with the
//! Postgres-ecosystem work, preferably from datafusion-pg-catalog.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int16Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, TableProvider};

/// The schema name.
pub const SCHEMA: &str = "pg_catalog";

/// `(oid, typname, typlen, typcategory, typelem, typarray)` of the types
/// Eddy sends.
const TYPES: &[(i32, &str, i16, &str, i32, i32)] = &[
    (16, "bool", 1, "B", 0, 1000),
    (17, "bytea", -1, "U", 0, 1001),
    (18, "char", 1, "Z", 0, 1002),
    (19, "name", 64, "S", 0, 1003),
    (20, "int8", 8, "N", 0, 1016),
    (21, "int2", 2, "N", 0, 1005),
    (23, "int4", 4, "N", 0, 1007),
    (25, "text", -1, "S", 0, 1009),
    (26, "oid", 4, "N", 0, 1028),
    (114, "json", -1, "U", 0, 199),
    (700, "float4", 4, "N", 0, 1021),
    (701, "float8", 8, "N", 0, 1022),
    (705, "unknown", -2, "X", 0, 0),
    (1000, "_bool", -1, "A", 16, 0),
    (1005, "_int2", -1, "A", 21, 0),
    (1007, "_int4", -1, "A", 23, 0),
    (1009, "_text", -1, "A", 25, 0),
    (1016, "_int8", -1, "A", 20, 0),
    (1021, "_float4", -1, "A", 700, 0),
    (1022, "_float8", -1, "A", 701, 0),
    (1042, "bpchar", -1, "S", 0, 1014),
    (1043, "varchar", -1, "S", 0, 1015),
    (1082, "date", 4, "D", 0, 1182),
    (1083, "time", 8, "D", 0, 1183),
    (1114, "timestamp", 8, "D", 0, 1115),
    (1184, "timestamptz", 8, "D", 0, 1185),
    (1186, "interval", 16, "T", 0, 1187),
    (1700, "numeric", -1, "N", 0, 1231),
    (3802, "jsonb", -1, "U", 0, 3807),
];

/// The `pg_type` table, built once: it never changes.
pub fn pg_type() -> Result<Arc<dyn TableProvider>> {
    static TABLE: OnceLock<Arc<dyn TableProvider>> = OnceLock::new();
    if let Some(table) = TABLE.get() {
        return Ok(table.clone());
    }
    let table = build_pg_type()?;
    Ok(TABLE.get_or_init(|| table).clone())
}

fn build_pg_type() -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("typname", DataType::Utf8, false),
        Field::new("typnamespace", DataType::Int32, false),
        Field::new("typlen", DataType::Int16, false),
        Field::new("typtype", DataType::Utf8, false),
        Field::new("typcategory", DataType::Utf8, false),
        Field::new("typelem", DataType::Int32, false),
        Field::new("typarray", DataType::Int32, false),
        Field::new("typbasetype", DataType::Int32, false),
    ]));
    let n = TYPES.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(TYPES.iter().map(|t| t.0))),
        Arc::new(StringArray::from_iter_values(TYPES.iter().map(|t| t.1))),
        Arc::new(Int32Array::from(vec![11; n])),
        Arc::new(Int16Array::from_iter_values(TYPES.iter().map(|t| t.2))),
        Arc::new(StringArray::from_iter_values(TYPES.iter().map(|_| "b"))),
        Arc::new(StringArray::from_iter_values(TYPES.iter().map(|t| t.3))),
        Arc::new(Int32Array::from_iter_values(TYPES.iter().map(|t| t.4))),
        Arc::new(Int32Array::from_iter_values(TYPES.iter().map(|t| t.5))),
        Arc::new(Int32Array::from(vec![0; n])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// The relations `pg_catalog` has.
const TABLES: &[&str] = &["pg_type"];

/// The relations of `pg_catalog`, by name.
pub fn table(name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    match name {
        "pg_type" => pg_type().map(Some),
        _ => Ok(None),
    }
}

/// `pg_catalog` as a DataFusion schema.
#[derive(Debug, Default)]
pub struct PgCatalogSchema;

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}
