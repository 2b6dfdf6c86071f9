//! The engine: what every connection shares. The catalog, the DataFusion
//! session for reads, the data directory, and the tracked tasks of the
//! running views. Starting an engine on a data directory recovers it: the
//! newest good checkpoint is loaded, the insert log after it replayed, and
//! Kafka consumers resume from the checkpoint's offsets.

use std::sync::Arc;

use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::Query;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::Config;
use crate::catalog::relations as pipelinedb;
use crate::catalog::schema_provider::CatalogSchema;
use crate::catalog::{Catalog, Relation};
use crate::checkpoint::manifest::{CatalogChange, ViewRecord};
use crate::checkpoint::{CheckpointError, CheckpointStats, Durability};
use crate::clock::Clock;
use crate::error::{EddyError, Result};
use crate::ingest::kafka::Kafka;
use crate::ingest::kafka::relations as kafka_relations;
use crate::planner::plan_view;
use crate::query::context::{ExtraSchemas, read_state};
use crate::server::recovery;
use crate::stream::{ViewDefinition, ViewRuntime};
use crate::window::ViewOptions;

/// Shared server state.
#[derive(Debug)]
pub struct Engine {
    /// Names of streams and views.
    pub catalog: Arc<Catalog>,
    /// Kafka brokers and consumers.
    pub kafka: Arc<Kafka>,
    /// Kafka sinks.
    pub sinks: Arc<crate::sink::Sinks>,
    /// The configuration the server started with.
    pub config: Config,
    /// The sessions a CancelRequest may reach.
    pub cancels: super::cancel::Cancels,
    /// Who LISTENs on which channel.
    pub notifier: Arc<crate::push::Notifier>,
    /// Connections and statement latencies.
    pub sessions: Arc<crate::observe::Sessions>,
    read_state: SessionState,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// The views' operator tasks, and what stops them. Views stop last, on
    /// their own token: every write still in flight at shutdown must reach
    /// every view before the last checkpoint.
    view_tasks: TaskTracker,
    view_stop: CancellationToken,
    /// Held by one DDL statement at a time (see `ddl.rs`).
    pub(super) ddl: tokio::sync::Mutex<()>,
}

impl Engine {
    /// An engine on `config.data_dir`, recovered from it if it holds a
    /// checkpoint; with no data directory, an empty engine in memory.
    pub async fn new(config: Config, tasks: TaskTracker, shutdown: CancellationToken) -> Result<Arc<Self>> {
        let (durability, loaded) = match &config.data_dir {
            Some(dir) => Durability::open(dir)?,
            None => (Durability::ephemeral(), None),
        };
        let engine = Self::empty(config, durability.clone(), tasks, shutdown)?;
        let log_lsn = loaded.as_ref().map_or(0, |l| l.manifest.log_lsn);
        let checkpoint = loaded.as_ref().map(|l| l.manifest.seq);
        if let Some(loaded) = loaded {
            recovery::restore(&engine, loaded).await?;
        }
        let (records, last_lsn) = durability.replay_log(log_lsn, checkpoint.is_some())?;
        let replayed = records.len();
        let rows = recovery::replay(&engine, records).await?;
        // The log may have dropped a relation a sink read (with CASCADE).
        engine.sinks.prune();
        durability.start_log(last_lsn + 1)?;
        if durability.is_persistent() {
            engine.checkpoint().await?;
            tracing::info!(?checkpoint, replayed, rows, "recovered the data directory");
        }
        engine.expire_windows();
        engine.kafka.start_restored(&engine.catalog);
        engine.sinks.start_all();
        engine.spawn_checkpointer();
        engine.spawn_expiry();
        engine.spawn_state_measure();
        Ok(engine)
    }

