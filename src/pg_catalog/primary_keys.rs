//! Tables' primary keys and `NOT NULL` columns, as PostgreSQL's catalog
//! shows them, so that psql's `\d t` prints `"t_pkey" PRIMARY KEY, btree
//! (id)` and `not null`, and drivers find the keys:
//!
//! - `pg_class`: the table's `relhasindex` is true, and its primary key is
//!   an index `<table>_pkey` of its own (`relkind` `i`);
//! - `pg_index`: a unique, primary index on the key's columns;
//! - `pg_constraint`: a constraint `<table>_pkey` of type `p` over them;
//! - `pg_attribute`: `attnotnull` for the key's and `NOT NULL` columns (a
//!   table's provider declares every column nullable, so that a NULL gets
//!   PostgreSQL's 23502 from the table rather than an error from
//!   DataFusion);
//! - `pg_get_indexdef(oid)`: the index's `CREATE UNIQUE INDEX`.
//!
//! The crate hands out a table's OID; its index and constraint take that
//! OID plus a fixed offset, so they are stable as long as the table's is.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use parking_lot::RwLock;

use crate::catalog::Catalog;

/// Added to a table's OID: its primary key's index.
const INDEX_OID_OFFSET: i32 = 1_000_000_000;
/// Added to a table's OID: its primary key's constraint.
const CONSTRAINT_OID_OFFSET: i32 = 1_500_000_000;
/// `pg_catalog`'s namespace: its relations are never Eddy's tables.
const PG_CATALOG_NAMESPACE: i32 = 11;

/// What a table declared, by name.
#[derive(Debug, Clone)]
pub struct Declared {
    name: String,
    /// The primary key's columns (none: no key).
    key: Vec<String>,
    /// Each column's name and whether it may not be NULL.
    columns: Vec<(String, bool)>,
    /// Each column's default, as `pg_get_expr` shows it (`None`: none).
    defaults: Vec<Option<String>>,
}

impl Declared {
    /// Every table of the catalog.
    pub fn all(catalog: &Catalog) -> Vec<Declared> {
        catalog
            .tables()
            .iter()
            .map(|t| Declared {
                name: t.def.name.clone(),
                key: t.def.primary_key.clone(),
                columns: t
                    .def
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.not_null || t.def.primary_key.contains(&c.name)))
                    .collect(),
                defaults: t.def.columns.iter().map(|c| super::defaults::shown(&t.def.name, c)).collect(),
            })
            .collect()
    }

    /// The key's column numbers (from 1), as `pg_index.indkey` holds them.
    fn key_attnums(&self) -> Vec<usize> {
        self.key.iter().filter_map(|k| self.columns.iter().position(|(c, _)| c == k).map(|i| i + 1)).collect()
    }

    fn index_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    /// What `pg_get_indexdef` says of its index.
    fn index_definition(&self) -> String {
        let quote = |s: &str| crate::query::pg_functions::quote_ident(s);
        let columns: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
        format!(
            "CREATE UNIQUE INDEX {} ON public.{} USING btree ({})",
            quote(&self.index_name()),
            quote(&self.name),
            columns.join(", ")
        )
    }
}

/// A declared table found in `pg_class`.
#[derive(Debug, Clone)]
pub struct Located {
    declared: Declared,
    oid: i32,
    namespace: i32,
    /// Its row in the `pg_class` batch it was found in.
    row: usize,
}

/// Finds the declared tables in `pg_class` (one batch).
pub fn locate(pg_class: &RecordBatch, declared: &[Declared]) -> Vec<Located> {
    let schema = pg_class.schema();
    let column = |name: &str| schema.index_of(name).ok().map(|i| pg_class.column(i).clone());
    let (Some(oids), Some(names), Some(namespaces), Some(kinds)) =
        (column("oid"), column("relname"), column("relnamespace"), column("relkind"))
    else {
        return Vec::new();
    };
    let (Some(oids), Some(names), Some(namespaces), Some(kinds)) = (
        oids.as_primitive_opt::<Int32Type>(),
        names.as_string_opt::<i32>(),
        namespaces.as_primitive_opt::<Int32Type>(),
        kinds.as_string_opt::<i32>(),
    ) else {
        return Vec::new();
    };
    let by_name: HashMap<&str, &Declared> = declared.iter().map(|d| (d.name.as_str(), d)).collect();
    (0..pg_class.num_rows())
        .filter(|&r| kinds.value(r) == "r" && namespaces.value(r) != PG_CATALOG_NAMESPACE)
        .filter_map(|r| {
            let declared = by_name.get(names.value(r))?;
            Some(Located { declared: (*declared).clone(), oid: oids.value(r), namespace: namespaces.value(r), row: r })
        })
        .collect()
}

