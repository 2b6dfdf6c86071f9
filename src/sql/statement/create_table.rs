//! `CREATE TABLE t (id bigint PRIMARY KEY, ...)`, or without a primary key
//! (a multiset of rows). Its rows are changed by `INSERT`, `UPDATE`,
//! `DELETE` and `COPY` (`crate::table`).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast;

use super::Reply;
use super::kafka_binding::{Bound, binding};
use crate::catalog::CatalogError;
use crate::catalog::types::field_for_sql_type;
use crate::checkpoint::manifest::{CatalogChange, ColumnRecord, Identity, TableRecord};
use crate::error::Result;
use crate::ingest::kafka::options::KeyFormat;
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident, normalize_object_name};
use crate::table::sequence::{NextVal, Sequence};

/// A table declaration.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// The table's name.
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Its columns.
    pub columns: Vec<ColumnRecord>,
    /// Its primary key's columns.
    pub primary_key: Vec<String>,
    /// `WITH (...)` options: a Kafka topic that feeds it.
    pub options: Vec<(String, String)>,
}

fn unsupported(what: String) -> SqlError {
    SqlError::Unsupported(what)
}

fn table_options(create: &ast::CreateTable) -> std::result::Result<Vec<(String, String)>, SqlError> {
    match &create.table_options {
        ast::CreateTableOptions::None => Ok(Vec::new()),
        ast::CreateTableOptions::With(options) => crate::sql::parser::option_pairs(options.clone()),
        other => Err(unsupported(format!("table options {other} are not supported; use WITH (...)"))),
    }
}

/// ksqlDB's `CREATE TABLE t WITH (kafka_topic = ...) AS SELECT ...` (CTAS):
/// a continuous view whose changes its own sink writes to the topic, as
/// upserts keyed by its group key. Without a topic, PostgreSQL's one-time
/// CREATE TABLE AS is not what Eddy does, and it says so.
pub fn table_as_select(create: &ast::CreateTable) -> std::result::Result<super::Statement, SqlError> {
    let name = normalize_object_name(&create.name)?;
    let (options, sink) = super::create_view::split_sink_options(table_options(create)?);
    let Some(query) = create.query.clone() else {
        return Err(SqlError::Syntax("CREATE TABLE ... AS needs a query".into()));
    };
    if !sink.iter().any(|(k, _)| k == "kafka_topic") {
        return Err(unsupported(format!(
            "CREATE TABLE ... AS SELECT without kafka_topic is not supported; for a result kept up to date use CREATE VIEW {name} AS SELECT ..., and add WITH (kafka_topic = '...') to write its changes to Kafka"
        )));
    }
    Ok(super::Statement::CreateView(super::create_view::CreateView {
        name,
        if_not_exists: create.if_not_exists,
        options,
        query,
        tag: "CREATE TABLE",
        sink,
    }))
}