    fn empty(
        config: Config,
        durability: Arc<Durability>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>> {
        let clock = match config.manual_clock {
            Some(start) => Clock::manual(start),
            None => Clock::system(),
        };
        let catalog = Arc::new(Catalog::new(durability, clock.clone()));
        let kafka = Arc::new(Kafka::new(tasks.clone(), shutdown.clone()));
        let sinks = Arc::new(crate::sink::Sinks::new(catalog.clone(), tasks.clone(), shutdown.clone()));
        let sink_rows = {
            let sinks = sinks.clone();
            move || crate::sink::relations::sinks(&sinks)
        };
        let extra: ExtraSchemas = vec![
            (kafka_relations::SCHEMA, Arc::new(kafka_relations::schema(kafka.clone()))),
            (pipelinedb::SCHEMA, Arc::new(pipelinedb::schema(catalog.clone(), sink_rows))),
        ];
        let schema = Arc::new(CatalogSchema::new(catalog.clone()));
        let read_state = read_state(schema, extra, config.query_partitions, config.max_query_memory)?;
        let users = config.auth.users.iter().map(|u| (u.name.clone(), u.read_only));
        let roles = crate::pg_catalog::roles::of_users(users);
        let mut read_state = crate::pg_catalog::register(read_state, catalog.clone(), roles)?;
        crate::query::pg_functions::register(&mut read_state, catalog.clone())?;
        crate::window::functions::register_clock(&mut read_state, clock, catalog.clone())?;
        let notifier = Arc::new(crate::push::Notifier::default());
        crate::query::pg_notify::register(&mut read_state, notifier.clone())?;
        let (view_tasks, view_stop) = (TaskTracker::new(), CancellationToken::new());
        let cancels = super::cancel::Cancels::default();
        let ddl = tokio::sync::Mutex::new(());
        Ok(Arc::new(Self {
            catalog,
            kafka,
            sinks,
            config,
            cancels,
            notifier,
            sessions: Default::default(),
            read_state,
            tasks,
            shutdown,
            view_tasks,
            view_stop,
            ddl,
        }))
    }

    /// Stops every view's operator once the writes queued for it are
    /// merged, and waits for them: the last step of shutdown.
    pub async fn stop_views(&self, grace: std::time::Duration) {
        self.view_stop.cancel();
        self.view_tasks.close();
        if tokio::time::timeout(grace, self.view_tasks.wait()).await.is_err() {
            tracing::warn!(remaining = self.view_tasks.len(), "views still running after the shutdown grace period");
        }
    }

    /// Tells the views to stop without waiting (a server dropped without
    /// shutting down).
    pub fn abandon_views(&self) {
        self.view_stop.cancel();
    }

    /// The DataFusion session client queries are planned in.
    pub fn read_state(&self) -> &SessionState {
        &self.read_state
    }

    /// A DataFusion session of its own for running one client query.
    pub fn session_state(&self) -> SessionState {
        self.read_state.clone()
    }

    /// Plans `query` as view `name` with its `WITH (...)` options and starts
    /// its operator; then logs the view (see `ddl.rs`), publishes it, and
    /// checkpoints so that a restart is quick.
    pub async fn create_view(&self, name: &str, query: &Query, options: Vec<(String, String)>) -> Result<()> {
        let _ddl = self.ddl_lock().await;
        self.catalog.check_free(name)?;
        let durability = self.catalog.durability().clone();
        let id = durability.next_view_id();
        let record =
            ViewRecord { id, name: name.into(), query: query.to_string(), options: options.clone(), files: Vec::new() };
        self.start_and_publish(id, name, query, options, Some(record)).await?;
        self.ddl_done().await
    }

    /// Makes a started view visible: a view over a table first takes in
    /// the table's rows (backfill), holding the table's write lock until
    /// it is published so that no write falls between; with `record`, the
    /// view's creation is logged first (a live `CREATE VIEW`).
    async fn publish_view(&self, view: &Arc<ViewRuntime>, record: Option<ViewRecord>) -> Result<()> {
        let durability = self.catalog.durability().clone();
        match self.catalog.relation(view.stream_name()) {
            Some(Relation::Table(table)) => {
                // A join of tables holds every one of them still: its first
                // table's rows are joined with the others as they are.
                let mut tables = view.joined_tables().to_vec();
                tables.push(table.clone());
                let _writes = crate::table::write::lock_tables(tables).await;
                let rows = table.rows().lock().snapshot()?;
                backfill(view, rows).await?;
                let _admitted = durability.admit().await;
                self.log_and_add(view, record).await
            }
            Some(Relation::View(upstream)) if !upstream.is_transform() && !view.reads_output_of() => {
                // Every write is held out while the view takes in what the
                // view it reads shows, so that none falls between.
                let _barrier = durability.barrier().await;
                let rows = self.read_view(&upstream).await?;
                backfill(view, rows).await?;
                self.log_and_add(view, record).await
            }
            // A stream, a derived stream or a view's output stream: nothing
            // to take in.
            _ => {
                let _admitted = durability.admit().await;
                self.log_and_add(view, record).await
            }
        }
    }

    /// Logs the view's creation (a live `CREATE VIEW`) and publishes it;
    /// the caller holds the checkpoint gate.
    async fn log_and_add(&self, view: &Arc<ViewRuntime>, record: Option<ViewRecord>) -> Result<()> {
        if let Some(record) = record {
            self.catalog.durability().log_change(&CatalogChange::CreateView(record)).await?;
        }
        self.catalog.add_view(view.clone())?;
        Ok(())
    }

    /// Every row `view` shows, as one batch of its output schema.
    async fn read_view(&self, view: &Arc<ViewRuntime>) -> Result<datafusion::arrow::array::RecordBatch> {
        let source = datafusion::datasource::provider_as_source(view.table());
        let plan = datafusion::logical_expr::LogicalPlanBuilder::scan(view.name(), source, None)?.build()?;
        let batches = datafusion::prelude::DataFrame::new(self.session_state(), plan).collect().await?;
        let schema = view.output_schema();
        let arrow = |e| EddyError::from(datafusion::error::DataFusionError::from(e));
        let all = datafusion::arrow::compute::concat_batches(&view.table().schema(), &batches).map_err(arrow)?;
        datafusion::arrow::array::RecordBatch::try_new(schema, all.columns().to_vec()).map_err(arrow)
    }

    /// Plans and starts view `name` (number `id`) and adds it to the catalog.
    pub async fn start_view(
        &self,
        id: u64,
        name: &str,
        query: &Query,
        options: Vec<(String, String)>,
    ) -> Result<Arc<ViewRuntime>> {
        self.start_and_publish(id, name, query, options, None).await
    }

    /// Plans and starts a view, then publishes it (logging `record` first,
    /// if given); a view that cannot be published is stopped.
    async fn start_and_publish(
        &self,
        id: u64,
        name: &str,
        query: &Query,
        options: Vec<(String, String)>,
        record: Option<ViewRecord>,
    ) -> Result<Arc<ViewRuntime>> {
        let view = self.launch_view(id, name, query, options).await?;
        if let Err(e) = self.publish_view(&view, record).await {
            view.stop();
            return Err(e);
        }
        Ok(view)
    }

    /// Plans view `name` and starts its operator, without publishing it.
    async fn launch_view(
        &self,
        id: u64,
        name: &str,
        query: &Query,
        options: Vec<(String, String)>,
    ) -> Result<Arc<ViewRuntime>> {
        let parsed = ViewOptions::parse(&options).map_err(crate::planner::PlanError::from)?;
        let plan = plan_view(self.catalog.clone(), name, query, &parsed).await?;
        let definition = ViewDefinition { query: query.to_string(), options, ttl: parsed.ttl, notify: parsed.notify };
        Ok(ViewRuntime::start(id, name, definition, plan, (&self.view_tasks, &self.view_stop), &self.notifier)
            .map_err(crate::planner::PlanError::from)?)
    }

    /// Takes a checkpoint now (nothing happens without a data directory).
    pub async fn checkpoint(&self) -> Result<CheckpointStats, CheckpointError> {
        self.catalog.durability().checkpoint(|files, force_full| recovery::capture(self, files, force_full)).await
    }

    /// Makes a catalog change durable before it is acknowledged.
    pub async fn ddl_done(&self) -> Result<()> {
        self.checkpoint().await.map_err(|e| {
            tracing::error!("checkpoint after a catalog change failed: {e}");
            EddyError::from(e)
        })?;
        Ok(())
    }

    /// Removes expired sliding-window steps and groups past their TTL.
    pub fn expire_windows(&self) -> usize {
        let now = self.catalog.clock().now_micros();
        self.catalog.views().iter().map(|v| v.expire(now)).sum()
    }

    fn spawn_expiry(self: &Arc<Self>) {
        self.spawn_periodic(tracing::info_span!("window-expiry"), self.config.expiry_interval, |engine| async move {
            let removed = engine.expire_windows();
            if removed > 0 {
                tracing::debug!(removed, "expired window groups");
            }
        });
    }

    /// Measures the state every view and table holds, for the memory
    /// budget writers check (off the async workers: a table's estimate
    /// walks its rows).
    fn spawn_state_measure(self: &Arc<Self>) {
        let budget = self.catalog.durability().budget().clone();
        budget.set_limit(self.config.max_state_memory);
        if self.config.max_state_memory.is_none() {
            return;
        }
        let every = crate::observe::budget::MEASURE_EVERY;
        self.spawn_periodic(tracing::info_span!("state-measure"), every, |engine| async move {
            let catalog = engine.catalog.clone();
            let measure = move || {
                let views: usize = catalog.views().iter().map(|v| v.state_bytes()).sum();
                let tables: usize = catalog.tables().iter().map(|t| t.rows().lock().size_bytes()).sum();
                (views + tables) as u64
            };
            match tokio::task::spawn_blocking(measure).await {
                Ok(used) => engine.catalog.durability().budget().record(used),
                Err(e) => tracing::warn!("measuring the state failed: {e}"),
            }
        });
    }

    fn spawn_checkpointer(self: &Arc<Self>) {
        if !self.catalog.durability().is_persistent() {
            return;
        }
        self.spawn_periodic(tracing::info_span!("checkpointer"), self.config.checkpoint_interval, |engine| async move {
            match engine.checkpoint().await {
                Ok(stats) => tracing::debug!(seq = stats.seq, paused = ?stats.paused, total = ?stats.total, groups = stats.groups_written, "checkpoint"),
                Err(e) => tracing::warn!("checkpoint failed (the previous one still stands): {e}"),
            }
        });
    }

    /// A tracked task running `work` every `every` (first after one
    /// interval) until shutdown.
    fn spawn_periodic<F, Fut>(self: &Arc<Self>, span: tracing::Span, every: std::time::Duration, work: F)
    where
        F: Fn(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let engine = self.clone();
        let stop = self.shutdown.clone();
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    work(engine.clone()).await;
                }
            },
            span,
        ));
    }
}

/// Gives a new view the rows its source already holds.
async fn backfill(view: &Arc<ViewRuntime>, rows: datafusion::arrow::array::RecordBatch) -> Result<()> {
    let prepared = view.prepare(view.stream_name(), crate::stream::change::ChangeBatch::inserts(rows, 0)).await?;
    view.merge(prepared).await?;
    Ok(())
}
