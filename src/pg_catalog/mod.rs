//! `pg_catalog`: what PostgreSQL clients look up to find their way around.
//!
//! It is datafusion-pg-catalog's, extended where Eddy has more to say:
//!
//! - From the crate: the static relations exported from PostgreSQL 17
//!   (`pg_type`, `pg_proc`, `pg_am`, `pg_collation`, ...), the dynamic
//!   `pg_class`, `pg_namespace`, `pg_attribute`, `pg_database` and
//!   `pg_tables`, which walk DataFusion's catalogs on every scan (so a new
//!   stream or view shows at once), the catalog functions (`format_type`,
//!   `pg_get_expr`, `has_*_privilege`, `quote_ident`, ...), the type planner
//!   that accepts `regclass` and friends, and the SQL rewrite rules that turn
//!   psql's and drivers' catalog SQL into SQL DataFusion plans
//!   ([`rewrite`]).
//! - Eddy's own: streams are foreign tables (`relkind` `f`), as PipelineDB
//!   showed them; continuous views are views (`v`) and `pg_views` lists them
//!   with their definitions; tables' primary keys are indexes and
//!   constraints, and their `NOT NULL` columns are not null
//!   ([`patched`], [`primary_keys`]).
//!
//! OIDs of relations are handed out as relations are first seen, so they
//! are stable while the server runs but not across restarts.

