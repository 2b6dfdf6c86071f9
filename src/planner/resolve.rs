//! Name resolution while planning a view: which relations feed it, and
//! which it only looks rows up in.
//!
//! The relations whose changes flow into the view (its *driving* input) are
//! read through a [`BatchSlot`]: each run of the plan sees one change
//! batch. A view that reads a stream and also tables or views joins each
//! event with those as they are when the event is processed (a lookup join,
//! as PipelineDB, ksqlDB and RisingWave's process-time joins do): the
//! tables and views are read live on each run (a table joined on its
//! primary key, only at the batch's keys: `super::lookup`), and their own
//! changes do not feed the view. A view that joins several tables (and no
//! stream) is fed by each of them: every table is a [`DeltaSource`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::TableProvider;
use datafusion::sql::sqlparser::ast::{Query, visit_relations};
use parking_lot::Mutex;

use super::PlanError;
use super::batch_source::{BatchSlot, DeltaSource, StreamSource};
use crate::catalog::{Catalog, Relation};
use crate::stream::operator::output_of;
use crate::table::TableEntry;
use crate::table::provider::TableRelation;

/// A relation the view reads: its name, its slot, its source, and whether
/// it only ever adds rows (a stream) or also removes them (a table).
type Bound = (String, Arc<BatchSlot>, Arc<dyn TableProvider>, bool);

/// A relation a view looks rows up in when an event arrives: a table or a
/// view joined with the view's stream. Its changes do not feed the view.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A table, read live on each run.
    Table(Arc<TableEntry>),
    /// A view, read live (evaluated) on each run.
    View(String),
}

impl Lookup {
    /// The relation's name.
    pub fn name(&self) -> &str {
        match self {
            Lookup::Table(t) => &t.def.name,
            Lookup::View(name) => name,
        }
    }
}

/// What a view reads: the inputs whose changes feed it (one, or the
/// tables of a join), and what it looks up.
#[derive(Debug)]
pub struct Sources {
    /// The inputs' names, in the order their slots are listed.
    pub inputs: Vec<String>,
    /// Where each input's change batches go.
    pub slots: Vec<Arc<BatchSlot>>,
    /// The tables of a join of tables, whose writers must hold each
    /// other's write locks.
    pub joined_tables: Vec<Arc<TableEntry>>,
    /// Whether the one input only ever adds rows (a stream).
    pub append_only: bool,
    /// The tables and views joined with a stream.
    pub lookups: Vec<Lookup>,
    /// Whether the one input is read as its output stream (`output_of`).
    pub output_of: bool,
}

/// Resolves the names of a view's query to batch sources (the driving
/// input) and live relations (lookups), and remembers them.
#[derive(Debug)]
pub struct ViewPlanningSchema {
    catalog: Arc<Catalog>,
    /// Whether the query reads a stream: then its tables and views are
    /// lookups.
    reads_stream: bool,
    /// Whether it reads several relations and no stream: a join of tables.
    joins_tables: bool,
    bound: Mutex<Vec<Bound>>,
    /// Whether a view is read as its output stream (`output_of('v')`).
    output_of: Mutex<bool>,
    lookups: Mutex<Vec<Lookup>>,
    joined_tables: Mutex<Vec<Arc<TableEntry>>>,
}