/// Index OIDs and their definitions, for `pg_get_indexdef`, and tables'
/// column defaults by OID and column number, for `eddy_column_default`;
/// refreshed by every read of `pg_class`, `pg_attribute`, `pg_index` or
/// `pg_constraint`, which a query that calls them reads first.
#[derive(Debug, Default, Clone)]
pub struct IndexDefinitions {
    indexes: Arc<RwLock<HashMap<i32, String>>>,
    defaults: Arc<RwLock<HashMap<(i32, i32), String>>>,
}

impl IndexDefinitions {
    /// Remembers the indexes and column defaults of `tables`.
    pub fn remember(&self, tables: &[Located]) {
        let mut defs = self.indexes.write();
        for t in tables.iter().filter(|t| !t.declared.key.is_empty()) {
            defs.insert(t.oid + INDEX_OID_OFFSET, t.declared.index_definition());
        }
        drop(defs);
        let mut defaults = self.defaults.write();
        for t in tables {
            for (i, default) in t.declared.defaults.iter().enumerate() {
                if let (Some(default), Ok(attnum)) = (default, i32::try_from(i + 1)) {
                    defaults.insert((t.oid, attnum), default.clone());
                }
            }
        }
    }

    /// The definition of index `oid`, if it is a primary key's.
    pub fn get(&self, oid: i32) -> Option<String> {
        self.indexes.read().get(&oid).cloned()
    }

    /// The default of column `attnum` of table `relid`, if it has one.
    pub fn column_default(&self, relid: i32, attnum: i32) -> Option<String> {
        self.defaults.read().get(&(relid, attnum)).cloned()
    }
}

