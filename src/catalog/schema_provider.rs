//! The catalog as DataFusion's `public` schema, for client queries: views
//! are readable tables, streams are writable (INSERT) but not readable.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::{TableProvider, TableType};

use super::{Catalog, Relation};
use crate::ingest::insert::StreamTable;

/// Resolves names in client queries.
#[derive(Debug)]
pub struct CatalogSchema {
    catalog: Arc<Catalog>,
}

impl CatalogSchema {
    /// The schema over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl SchemaProvider for CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(match self.catalog.relation(name) {
            Some(Relation::Stream(s)) => Some(Arc::new(StreamTable::new(s))),
            Some(Relation::View(v)) => Some(v.table()),
            Some(Relation::Table(t)) => Some(Arc::new(crate::table::provider::TableRelation::new(t))),
            // Unqualified pg_catalog names were qualified by
            // crate::pg_catalog::rewrite before planning.
            None => None,
        })
    }

    /// Views are views to `pg_class` (`relkind` `v`) and
    /// `information_schema.tables` (`VIEW`).
    async fn table_type(&self, name: &str) -> Result<Option<TableType>, DataFusionError> {
        Ok(match self.catalog.relation(name) {
            Some(Relation::Stream(_) | Relation::Table(_)) => Some(TableType::Base),
            Some(Relation::View(_)) => Some(TableType::View),
            None => None,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.relation(name).is_some()
    }
}
