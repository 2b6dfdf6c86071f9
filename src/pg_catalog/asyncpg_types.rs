//! asyncpg's type introspection, answered. asyncpg knows the codecs of
//! scalar types and of `text[]` and `oid[]`; for any other type a result or
//! parameter has (an `int8[]` for `id = ANY($1)`), it first asks the server
//! with one query: a recursive CTE over `pg_type`, `pg_range` and
//! `pg_attribute` with correlated `array_agg` subqueries, which DataFusion
//! cannot plan. Eddy's types are PostgreSQL's built-in ones, and the only
//! derived ones it reports are arrays of them, so the query is swapped for
//! a plain one over `pg_type` that gives each requested type its row:
//! name, kind, element type and delimiter. No array element or domain needs
//! a row of its own: the elements are built-in types asyncpg knows.
//!
//! Recognized, like [`super::keys`]'s queries, by fragments only it has.

/// The same columns as asyncpg's query, for the types in `$1`. The array
/// columns are `text[]` (always NULL here), whose codec asyncpg has.
const TYPES: &str = "SELECT t.oid AS oid, 'pg_catalog' AS ns, t.typname AS name, t.typtype AS kind, \
    CAST(NULL AS INT) AS basetype, t.typelem AS elemtype, ',' AS elemdelim, CAST(NULL AS INT) AS range_subtype, \
    CAST(NULL AS TEXT[]) AS attrtypoids, CAST(NULL AS TEXT[]) AS attrnames, 0 AS depth, \
    CAST(NULL AS TEXT) AS basetype_name, format_type(t.typelem, NULL) AS elemtype_name, \
    CAST(NULL AS TEXT) AS range_subtype_name \
    FROM pg_catalog.pg_type AS t WHERE t.oid = any($1::oid[])";

/// The answer to `sql`, if it is asyncpg's type introspection.
pub fn answer(sql: &str) -> Option<&'static str> {
    (sql.contains("typeinfo_tree") && sql.contains("ti.oid = any($1::oid[])")).then_some(TYPES)
}
