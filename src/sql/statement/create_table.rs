//! `CREATE TABLE t (id bigint PRIMARY KEY, ...)`, or without a primary key
//! (a multiset of rows). Its rows are changed by `INSERT`, `UPDATE`,
//! `DELETE` and `COPY` (`crate::table`).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast;

use super::Reply;
use super::kafka_binding::{Bound, binding};
use crate::catalog::CatalogError;
use crate::catalog::types::field_for_sql_type;
use crate::checkpoint::manifest::{CatalogChange, ColumnRecord, TableRecord};
use crate::error::Result;
use crate::ingest::kafka::options::KeyFormat;
use crate::server::Session;
use crate::sql::{SqlError, normalize_ident, normalize_object_name};

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
            let column_name = normalize_ident(&column.name);
            let mut not_null = false;
            for option in &column.options {
                match &option.option {
                    ast::ColumnOption::NotNull => not_null = true,
                    ast::ColumnOption::Null => {}
                    ast::ColumnOption::PrimaryKey(_) => {
                        not_null = true;
                        primary_key.push(column_name.clone());
                    }
                    other => {
                        return Err(unsupported(format!(
                            "column option {other} is not supported in a table; tables take NOT NULL, NULL and PRIMARY KEY"
                        )));
                    }
                }
            }
            columns.push(ColumnRecord { name: column_name, sql_type: column.data_type.to_string(), not_null });
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
        };
        engine.change_catalog(CatalogChange::CreateTable(record)).await?;
        if let Some(binding) = binding {
            let undo = CatalogChange::DropTable { name: self.name.clone(), cascade: true };
            super::kafka_binding::start(session, Bound::Table, &self.name, binding, undo).await?;
        }
        engine.ddl_done().await?;
        Ok(Reply::Tag("CREATE TABLE".into()))
    }
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
