//! `DROP STREAM`, `DROP FOREIGN TABLE`, `DROP [CONTINUOUS] VIEW`, `DROP
//! TABLE` and `DROP SINK`. A relation a sink reads is dropped only with
//! CASCADE, which drops the sink too.

use super::Reply;
use crate::catalog::{CatalogError, Relation};
use crate::checkpoint::manifest::CatalogChange;
use crate::error::Result;
use crate::server::Session;
use crate::sql::SqlError;

/// What kind of relation the statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    /// `DROP STREAM`.
    Stream,
    /// `DROP FOREIGN TABLE`: the same, in PipelineDB 1.0's words.
    ForeignTable,
    /// `DROP VIEW` / `DROP CONTINUOUS VIEW`.
    View,
    /// `DROP TABLE`.
    Table,
    /// `DROP SINK`.
    Sink,
}

impl DropKind {
    /// The kind's name in messages.
    fn noun(self) -> &'static str {
        match self {
            DropKind::Stream => "stream",
            DropKind::ForeignTable => "foreign table",
            DropKind::View => "view",
            DropKind::Table => "table",
            DropKind::Sink => "sink",
        }
    }
}

/// PostgreSQL's NOTICE for what a CASCADE drops besides the named relation.
fn report_cascade(session: &Session, dropped: Vec<String>) {
    match dropped.as_slice() {
        [] => {}
        [one] => session.notice("00000", format!("drop cascades to {one}"), None),
        many => {
            let detail = many.iter().map(|d| format!("drop cascades to {d}")).collect::<Vec<_>>().join("\n");
            session.notice("00000", format!("drop cascades to {} other objects", many.len()), Some(detail));
        }
    }
}

/// A DROP statement.
#[derive(Debug, Clone)]
pub struct Drop {
    /// The kind named.
    pub kind: DropKind,
    /// `IF EXISTS` was given.
    pub if_exists: bool,
    /// The relations to drop.
    pub names: Vec<String>,
    /// `CASCADE` was given.
    pub cascade: bool,
}

impl Drop {
    /// Drops each named relation; views stop their operators.
    pub async fn execute(self, session: &Session) -> Result<Reply> {
        let engine = session.engine();
        let _ddl = engine.ddl_lock().await;
        let tag = match self.kind {
            DropKind::Stream => "DROP STREAM",
            DropKind::ForeignTable => "DROP FOREIGN TABLE",
            DropKind::View => "DROP VIEW",
            DropKind::Table => "DROP TABLE",
            DropKind::Sink => "DROP SINK",
        };
        for name in &self.names {
            if self.kind == DropKind::Sink {
                if !self.if_exists || engine.sinks.exists(name) {
                    engine.sinks.drop_by_user(name)?;
                }
                continue;
            }
            if !self.cascade {
                engine.sinks.check_drop(name)?;
            }
            self.drop_relation(session, name).await?;
        }
        if self.names.is_empty() {
            return Err(SqlError::Syntax("DROP needs a name".into()).into());
        }
        engine.sinks.prune();
        engine.ddl_done().await?;
        Ok(Reply::Tag(tag.into()))
    }
    /// Drops relation `name` as the statement's kind says, with
    /// PostgreSQL's notices: what a CASCADE drops too, and a name
    /// `IF EXISTS` skips.
    async fn drop_relation(&self, session: &Session, name: &str) -> Result<()> {
        let engine = session.engine();
        let exists = engine.catalog.relation(name);
        let cascaded = if exists.is_some() && self.cascade { engine.catalog.cascades(name) } else { Vec::new() };
        match (self.kind, exists) {
            (DropKind::Sink, _) => {}
            (_, None) if self.if_exists => {
                session.notice("00000", format!("{} \"{name}\" does not exist, skipping", self.kind.noun()), None);
            }
            (DropKind::Table, Some(Relation::Table(table))) => {
                engine.catalog.drop_table_check(name, self.cascade)?;
                // A transaction block that changed the table ends first (its
                // COMMIT would change a dropped table), as PostgreSQL's DROP
                // waits for the blocks that hold the table's rows.
                let own = session.transaction().is_some_and(|t| t.overlay().rows_of(&table).is_some());
                let _claim = match own {
                    true => None,
                    false => Some(
                        table.claim(crate::table::claim::STATEMENT).await.map_err(crate::ingest::IngestError::from)?,
                    ),
                };
                engine
                    .change_catalog(CatalogChange::DropTable { name: name.to_string(), cascade: self.cascade })
                    .await?;
                engine.kafka.relation_dropped(name).await;
            }
            (DropKind::Table, Some(Relation::Stream(_))) => {
                return Err(CatalogError::WrongObjectType {
                    name: name.to_string(),
                    expected: "table",
                    hint: "use DROP STREAM or DROP FOREIGN TABLE".into(),
                }
                .into());
            }
            // ksqlDB's CTAS made it: a view with its own sink.
            (DropKind::Table, Some(Relation::View(_))) if engine.sinks.owns(name) => {
                drop_view(engine, name, self.cascade).await?;
            }
            (DropKind::Table, Some(Relation::View(_))) => {
                return Err(CatalogError::WrongObjectType {
                    name: name.to_string(),
                    expected: "table",
                    hint: "use DROP VIEW".into(),
                }
                .into());
            }
            (DropKind::Table, None) => {
                return Err(CatalogError::UndefinedRelation(name.to_string()).into());
            }
            (DropKind::Stream, Some(Relation::View(v))) if v.is_transform() => {
                drop_view(engine, name, self.cascade).await?;
            }
            (DropKind::Stream | DropKind::ForeignTable, _) => {
                engine.catalog.check_drop_stream(name, self.cascade)?;
                let change = CatalogChange::DropStream { name: name.to_string(), cascade: self.cascade };
                engine.change_catalog(change).await?;
                engine.kafka.relation_dropped(name).await;
            }
            (DropKind::View, _) => drop_view(engine, name, self.cascade).await?,
        }
        report_cascade(session, cascaded);
        Ok(())
    }
}

/// Drops view (or derived stream) `name`, and with `cascade` the views over it.
async fn drop_view(engine: &std::sync::Arc<crate::server::Engine>, name: &str, cascade: bool) -> Result<()> {
    engine.catalog.view(name)?;
    engine.catalog.check_dependents(name, cascade)?;
    engine.change_catalog(CatalogChange::DropView { name: name.to_string(), cascade }).await
}
