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

/// A stream the view reads: its name, its slot, and its source.
type Bound = (String, Arc<BatchSlot>, Arc<StreamSource>);

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

    /// The one stream the view read; no stream, or several, is an error.
    pub fn single_stream(&self) -> Result<(String, Arc<BatchSlot>), PlanError> {
        let bound = self.bound.lock();
        match bound.as_slice() {
            [(name, slot, _)] => Ok((name.clone(), slot.clone())),
            [] => Err(PlanError::InvalidView(
                "a continuous view must read from a stream: add FROM stream_name to its query".into(),
            )),
            _ => Err(PlanError::Unsupported(
                "a continuous view reads exactly one stream; joins between streams are not supported".into(),
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
        match self.catalog.relation(name) {
            Some(Relation::Stream(stream)) => {
                let mut bound = self.bound.lock();
                if let Some((_, _, source)) = bound.iter().find(|(n, _, _)| n == name) {
                    return Ok(Some(source.clone()));
                }
                let slot = Arc::new(BatchSlot::default());
                let source = Arc::new(StreamSource::new(stream.def.schema.clone(), slot.clone()));
                bound.push((name.to_string(), slot, source.clone()));
                Ok(Some(source))
            }
            Some(Relation::View(_)) => Err(DataFusionError::External(Box::new(PlanError::Unsupported(format!(
                "continuous view reads continuous view \"{name}\": views over views are not supported yet; read the stream instead"
            ))))),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.relation(name).is_some()
    }
}
