//! Catalog queries about primary and foreign keys whose SQL DataFusion
//! cannot plan, answered with an empty result instead. Eddy has no foreign
//! keys. Tables' primary keys are in `pg_index` and `pg_constraint`
//! ([`super::primary_keys`]), where psql and most drivers find them, but
//! pgjdbc's query for them is still answered empty (a known gap):
//!
//! - pgjdbc's `DatabaseMetaData.getPrimaryKeys`, which reads
//!   `information_schema._pg_expandarray(i.indkey)` and fields of its
//!   composite result;
//! - Metabase's foreign-key sync, which matches `pg_constraint`'s key arrays
//!   with `= ANY(c.conkey)`.
//!
//! Each is recognized by a fragment only it has, as datafusion-pg-catalog's
//! blacklist recognizes psql's queries.

/// pgjdbc's getPrimaryKeys: answered with no rows (see the module doc).
const PRIMARY_KEYS: &str = "SELECT CAST(NULL AS TEXT) AS \"TABLE_CAT\", CAST(NULL AS TEXT) AS \"TABLE_SCHEM\", \
    CAST(NULL AS TEXT) AS \"TABLE_NAME\", CAST(NULL AS TEXT) AS \"COLUMN_NAME\", CAST(NULL AS SMALLINT) AS \"KEY_SEQ\", \
    CAST(NULL AS TEXT) AS \"PK_NAME\" WHERE false";

/// Metabase's foreign keys: none.
const FOREIGN_KEYS: &str = "SELECT CAST(NULL AS TEXT) AS \"fk-table-schema\", CAST(NULL AS TEXT) AS \"fk-table-name\", \
    CAST(NULL AS TEXT) AS \"fk-column-name\", CAST(NULL AS TEXT) AS \"pk-table-schema\", \
    CAST(NULL AS TEXT) AS \"pk-table-name\", CAST(NULL AS TEXT) AS \"pk-column-name\" WHERE false";

/// The answer to `sql`, if it is one of the two queries.
pub fn answer(sql: &str) -> Option<&'static str> {
    if sql.contains("information_schema._pg_expandarray(i.indkey)") && sql.contains("i.indisprimary") {
        return Some(PRIMARY_KEYS);
    }
    if sql.contains("\"c\".\"contype\" = 'f'") && sql.contains("ANY(c.conkey)") {
        return Some(FOREIGN_KEYS);
    }
    None
}
