//! Who reads whom, and dropping with it: a view reads one stream, table or
//! view, and may look rows up in tables and views it joins with; `DROP`
//! without `CASCADE` refuses while any view reads the relation (2BP01), and
//! with it drops every view that reads it, however deep.

use std::sync::Arc;

use super::{Catalog, CatalogError, Inner};
use crate::stream::ViewRuntime;

impl Inner {
    /// The views that read relation `name` directly: those its changes
    /// feed, and those that look rows up in it (a join with a stream).
    fn readers_of(&self, name: &str) -> Vec<Arc<ViewRuntime>> {
        let mut readers = if let Some(s) = self.streams.get(name) {
            s.views()
        } else if let Some(t) = self.tables.get(name) {
            t.views()
        } else {
            self.views.get(name).map(|v| v.readers()).unwrap_or_default()
        };
        for view in self.views.values() {
            if view.lookups().iter().any(|l| l.name() == name) && !readers.iter().any(|r| Arc::ptr_eq(r, view)) {
                readers.push(view.clone());
            }
        }
        readers
    }

    /// The views that read `name`, directly or through other views.
    fn all_readers_of(&self, name: &str) -> Vec<Arc<ViewRuntime>> {
        let mut out: Vec<Arc<ViewRuntime>> = Vec::new();
        let mut pending = self.readers_of(name);
        while let Some(view) = pending.pop() {
            if out.iter().any(|v| Arc::ptr_eq(v, &view)) {
                continue;
            }
            pending.extend(self.readers_of(view.name()));
            out.push(view);
        }
        out
    }

    /// Removes `view` and unwires it from the relations it reads.
    fn remove_view(&mut self, view: &Arc<ViewRuntime>) {
        let name = view.name();
        self.views.remove(name);
        for source in view.inputs() {
            if let Some(stream) = self.streams.get(source) {
                stream.views.write().retain(|v| v.name() != name);
            }
            if let Some(table) = self.tables.get(source) {
                table.remove_view(name);
            }
            if let Some(upstream) = self.views.get(source) {
                upstream.remove_reader(name);
            }
        }
    }

    /// Removes every view that reads `name`, however deep; returns them.
    fn remove_readers(&mut self, name: &str) -> Vec<Arc<ViewRuntime>> {
        let readers = self.all_readers_of(name);
        for view in &readers {
            self.remove_view(view);
        }
        readers
    }
}

impl Catalog {
    /// What `DROP name CASCADE` drops besides `name`, as PostgreSQL's
    /// notice names it (`view v`, or `stream s` for a derived stream),
    /// nearest first.
    pub fn cascades(&self, name: &str) -> Vec<String> {
        let inner = self.inner.read();
        let mut out: Vec<Arc<ViewRuntime>> = Vec::new();
        let mut queue: std::collections::VecDeque<_> = inner.readers_of(name).into();
        while let Some(view) = queue.pop_front() {
            if !out.iter().any(|v| Arc::ptr_eq(v, &view)) {
                queue.extend(inner.readers_of(view.name()));
                out.push(view);
            }
        }
        out.iter().map(|v| format!("{} {}", if v.is_transform() { "stream" } else { "view" }, v.name())).collect()
    }

    /// Fails if views read relation `name` and `cascade` is not given.
    pub fn check_dependents(&self, name: &str, cascade: bool) -> Result<(), CatalogError> {
        let readers = self.inner.read().readers_of(name);
        if !readers.is_empty() && !cascade {
            let views = readers.iter().map(|v| v.name().to_string()).collect::<Vec<_>>().join(", ");
            return Err(CatalogError::DependentObjects { stream: name.to_string(), views });
        }
        Ok(())
    }

    /// Fails if stream `name` does not exist, or has views and `cascade` is
    /// not given.
    pub fn check_drop_stream(&self, name: &str, cascade: bool) -> Result<(), CatalogError> {
        self.stream(name)?;
        self.check_dependents(name, cascade)
    }

    /// Fails if table `name` does not exist, or has views and `cascade` is
    /// not given.
    pub fn drop_table_check(&self, name: &str, cascade: bool) -> Result<(), CatalogError> {
        self.table(name)?;
        self.check_dependents(name, cascade)
    }

    /// Removes a stream. With `cascade`, the views over it go too (however
    /// deep) and are returned, so the caller can stop them.
    pub fn drop_stream(&self, name: &str, cascade: bool) -> Result<Vec<Arc<ViewRuntime>>, CatalogError> {
        self.check_drop_stream(name, cascade)?;
        let mut inner = self.inner.write();
        let dropped = inner.remove_readers(name);
        inner.streams.remove(name);
        Ok(dropped)
    }

    /// Removes a table, as [`Self::drop_stream`] does a stream.
    pub fn drop_table(&self, name: &str, cascade: bool) -> Result<Vec<Arc<ViewRuntime>>, CatalogError> {
        self.drop_table_check(name, cascade)?;
        let mut inner = self.inner.write();
        let dropped = inner.remove_readers(name);
        inner.tables.remove(name);
        Ok(dropped)
    }

    /// Removes a view (with `cascade`, the views over it too); returns
    /// every view removed, so the caller can stop their operators.
    pub fn drop_view(&self, name: &str, cascade: bool) -> Result<Vec<Arc<ViewRuntime>>, CatalogError> {
        let view = self.view(name)?;
        self.check_dependents(name, cascade)?;
        let mut inner = self.inner.write();
        let mut dropped = inner.remove_readers(name);
        inner.remove_view(&view);
        dropped.push(view);
        Ok(dropped)
    }
}
