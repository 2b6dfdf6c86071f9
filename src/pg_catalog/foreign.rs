//! Streams as foreign tables of a server called `pipelinedb`, as PipelineDB
//! showed them: `pg_class` says `f` (see `super::patched`), and psql's `\d`
//! on a foreign table also needs its row in `pg_foreign_table` and its
//! server's in `pg_foreign_server`, or it prints nothing.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, SchemaRef};
use datafusion::common::{Result, ScalarValue};

use super::primary_keys::rows;

/// The OID of the `pipelinedb` server.
const SERVER_OID: i32 = 1_600_000_000;
/// The OID its foreign-data wrapper would have.
const WRAPPER_OID: i32 = 1_600_000_001;
/// The bootstrap superuser, which owns the server.
const OWNER_OID: i32 = 10;

/// `pg_foreign_table` rows: one per relation `pg_class` (relabelled)
/// shows as a foreign table.
pub fn table_rows(schema: &SchemaRef, pg_class: &RecordBatch) -> Result<RecordBatch> {
    let class_schema = pg_class.schema();
    let column = |name: &str| class_schema.index_of(name).ok().map(|i| pg_class.column(i).clone());
    let streams: Vec<i32> = match (column("oid"), column("relkind")) {
        (Some(oids), Some(kinds)) => match (oids.as_primitive_opt::<Int32Type>(), kinds.as_string_opt::<i32>()) {
            (Some(oids), Some(kinds)) => {
                (0..pg_class.num_rows()).filter(|&r| kinds.value(r) == "f").map(|r| oids.value(r)).collect()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    rows(schema, streams.len(), |name, i| match name {
        "ftrelid" => Some(ScalarValue::Int32(Some(streams[i]))),
        "ftserver" => Some(ScalarValue::Int32(Some(SERVER_OID))),
        _ => None,
    })
}

/// The `pipelinedb` server's `pg_foreign_server` row.
pub fn server_rows(schema: &SchemaRef) -> Result<RecordBatch> {
    rows(schema, 1, |name, _| match name {
        "oid" => Some(ScalarValue::Int32(Some(SERVER_OID))),
        "srvname" => Some(ScalarValue::Utf8(Some("pipelinedb".into()))),
        "srvowner" => Some(ScalarValue::Int32(Some(OWNER_OID))),
        "srvfdw" => Some(ScalarValue::Int32(Some(WRAPPER_OID))),
        _ => None,
    })
}