impl CreateTable {
    /// Reads sqlparser's `CREATE TABLE`.
    pub fn from_ast(create: &ast::CreateTable) -> std::result::Result<Self, SqlError> {
        let name = normalize_object_name(&create.name)?;
        let options = table_options(create)?;
        if create.temporary || create.external || create.or_replace {
            return Err(unsupported("TEMPORARY, EXTERNAL and OR REPLACE tables are not supported".into()));
        }
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        for column in &create.columns {
            let (record, is_key) = column_record(column)?;
            if is_key {
                primary_key.push(record.name.clone());
            }
            columns.push(record);
        }
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) => {
                    for c in &pk.columns {
                        let ast::Expr::Identifier(ident) = &c.column.expr else {
                            return Err(unsupported("a primary key is a list of columns".into()));
                        };
                        primary_key.push(normalize_ident(ident));
                    }
                }
                other => {
                    return Err(unsupported(format!(
                        "table constraint {other} is not supported; tables take one PRIMARY KEY"
                    )));
                }
            }
        }
        Ok(Self { name, if_not_exists: create.if_not_exists, columns, primary_key, options })
    }

    /// Checks the declaration and builds the table's schema.
    pub fn schema(columns: &[ColumnRecord], primary_key: &[String]) -> Result<Schema> {
        let mut seen = HashSet::new();
        let mut fields: Vec<Field> = Vec::with_capacity(columns.len());
        for c in columns {
            if !seen.insert(c.name.clone()) {
                return Err(CatalogError::DuplicateColumn(c.name.clone()).into());
            }
            let not_null = c.not_null || primary_key.contains(&c.name);
            fields.push(field_for_sql_type(&c.name, &c.sql_type)?.with_nullable(!not_null));
        }
        let mut keys = HashSet::new();
        for k in primary_key {
            if !seen.contains(k) {
                return Err(CatalogError::UndefinedColumn { relation: "the table".into(), column: k.clone() }.into());
            }
            if !keys.insert(k) {
                return Err(SqlError::Syntax(format!("column \"{k}\" appears twice in primary key constraint")).into());
            }
        }
        if fields.is_empty() {
            return Err(SqlError::Syntax("a table needs at least one column".into()).into());
        }
        Ok(Schema::new(fields))
    }

    /// Adds the table to the catalog.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let schema = Self::schema(&self.columns, &self.primary_key)?;
        let binding = binding(&self.options, Bound::Table)?;
        if let Some((_, options)) = &binding {
            check_kafka_key(&schema, &self.primary_key, options.key_format)?;
        }
        let engine = session.engine();
        let _ddl = engine.ddl_lock().await;
        if self.if_not_exists && engine.catalog.relation(&self.name).is_some() {
            session.notice("42P07", format!("relation \"{}\" already exists, skipping", self.name), None);
            return Ok(Reply::Tag("CREATE TABLE".into()));
        }
        engine.catalog.check_free(&self.name)?;
        let record = TableRecord {
            id: engine.catalog.durability().next_view_id(),
            name: self.name.clone(),
            columns: self.columns,
            primary_key: self.primary_key,
            kafka_topic: binding.as_ref().map(|(topic, _)| topic.clone()),
            files: Vec::new(),
            sequences: Default::default(),
        };
        let (defaults, _) = column_defaults(engine.read_state(), &record, &schema)?;
        check_defaults(engine.read_state(), &defaults)?;
        engine.change_catalog(CatalogChange::CreateTable(record)).await?;
        if let Some(binding) = binding {
            let undo = CatalogChange::DropTable { name: self.name.clone(), cascade: true };
            super::kafka_binding::start(session, Bound::Table, &self.name, binding, undo).await?;
        }
        engine.ddl_done().await?;
        Ok(Reply::Tag("CREATE TABLE".into()))
    }
}

/// A column of `CREATE TABLE`, and whether it is declared `PRIMARY KEY`.
fn column_record(column: &ast::ColumnDef) -> std::result::Result<(ColumnRecord, bool), SqlError> {
    let name = normalize_ident(&column.name);
    let (mut sql_type, mut identity) = match serial_type(&column.data_type) {
        Some(integer) => (integer.to_string(), Some(Identity::Serial)),
        None => (column.data_type.to_string(), None),
    };
    let (mut not_null, mut is_key, mut default) = (identity.is_some(), false, None);
    for option in &column.options {
        match &option.option {
            ast::ColumnOption::NotNull => not_null = true,
            ast::ColumnOption::Null => {}
            ast::ColumnOption::PrimaryKey(_) => (not_null, is_key) = (true, true),
            ast::ColumnOption::Default(expr) => default = Some(expr.to_string()),
            ast::ColumnOption::Generated { generated_as, generation_expr: None, .. } => {
                identity = Some(match generated_as {
                    ast::GeneratedAs::Always => Identity::Always,
                    _ => Identity::ByDefault,
                });
                not_null = true;
            }
            other => {
                return Err(unsupported(format!(
                    "column option {other} is not supported in a table; tables take NOT NULL, NULL, DEFAULT, PRIMARY KEY and GENERATED {{ALWAYS | BY DEFAULT}} AS IDENTITY"
                )));
            }
        }
    }
    if let (Some(identity), Some(_)) = (identity, &default) {
        // PostgreSQL's wording: a serial's numbering is a default itself.
        let what = match identity {
            Identity::Serial => "multiple default values specified",
            _ => "both default and identity specified",
        };
        return Err(SqlError::Syntax(format!(
            "{what} for column \"{name}\" of table; a serial or identity column is numbered by its sequence"
        )));
    }
    if identity.is_some_and(|i| i != Identity::Serial) {
        let integer = ["smallint", "int2", "integer", "int", "int4", "bigint", "int8"];
        if !integer.contains(&sql_type.to_lowercase().as_str()) {
            return Err(SqlError::InvalidParameter(format!(
                "identity column type must be smallint, integer, or bigint; \"{name}\" is {}",
                sql_type.to_lowercase()
            )));
        }
        sql_type = sql_type.to_lowercase();
    }
    Ok((ColumnRecord { name, sql_type, not_null, default, identity }, is_key))
}

