//! Name resolution while planning a view: streams become batch sources.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::TableProvider;
use parking_lot::Mutex;

use super::PlanError;
use super::batch_source::{BatchSlot, StreamSource};
use crate::catalog::{Catalog, Relation};

/// A relation the view reads: its name, its slot, its source, and whether
/// it only ever adds rows (a stream) or also removes them (a table).
type Bound = (String, Arc<BatchSlot>, Arc<StreamSource>, bool);

/// Resolves stream names to [`StreamSource`]s and remembers which streams
/// the view reads.
#[derive(Debug)]
pub struct ViewPlanningSchema {
    catalog: Arc<Catalog>,
    bound: Mutex<Vec<Bound>>,
}

impl ViewPlanningSchema {
    /// A resolver over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog, bound: Mutex::new(Vec::new()) }
    }

    /// The one relation the view reads, its slot, and whether it is
    /// append-only; no relation, or several, is an error.
    pub fn single_source(&self) -> Result<(String, Arc<BatchSlot>, bool), PlanError> {
        let bound = self.bound.lock();
        match bound.as_slice() {
            [(name, slot, _, append_only)] => Ok((name.clone(), slot.clone(), *append_only)),
            [] => Err(PlanError::InvalidView(
                "a continuous view must read from a stream: add FROM stream_name to its query".into(),
            )),
            _ => Err(PlanError::Unsupported(
                "a continuous view reads exactly one stream or table; joins are not supported yet".into(),
            )),
        }
    }
}

#[async_trait]
impl SchemaProvider for ViewPlanningSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let (schema, append_only) = match self.catalog.relation(name) {
            Some(Relation::Stream(stream)) => (stream.def.schema.clone(), true),
            Some(Relation::Table(table)) => (table.def.schema.clone(), false),
            Some(Relation::View(view)) => match view.unreadable_by_views() {
                None => (view.output_schema(), false),
                Some(why) => return Err(DataFusionError::External(Box::new(PlanError::Unsupported(why)))),
            },
            None => return Ok(None),
        };
        let mut bound = self.bound.lock();
        if let Some((_, _, source, _)) = bound.iter().find(|(n, _, _, _)| n == name) {
            return Ok(Some(source.clone()));
        }
        let slot = Arc::new(BatchSlot::default());
        let source = Arc::new(StreamSource::new(schema, slot.clone()));
        bound.push((name.to_string(), slot, source.clone(), append_only));
        Ok(Some(source))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.relation(name).is_some()
    }
}