/// `pg_class` (one batch) with each keyed table's `relhasindex` set and a
/// row for its index, copied from the table's row.
pub fn patch_pg_class(batch: RecordBatch, tables: &[Located]) -> Result<RecordBatch> {
    let keyed: Vec<&Located> = tables.iter().filter(|t| !t.declared.key.is_empty()).collect();
    if keyed.is_empty() {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    if let Ok(at) = schema.index_of("relhasindex") {
        let mut flags: Vec<bool> = columns[at].as_boolean().iter().map(|b| b.unwrap_or(false)).collect();
        keyed.iter().for_each(|t| flags[t.row] = true);
        columns[at] = Arc::new(BooleanArray::from(flags));
    }
    let patched = RecordBatch::try_new(schema.clone(), columns)?;
    let rows = UInt32Array::from(keyed.iter().map(|t| t.row as u32).collect::<Vec<_>>());
    let mut index_columns: Vec<ArrayRef> =
        patched.columns().iter().map(|c| take(c.as_ref(), &rows, None)).collect::<Result<_, _>>()?;
    let mut set = |name: &str, values: Vec<ScalarValue>| -> Result<()> {
        if let Ok(at) = schema.index_of(name) {
            index_columns[at] = cast(&ScalarValue::iter_to_array(values)?, schema.field(at).data_type())?;
        }
        Ok(())
    };
    set("oid", keyed.iter().map(|t| ScalarValue::Int32(Some(t.oid + INDEX_OID_OFFSET))).collect())?;
    set("relname", keyed.iter().map(|t| ScalarValue::Utf8(Some(t.declared.index_name()))).collect())?;
    set("relkind", keyed.iter().map(|_| ScalarValue::Utf8(Some("i".into()))).collect())?;
    set("relhasindex", keyed.iter().map(|_| ScalarValue::Boolean(Some(false))).collect())?;
    set("relnatts", keyed.iter().map(|t| ScalarValue::Int16(Some(t.declared.key.len() as i16))).collect())?;
    let indexes = RecordBatch::try_new(schema.clone(), index_columns)?;
    Ok(concat_batches(&schema, &[patched, indexes])?)
}

/// `pg_attribute` (one batch) with `attnotnull` set for the tables' key
/// and `NOT NULL` columns.
pub fn patch_pg_attribute(batch: RecordBatch, tables: &[Located]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let (Ok(rel_at), Ok(name_at), Ok(flag_at)) =
        (schema.index_of("attrelid"), schema.index_of("attname"), schema.index_of("attnotnull"))
    else {
        return Ok(batch);
    };
    let (Some(rels), Some(names)) =
        (batch.column(rel_at).as_primitive_opt::<Int32Type>(), batch.column(name_at).as_string_opt::<i32>())
    else {
        return Ok(batch);
    };
    let by_oid: HashMap<i32, &Declared> = tables.iter().map(|t| (t.oid, &t.declared)).collect();
    let flags = batch.column(flag_at).as_boolean();
    let patched: BooleanArray = (0..batch.num_rows())
        .map(|r| {
            let declared = by_oid.get(&rels.value(r));
            let not_null = declared.is_some_and(|d| d.columns.iter().any(|(c, nn)| *nn && c == names.value(r)));
            Some(not_null || flags.value(r))
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[flag_at] = Arc::new(patched);
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Rows of `pg_index` for the tables' primary keys.
pub fn pg_index_rows(schema: &SchemaRef, tables: &[Located]) -> Result<RecordBatch> {
    let keyed: Vec<&Located> = tables.iter().filter(|t| !t.declared.key.is_empty()).collect();
    rows(schema, keyed.len(), |name, i| {
        let t = keyed[i];
        let attnums = t.declared.key_attnums();
        let zeros = vec!["0"; attnums.len()].join(" ");
        Some(match name {
            "indexrelid" => ScalarValue::Int32(Some(t.oid + INDEX_OID_OFFSET)),
            "indrelid" => ScalarValue::Int32(Some(t.oid)),
            "indnatts" | "indnkeyatts" => ScalarValue::Int16(Some(attnums.len() as i16)),
            "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready" | "indislive" => {
                ScalarValue::Boolean(Some(true))
            }
            "indkey" => ScalarValue::Utf8(Some(attnums.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "))),
            "indcollation" | "indclass" | "indoption" => ScalarValue::Utf8(Some(zeros)),
            _ => return None,
        })
    })
}

/// Rows of `pg_constraint` for the tables' primary keys.
pub fn pg_constraint_rows(schema: &SchemaRef, tables: &[Located]) -> Result<RecordBatch> {
    let keyed: Vec<&Located> = tables.iter().filter(|t| !t.declared.key.is_empty()).collect();
    rows(schema, keyed.len(), |name, i| {
        let t = keyed[i];
        let attnums: Vec<String> = t.declared.key_attnums().iter().map(|a| a.to_string()).collect();
        Some(match name {
            "oid" => ScalarValue::Int32(Some(t.oid + CONSTRAINT_OID_OFFSET)),
            "conname" => ScalarValue::Utf8(Some(t.declared.index_name())),
            "connamespace" => ScalarValue::Int32(Some(t.namespace)),
            "contype" => ScalarValue::Utf8(Some("p".into())),
            "convalidated" | "conislocal" | "connoinherit" => ScalarValue::Boolean(Some(true)),
            "conrelid" => ScalarValue::Int32(Some(t.oid)),
            "conindid" => ScalarValue::Int32(Some(t.oid + INDEX_OID_OFFSET)),
            "confupdtype" | "confdeltype" | "confmatchtype" => ScalarValue::Utf8(Some(" ".into())),
            "conkey" => ScalarValue::Utf8(Some(format!("{{{}}}", attnums.join(",")))),
            _ => return None,
        })
    })
}

/// `n` rows of `schema`, column by column: `value(column, row)`, or for a
/// column it does not name, NULL where the column allows it and else
/// false, 0 or the empty text.
pub(super) fn rows(
    schema: &SchemaRef,
    n: usize,
    value: impl Fn(&str, usize) -> Option<ScalarValue>,
) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let fallback = match (field.is_nullable(), field.data_type()) {
            (true, t) => ScalarValue::try_from(t)?,
            (false, DataType::Boolean) => ScalarValue::Boolean(Some(false)),
            (false, DataType::Utf8) => ScalarValue::Utf8(Some(String::new())),
            (false, t) => ScalarValue::new_zero(t)?,
        };
        let values: Vec<ScalarValue> =
            (0..n).map(|i| value(field.name(), i).unwrap_or_else(|| fallback.clone())).collect();
        let array = match values.is_empty() {
            true => datafusion::arrow::array::new_empty_array(field.data_type()),
            false => cast(&ScalarValue::iter_to_array(values)?, field.data_type())?,
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

/// `pg_get_indexdef(oid [, column, pretty])`: the definition of a primary
/// key's index; NULL for any other OID.
#[derive(Debug)]
struct PgGetIndexDef {
    signature: Signature,
    definitions: IndexDefinitions,
}

impl PartialEq for PgGetIndexDef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.definitions.indexes, &other.definitions.indexes)
    }
}

impl Eq for PgGetIndexDef {}

impl std::hash::Hash for PgGetIndexDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for PgGetIndexDef {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(oids) = args.args.first() else {
            return datafusion::common::exec_err!("pg_get_indexdef takes an index OID");
        };
        let oids = cast(&oids.to_array(args.number_rows)?, &DataType::Int32)?;
        let out: StringArray =
            oids.as_primitive::<Int32Type>().iter().map(|o| o.and_then(|o| self.definitions.get(o))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The `pg_get_indexdef` function, reading `definitions`.
pub fn pg_get_indexdef(definitions: IndexDefinitions) -> ScalarUDF {
    let signature = Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(3)], Volatility::Stable);
    ScalarUDF::new_from_impl(PgGetIndexDef { signature, definitions })
}