/// The integer type a `serial` pseudo-type stands for.
fn serial_type(data_type: &ast::DataType) -> Option<&'static str> {
    let ast::DataType::Custom(name, modifiers) = data_type else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match name.to_string().to_lowercase().as_str() {
        "smallserial" | "serial2" => Some("smallint"),
        "serial" | "serial4" => Some("integer"),
        "bigserial" | "serial8" => Some("bigint"),
        _ => None,
    }
}

/// The sequences of a table's numbered columns, by column name.
pub type Sequences = Vec<(String, Arc<Sequence>)>;

/// Each column's default (`None`: NULL) and the sequences of the numbered
/// columns, for the table `record` declares with `schema`. A `DEFAULT` is
/// planned here, so one that does not plan fails the CREATE TABLE.
pub fn column_defaults(
    state: &datafusion::execution::SessionState,
    record: &TableRecord,
    schema: &Schema,
) -> Result<(Vec<Option<Expr>>, Sequences)> {
    let mut defaults = Vec::with_capacity(record.columns.len());
    let mut sequences = Vec::new();
    for (column, field) in record.columns.iter().zip(schema.fields()) {
        let default = match (&column.identity, &column.default) {
            (Some(_), _) => {
                let next = record.sequences.get(&column.name).copied().unwrap_or(1);
                let sequence = Arc::new(Sequence::new(&record.name, &column.name, field.data_type(), next));
                sequences.push((column.name.clone(), sequence.clone()));
                Some(NextVal::default_expr(sequence, field.data_type().clone()))
            }
            (None, Some(sql)) => {
                let expr = state.create_logical_expr(sql, &DFSchema::empty()).map_err(|e| {
                    SqlError::InvalidParameter(format!(
                        "DEFAULT {sql} of column \"{}\" is not a value Eddy can compute ({e}); a default is a constant or a function call such as now(), and cannot use a column",
                        column.name
                    ))
                })?;
                Some(expr.cast_to(field.data_type(), &DFSchema::empty())?)
            }
            (None, None) => None,
        };
        defaults.push(default);
    }
    Ok((defaults, sequences))
}

/// Computes each constant `DEFAULT` once, so that one that cannot be
/// computed (`integer DEFAULT 'abc'`) fails the CREATE TABLE, as in
/// PostgreSQL, rather than every INSERT. A default that calls a function
/// (`now()`) is computed by each INSERT.
fn check_defaults(state: &datafusion::execution::SessionState, defaults: &[Option<Expr>]) -> Result<()> {
    use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
    let options = RecordBatchOptions::new().with_row_count(Some(1));
    let one_row = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options)
        .map_err(datafusion::error::DataFusionError::from)?;
    let calls = |e: &Expr| e.exists(|e| Ok(matches!(e, Expr::ScalarFunction(_)))).unwrap_or(true);
    for expr in defaults.iter().flatten().filter(|e| !calls(e)) {
        state.create_physical_expr(expr.clone(), &DFSchema::empty())?.evaluate(&one_row)?;
    }
    Ok(())
}

/// The schema of the table `record` declares, with every column nullable:
/// the table checks NOT NULL itself, with PostgreSQL's error (23502).
pub fn table_schema(record: &TableRecord) -> Result<Arc<Schema>> {
    let declared = CreateTable::schema(&record.columns, &record.primary_key)?;
    let fields: Vec<Field> = declared.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// A table fed by Kafka needs a primary key for the message keys to fill;
/// the `kafka` and `delimited` key formats hold one column.
fn check_kafka_key(schema: &Schema, primary_key: &[String], format: KeyFormat) -> Result<()> {
    if primary_key.is_empty() {
        return Err(unsupported(
            "a table fed by a Kafka topic needs a PRIMARY KEY: each message's key is a row's primary key".into(),
        )
        .into());
    }
    if primary_key.len() > 1 && format != KeyFormat::Json {
        return Err(unsupported(format!(
            "key_format '{}' holds one column, and the primary key has {}; use key_format = 'json' with keys like {{\"a\": 1, \"b\": 2}}",
            format.name(),
            primary_key.len()
        ))
        .into());
    }
    debug_assert!(primary_key.iter().all(|k| schema.index_of(k).is_ok()), "checked by Self::schema");
    Ok(())
}
