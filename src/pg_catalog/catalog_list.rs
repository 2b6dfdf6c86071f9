//! The session's catalogs as datafusion-pg-catalog walks them, held weakly:
//! `pg_catalog` lives inside those catalogs, so a strong reference would be
//! a cycle that keeps the engine (and its data directory's lock) alive
//! after shutdown.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::DataFusionError;
use datafusion::datasource::TableType;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;

/// A weak handle on the session's catalog list; empty once it is gone.
#[derive(Debug, Clone)]
pub struct WeakCatalogList(Weak<dyn CatalogProviderList>);

impl WeakCatalogList {
    pub fn new(list: &Arc<dyn CatalogProviderList>) -> Self {
        Self(Arc::downgrade(list))
    }

    pub fn get(&self) -> Option<Arc<dyn CatalogProviderList>> {
        self.0.upgrade()
    }
}

#[async_trait]
impl CatalogInfo for WeakCatalogList {
    async fn catalog_names(&self) -> Result<Vec<String>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::catalog_names(&list).await,
            None => Ok(Vec::new()),
        }
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::schema_names(&list, catalog).await,
            None => Ok(None),
        }
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_names(&list, catalog, schema).await,
            None => Ok(None),
        }
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_schema(&list, catalog, schema, table).await,
            None => Ok(None),
        }
    }

    async fn table_type(&self, catalog: &str, schema: &str, table: &str) -> Result<Option<TableType>, DataFusionError> {
        match self.get() {
            Some(list) => CatalogInfo::table_type(&list, catalog, schema, table).await,
            None => Ok(None),
        }
    }
}