mod asyncpg_types;
mod case_subquery;
mod catalog_list;
mod char_types;
mod comments;
mod defaults;
mod fdw_options;
mod foreign;
mod information_schema;
mod keys;
mod like_escape;
mod patched;
mod primary_keys;
mod psql_functions;
pub mod roles;
mod viewdef;
mod visibility;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use catalog_list::WeakCatalogList;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::SchemaProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt;
use datafusion_pg_catalog::pg_catalog::{
    self as crate_catalog, PgCatalogSchemaProvider, PgCatalogStaticTables, array_bounds_udf, format_type,
    has_privilege_udf, oid_type_planner::PgOidTypePlanner, pg_get_expr_udf, quote_ident_udf,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{self, SqlStatementRewriteRule};

use crate::catalog::Catalog;
use crate::query::context::{DATABASE, SCHEMA as PUBLIC};
use patched::Patch;

/// The schema name.
pub const SCHEMA: &str = "pg_catalog";
/// Who owns everything, as `pg_get_userbyid` and `pg_views` say.
pub const OWNER: &str = "eddy";

type Inner = PgCatalogSchemaProvider<WeakCatalogList, EmptyContextProvider>;

/// `pg_catalog` as a DataFusion schema.
#[derive(Debug)]
pub struct PgCatalogSchema {
    inner: Inner,
    catalog: Arc<Catalog>,
    definitions: primary_keys::IndexDefinitions,
    roles: Vec<roles::Role>,
}

/// The crate's static relations, decoded once per process.
fn static_tables() -> Result<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<Arc<PgCatalogStaticTables>> = OnceLock::new();
    if let Some(t) = TABLES.get() {
        return Ok(t.clone());
    }
    let tables = Arc::new(PgCatalogStaticTables::try_new()?);
    Ok(TABLES.get_or_init(|| tables).clone())
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let lower = name.to_ascii_lowercase();
        let patch = match lower.as_str() {
            "pg_class" => Patch::Class,
            "pg_attribute" => Patch::Attribute,
            "pg_index" => Patch::Index,
            "pg_constraint" => Patch::Constraint,
            "pg_foreign_table" => Patch::ForeignTable,
            "pg_foreign_server" => Patch::ForeignServer,
            "pg_views" => return Ok(Some(self.pg_views()?)),
            "pg_roles" => {
                let Some(inner) = self.inner.table("pg_roles").await? else { return Ok(None) };
                return Ok(Some(roles::table(inner.schema(), &self.roles)?));
            }
            _ => return self.inner.table(name).await,
        };
        let (Some(inner), Some(pg_class)) = (self.inner.table(&lower).await?, self.inner.table("pg_class").await?)
        else {
            return Ok(None);
        };
        Ok(Some(Arc::new(patched::Patched {
            inner,
            pg_class,
            streams: self.catalog.streams().iter().map(|s| s.def.name.clone()).collect(),
            tables: primary_keys::Declared::all(&self.catalog),
            char_columns: char_types::declared(&self.catalog),
            definitions: self.definitions.clone(),
            patch,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

impl PgCatalogSchema {
    /// Every continuous view, with its query as `pg_get_viewdef` gives it.
    fn pg_views(&self) -> Result<Arc<dyn TableProvider>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("schemaname", DataType::Utf8, true),
            Field::new("viewname", DataType::Utf8, true),
            Field::new("viewowner", DataType::Utf8, true),
            Field::new("definition", DataType::Utf8, true),
        ]));
        let views = self.catalog.views();
        let n = views.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![PUBLIC; n])),
                Arc::new(StringArray::from_iter_values(views.iter().map(|v| v.name().to_string()))),
                Arc::new(StringArray::from(vec![OWNER; n])),
                Arc::new(StringArray::from_iter_values(views.iter().map(|v| format!(" {};", v.definition())))),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// Adds `pg_catalog` to the `eddy` catalog of `state`, with the crate's
/// functions and its type planner; returns the new state.
pub fn register(state: SessionState, catalog: Arc<Catalog>, roles: Vec<roles::Role>) -> Result<SessionState> {
    let list = WeakCatalogList::new(state.catalog_list());
    let inner = PgCatalogSchemaProvider::try_new(list.clone(), static_tables()?, EmptyContextProvider)?;
    let definitions = primary_keys::IndexDefinitions::default();
    let schema = Arc::new(PgCatalogSchema { inner, catalog, definitions: definitions.clone(), roles });
    let eddy = state
        .catalog_list()
        .catalog(DATABASE)
        .ok_or_else(|| DataFusionError::Internal(format!("no catalog {DATABASE}")))?;
    eddy.register_schema(SCHEMA, schema)?;
    // In place of DataFusion's own, which the session's configuration turns off.
    eddy.register_schema(information_schema::SCHEMA, Arc::new(information_schema::InformationSchema::new(list)))?;
    let mut state = SessionStateBuilder::new_from_existing(state).with_type_planner(Arc::new(PgOidTypePlanner)).build();
    // version(), current_database(), current_schema() and pg_backend_pid()
    // are Eddy's own (crate::query::functions).
    let udfs = [
        crate_catalog::create_current_schemas_udf(),
        crate_catalog::create_pg_table_is_visible(),
        crate_catalog::create_session_user_udf(),
        crate_catalog::create_pg_get_partkeydef_udf(),
        crate_catalog::create_pg_relation_is_publishable_udf(),
        crate_catalog::create_pg_get_statisticsobjdef_columns_udf(),
        crate_catalog::create_pg_encoding_to_char_udf(),
        crate_catalog::create_pg_relation_size_udf(),
        crate_catalog::create_pg_total_relation_size_udf(),
        crate_catalog::create_pg_stat_get_numscans(),
        crate_catalog::create_pg_get_constraintdef(),
        crate_catalog::create_pg_get_partition_ancestors_udf(),
        has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        format_type::create_format_type_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
        defaults::udf(definitions.clone()),
        primary_keys::pg_get_indexdef(definitions),
    ];
    for udf in udfs.into_iter().chain(psql_functions::udfs()) {
        state.register_udf(Arc::new(udf))?;
    }
    // generate_series(array_lower(...), array_upper(...)) passes int4 bounds,
    // which DataFusion's generate_series does not take (Grafana's table list).
    let ctx = SessionContext::new_with_state(state);
    CoerceIntArgsToBigInt::widen(&ctx);
    Ok(ctx.state())
}

/// Parses a query that reads `pg_catalog` or `information_schema` with
/// datafusion-pg-catalog's parser, which also swaps whole catalog queries
/// DataFusion cannot plan (psql's row-security policies, publications and
/// statistics of a table, Grafana's search-path subquery, among others) for
/// equivalent ones; `None` for any other SQL, or if that
/// parser does not give only queries.
pub fn parse_catalog_query(sql: &str) -> Option<Vec<Statement>> {
    // Catalog queries are SELECTs (or WITH ... SELECT): INSERTs and COPYs,
    // which can be megabytes, are not scanned.
    let first = first_word(sql);
    if !first.eq_ignore_ascii_case("select") && !first.eq_ignore_ascii_case("with") {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    let keys = keys::answer(sql).or_else(|| asyncpg_types::answer(sql));
    if keys.is_none() && !lower.contains("pg_catalog") && !lower.contains("information_schema") {
        return None;
    }
    let sql = keys.map_or_else(|| search_path_members(sql), std::borrow::Cow::Borrowed);
    let sql = defaults::rewrite_sql(&sql);
    let statements = parser().parse(&sql).ok()?;
    if !statements.iter().all(|s| matches!(s, Statement::Query(_))) {
        return None;
    }
    let statements = statements
        .into_iter()
        .map(|mut statement| {
            // A correlated scalar subquery in a catalog query's select list
            // reads as NULL (the crate's rule): clients fetch defaults,
            // identities, comments and collations with them, which Eddy's
            // columns do not have. A CASE around one is unwrapped first, so
            // that the rule sees it.
            case_subquery::rewrite(&mut statement);
            comments::rewrite(&mut statement);
            fdw_options::rewrite_catalog(&mut statement);
            let mut statement = rules::RemoveSubqueryFromProjection.rewrite(statement);
            viewdef::rewrite(&mut statement);
            statement
        })
        .collect();
    Some(statements)
}

/// Grafana's query builder lists the schemas of the search path with a
/// subquery over `string_to_array(current_setting('search_path'), ',')` used
/// as a table in `FROM`, which DataFusion cannot plan (and uses it in `ORDER
/// BY`, where DataFusion takes no subquery). The search path is always
/// `"$user", public`, so `IN (subquery)` becomes `IN (current_user,
/// 'public')`.
fn search_path_members(sql: &str) -> std::borrow::Cow<'_, str> {
    const SUBQUERY: &str = "IN ( SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM \
        generate_series( array_lower(string_to_array(current_setting('search_path'),','),1), \
        array_upper(string_to_array(current_setting('search_path'),','),1) ) as i, \
        string_to_array(current_setting('search_path'),',') s )";
    const MEMBERS: &str = "IN (current_user, 'public')";
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let pattern = squeeze(SUBQUERY);
    if !sql.contains("search_path") {
        return sql.into();
    }
    let squeezed = squeeze(sql);
    if !squeezed.contains(&pattern) {
        return sql.into();
    }
    squeezed.replace(&pattern, MEMBERS).into()
}

static RULES: OnceLock<Vec<Box<dyn SqlStatementRewriteRule>>> = OnceLock::new();

/// The crate's rewrite rules for every statement, in the crate's order, but
/// for `RemoveSubqueryFromProjection`: it turns correlated scalar subqueries
/// of a select list into NULL, which is harmless in catalog queries (what
/// they fetch, defaults and collations, is NULL in Eddy) but would change a
/// user's results. Catalog queries get it through [`parse_catalog_query`].
fn rules() -> Vec<Box<dyn SqlStatementRewriteRule>> {
    vec![
        Box::new(rules::AliasDuplicatedProjectionRewrite),
        Box::new(rules::ResolveUnqualifiedIdentifier),
        Box::new(rules::RewriteArrayAnyAllOperation),
        Box::new(rules::PrependUnqualifiedPgTableName),
        Box::new(rules::StripCallableQualifier),
        Box::new(rules::FixArrayLiteral),
        Box::new(rules::CurrentUserVariableToSessionUserFunctionCall),
        Box::new(rules::StripCollate),
        Box::new(rules::RewritePgCatalogOperator),
        Box::new(rules::RewriteRegCastToSubquery::new()),
        Box::new(rules::FixVersionColumnName),
    ]
}

fn parser() -> &'static PostgresCompatibilityParser {
    static PARSER: OnceLock<PostgresCompatibilityParser> = OnceLock::new();
    PARSER.get_or_init(PostgresCompatibilityParser::new)
}