impl ViewPlanningSchema {
    /// A resolver over `catalog` for `query`.
    pub fn new(catalog: Arc<Catalog>, query: &Query) -> Self {
        let mut reads_stream = false;
        let mut names: Vec<String> = Vec::new();
        let _ = visit_relations(query, |name| {
            if let Ok(name) = crate::sql::normalize_object_name(name)
                && output_of::view_of(&name).is_some()
            {
                reads_stream = true; // a view's output stream
                names.push(name);
            } else if let Ok(name) = crate::sql::normalize_object_name(name)
                && let Some(relation) = catalog.relation(&name)
            {
                reads_stream |= relation.is_stream_like();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        Self {
            catalog,
            reads_stream,
            joins_tables: !reads_stream && names.len() > 1,
            bound: Mutex::new(Vec::new()),
            output_of: Mutex::new(false),
            lookups: Mutex::new(Vec::new()),
            joined_tables: Mutex::new(Vec::new()),
        }
    }

    /// The relations that feed the view, and its lookups; no relation, two
    /// streams, or views among several inputs, is an error.
    pub fn sources(&self) -> Result<Sources, PlanError> {
        let bound = self.bound.lock();
        let names = || bound.iter().map(|b| b.0.as_str()).collect::<Vec<_>>().join(" and ");
        match bound.as_slice() {
            [] => {
                return Err(PlanError::InvalidView(
                    "a continuous view must read from a stream: add FROM stream_name to its query".into(),
                ));
            }
            [_] => {}
            _ if self.reads_stream => {
                return Err(PlanError::Unsupported(format!(
                    "this view joins the streams {}: a join of two streams must be bounded in time, and interval joins are not supported yet; keep one side in a table (CREATE TABLE, fed by INSERT or a Kafka topic) and join the stream with it",
                    names()
                )));
            }
            several if several.iter().any(|b| matches!(self.catalog.relation(&b.0), Some(Relation::View(_)))) => {
                return Err(PlanError::Unsupported(format!(
                    "this view joins {}: a join of views with tables or views is not maintained yet; join the tables they read, or join a stream with them (a lookup join)",
                    names()
                )));
            }
            _ => {}
        }
        Ok(Sources {
            inputs: bound.iter().map(|b| b.0.clone()).collect(),
            slots: bound.iter().map(|b| b.1.clone()).collect(),
            joined_tables: self.joined_tables.lock().clone(),
            append_only: bound.len() == 1 && bound[0].3,
            lookups: self.lookups.lock().clone(),
            output_of: *self.output_of.lock(),
        })
    }

    /// Binds view `name`'s output stream, `output_of('name')`.
    fn bind_output_of(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let refuse = |why: String| Err(DataFusionError::External(Box::new(PlanError::Unsupported(why))));
        let view = match self.catalog.relation(name) {
            Some(Relation::View(view)) => view,
            Some(_) => return refuse(format!("output_of takes a continuous view; \"{name}\" is not one")),
            None => return Err(DataFusionError::Plan(format!("table '{name}' not found"))),
        };
        if view.is_transform() {
            return refuse(format!("\"{name}\" is a derived stream: read it directly, FROM {name}"));
        }
        if let Some(why) = view.unreadable_by_views() {
            return refuse(why);
        }
        if view.output_keys().is_none() {
            return refuse(format!(
                "output_of('{name}') pairs each change by the view's group key, and \"{name}\" does not select every GROUP BY column as a column of its own; add them to its SELECT list"
            ));
        }
        let mut bound = self.bound.lock();
        if let Some((_, _, source, _)) = bound.iter().find(|(n, _, _, _)| n == name) {
            return Ok(Some(source.clone()));
        }
        let slot = Arc::new(BatchSlot::default());
        let source: Arc<dyn TableProvider> =
            Arc::new(StreamSource::new(output_of::schema(&view.output_schema()), slot.clone()));
        bound.push((name.to_string(), slot, source.clone(), true));
        *self.output_of.lock() = true;
        Ok(Some(source))
    }

    /// `relation`, as a live lookup.
    fn lookup(&self, name: &str, relation: Relation) -> Option<Arc<dyn TableProvider>> {
        let (lookup, provider): (Lookup, Arc<dyn TableProvider>) = match relation {
            Relation::Table(table) => (Lookup::Table(table.clone()), Arc::new(TableRelation::new(table))),
            Relation::View(view) if view.is_transform() => return None,
            Relation::View(view) => (Lookup::View(name.to_string()), view.table()),
            Relation::Stream(_) => return None,
        };
        let mut lookups = self.lookups.lock();
        if !lookups.iter().any(|l| l.name() == name) {
            lookups.push(lookup);
        }
        Some(provider)
    }
}

#[async_trait]
impl SchemaProvider for ViewPlanningSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(view) = output_of::view_of(name) {
            return self.bind_output_of(view);
        }
        let Some(relation) = self.catalog.relation(name) else {
            return Ok(None);
        };
        if self.reads_stream
            && let Some(provider) = self.lookup(name, relation.clone())
        {
            return Ok(Some(provider));
        }
        let mut bound = self.bound.lock();
        if let Some((_, _, source, _)) = bound.iter().find(|(n, _, _, _)| n == name) {
            return Ok(Some(source.clone()));
        }
        let slot = Arc::new(BatchSlot::default());
        if self.joins_tables
            && let Relation::Table(table) = &relation
        {
            let source: Arc<dyn TableProvider> = Arc::new(DeltaSource::new(bound.len(), slot.clone(), table.clone()));
            bound.push((name.to_string(), slot, source.clone(), false));
            self.joined_tables.lock().push(table.clone());
            return Ok(Some(source));
        }
        let (schema, append_only) = match relation {
            Relation::Stream(stream) => (stream.def.schema.clone(), true),
            Relation::Table(table) => (table.def.schema.clone(), false),
            Relation::View(view) if view.is_transform() => (view.output_schema(), true),
            Relation::View(view) => match view.unreadable_by_views() {
                None => (view.output_schema(), false),
                Some(why) => return Err(DataFusionError::External(Box::new(PlanError::Unsupported(why)))),
            },
        };
        let source: Arc<dyn TableProvider> = Arc::new(StreamSource::new(schema, slot.clone()));
        bound.push((name.to_string(), slot, source.clone(), append_only));
        Ok(Some(source))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.relation(name).is_some()
    }
}
