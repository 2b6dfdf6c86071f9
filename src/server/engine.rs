//! The engine: what every connection shares. The catalog, the DataFusion
//! session for reads, and the tracked tasks of the running views.

use std::sync::Arc;

use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::Query;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::Config;
use crate::catalog::Catalog;
use crate::catalog::relations as pipelinedb;
use crate::catalog::schema_provider::CatalogSchema;
use crate::error::{EddyError, Result};
use crate::ingest::kafka::Kafka;
use crate::ingest::kafka::relations as kafka_relations;
use crate::planner::plan_view;
use crate::query::context::{ExtraSchemas, read_state};
use crate::stream::ViewRuntime;

/// Shared server state.
#[derive(Debug)]
pub struct Engine {
    /// Names of streams and views.
    pub catalog: Arc<Catalog>,
    /// Kafka brokers and consumers.
    pub kafka: Arc<Kafka>,
    /// The configuration the server started with.
    pub config: Config,
    read_state: SessionState,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Engine {
    /// An engine with an empty catalog.
    pub fn new(config: Config, tasks: TaskTracker, shutdown: CancellationToken) -> Result<Arc<Self>> {
        let catalog = Arc::new(Catalog::new());
        let kafka = Arc::new(Kafka::new(tasks.clone(), shutdown.clone()));
        let extra: ExtraSchemas = vec![
            (kafka_relations::SCHEMA, Arc::new(kafka_relations::schema(kafka.clone()))),
            (pipelinedb::SCHEMA, Arc::new(pipelinedb::schema(catalog.clone()))),
        ];
        let mut read_state = read_state(Arc::new(CatalogSchema::new(catalog.clone())), extra, config.query_partitions)?;
        crate::query::pg_functions::register(&mut read_state, catalog.clone())?;
        Ok(Arc::new(Self { catalog, kafka, config, read_state, tasks, shutdown }))
    }

    /// The DataFusion session client queries are planned in.
    pub fn read_state(&self) -> &SessionState {
        &self.read_state
    }

    /// A DataFusion session of its own for running one client query.
    pub fn session_state(&self) -> SessionState {
        self.read_state.clone()
    }

    /// Plans `query` as view `name`, starts its operator and publishes it.
    pub async fn create_view(&self, name: &str, query: &Query) -> Result<()> {
        self.catalog.check_free(name)?;
        let plan = plan_view(self.catalog.clone(), name, query).await?;
        let view = ViewRuntime::start(name, query.to_string(), plan, &self.tasks, &self.shutdown);
        if let Err(e) = self.catalog.add_view(view.clone()) {
            view.stop();
            return Err(EddyError::from(e));
        }
        Ok(())
    }
}