/// Rewrites client SQL the way PostgreSQL would understand it into SQL
/// DataFusion plans: `pg_class` becomes `pg_catalog.pg_class`,
/// `'name'::regclass` a lookup in `pg_class`, `OPERATOR(pg_catalog.~)` a
/// plain `~`, `x = ANY(array)` an array function, `COLLATE` is dropped, and
/// so on (datafusion-pg-catalog's rules); and `LIKE ... ESCAPE '/'` escapes
/// with a backslash instead ([`like_escape`]); `pg_table_is_visible` looks
/// at the relation's schema ([`visibility`]); psql's FDW options of a
/// stream's columns are NULL ([`fdw_options`]).
pub fn rewrite(statement: Statement) -> Statement {
    let mut statement = RULES.get_or_init(rules).iter().fold(statement, |s, rule| rule.rewrite(s));
    like_escape::rewrite(&mut statement);
    visibility::rewrite(&mut statement);
    fdw_options::rewrite(&mut statement);
    statement
}

/// The first word of `sql`, after leading white space and comments.
fn first_word(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return rest.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
        }
    }
}

/// A query the rewrites splice in, parsed once; `None` if it does not parse
/// (a bug, which leaves the statement as it was).
fn parse_template(cell: &'static OnceLock<Option<Box<Query>>>, sql: &str) -> Option<Box<Query>> {
    cell.get_or_init(|| Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_query().ok()).clone()
}

/// A call of function `name` on `args`, for the rewrites (this room's and
/// `crate::sql::pg_syntax`'s).
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_words_skip_comments() {
        assert_eq!(super::first_word("  -- ping\n /* a */ SELECT 1"), "SELECT");
        assert_eq!(super::first_word("with t as (select 1) select * from t"), "with");
        assert_eq!(super::first_word("INSERT INTO s VALUES (1)"), "INSERT");
        assert_eq!(super::first_word("-- only a comment"), "");
    }
}
