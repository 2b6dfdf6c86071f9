//! `varchar(n)`, `char(n)`, bare `varchar` and `numeric(p,s)` columns in
//! `pg_attribute`: the crate sees Arrow's `Utf8` and says `text`, and sees
//! no precision of a decimal; Eddy knows the declared type (field
//! metadata, `crate::catalog::types::MAX_CHARS_KEY` and
//! `DECLARED_TYPE_KEY`, and the Decimal128's precision and scale), so `\d`
//! and `format_type(atttypid, atttypmod)` show `character varying(2)`,
//! `character varying` and `numeric(10,2)`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int32Array, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, SchemaRef};
use datafusion::common::Result;

use crate::catalog::Catalog;
use crate::catalog::types::{DECLARED_TYPE_KEY, max_chars};
use datafusion::arrow::datatypes::DataType;

/// `varchar`'s type OID.
const VARCHAR: i32 = 1043;
/// `bpchar`'s (`char(n)`) type OID.
const BPCHAR: i32 = 1042;
/// `numeric`'s type OID.
const NUMERIC: i32 = 1700;
/// `pg_catalog`'s namespace: its relations are never Eddy's.
const PG_CATALOG_NAMESPACE: i32 = 11;

/// Each relation's length-limited columns: its name, then each column's
/// name, type OID and `atttypmod` (the limit plus 4, as PostgreSQL keeps it).
pub type CharColumns = HashMap<String, Vec<(String, i32, i32)>>;

/// The length-limited columns of every stream and table.
pub fn declared(catalog: &Catalog) -> CharColumns {
    let schemas: Vec<(String, SchemaRef)> = catalog
        .streams()
        .iter()
        .map(|s| (s.def.name.clone(), s.def.schema.clone()))
        .chain(catalog.tables().iter().map(|t| (t.def.name.clone(), t.def.schema.clone())))
        .collect();
    schemas
        .into_iter()
        .filter_map(|(name, schema)| {
            let columns: Vec<(String, i32, i32)> = schema
                .fields()
                .iter()
                .filter_map(|f| declared_type(f).map(|(oid, typmod)| (f.name().clone(), oid, typmod)))
                .collect();
            (!columns.is_empty()).then_some((name, columns))
        })
        .collect()
}

/// The type OID and `atttypmod` PostgreSQL would give `field`, where they
/// differ from what its Arrow type says.
fn declared_type(field: &datafusion::arrow::datatypes::Field) -> Option<(i32, i32)> {
    if let Some((n, type_name)) = max_chars(field) {
        let oid = if type_name == "character" { BPCHAR } else { VARCHAR };
        return Some((oid, i32::try_from(n).ok()?.saturating_add(4)));
    }
    let declared = field.metadata().get(DECLARED_TYPE_KEY).map(String::as_str);
    match (field.data_type(), declared) {
        (_, Some("character varying")) => Some((VARCHAR, -1)),
        (DataType::Decimal128(p, s), None) => Some((NUMERIC, ((i32::from(*p) << 16) | i32::from(*s)) + 4)),
        _ => None,
    }
}

/// `pg_attribute` with the declared type of each length-limited column.
/// `pg_class` gives the relations' OIDs.
pub fn patch_pg_attribute(batch: RecordBatch, pg_class: &RecordBatch, declared: &CharColumns) -> Result<RecordBatch> {
    if declared.is_empty() {
        return Ok(batch);
    }
    let oids = relation_oids(pg_class, declared);
    let schema = batch.schema();
    let at = |name: &str| schema.index_of(name).ok();
    let (Some(rel_at), Some(name_at), Some(type_at), Some(mod_at)) =
        (at("attrelid"), at("attname"), at("atttypid"), at("atttypmod"))
    else {
        return Ok(batch);
    };
    let (Some(rels), Some(names), Some(types), Some(mods)) = (
        batch.column(rel_at).as_primitive_opt::<Int32Type>(),
        batch.column(name_at).as_string_opt::<i32>(),
        batch.column(type_at).as_primitive_opt::<Int32Type>(),
        batch.column(mod_at).as_primitive_opt::<Int32Type>(),
    ) else {
        return Ok(batch);
    };
    let mut new_types: Vec<Option<i32>> = types.iter().collect();
    let mut new_mods: Vec<Option<i32>> = mods.iter().collect();
    for r in 0..batch.num_rows() {
        let Some(columns) = oids.get(&rels.value(r)) else { continue };
        if let Some((_, oid, typmod)) = columns.iter().find(|(c, _, _)| !names.is_null(r) && c == names.value(r)) {
            (new_types[r], new_mods[r]) = (Some(*oid), Some(*typmod));
        }
    }
    let mut columns = batch.columns().to_vec();
    columns[type_at] = Arc::new(Int32Array::from(new_types));
    columns[mod_at] = Arc::new(Int32Array::from(new_mods));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The OIDs `pg_class` gives the relations in `declared`.
fn relation_oids<'a>(pg_class: &RecordBatch, declared: &'a CharColumns) -> HashMap<i32, &'a Vec<(String, i32, i32)>> {
    let schema = pg_class.schema();
    let column = |name: &str| schema.index_of(name).ok().map(|i| pg_class.column(i).clone());
    let (Some(oids), Some(names), Some(namespaces)) = (column("oid"), column("relname"), column("relnamespace")) else {
        return HashMap::new();
    };
    let (Some(oids), Some(names), Some(namespaces)) = (
        oids.as_primitive_opt::<Int32Type>(),
        names.as_string_opt::<i32>(),
        namespaces.as_primitive_opt::<Int32Type>(),
    ) else {
        return HashMap::new();
    };
    (0..pg_class.num_rows())
        .filter(|&r| !names.is_null(r) && namespaces.value(r) != PG_CATALOG_NAMESPACE)
        .filter_map(|r| Some((oids.value(r), declared.get(names.value(r))?)))
        .collect()
}
