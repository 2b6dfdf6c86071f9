//! A running continuous view: its plan, its state, and its operator task.

use std::sync::Arc;

use datafusion::catalog::view::ViewTable;
use datafusion::datasource::TableProvider;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use super::change::ChangeBatch;
use super::operator::aggregate::AggregateOperator;
use super::operator::transform::DerivedStreamTable;
use super::{Message, VIEW_QUEUE_BATCHES, Work};
use crate::ingest::IngestError;
use crate::planner::IncrementalPlan;
use crate::push::{Notifier, Subscribers, Subscription};
use crate::window::{Ttl, WindowError};

/// Finds the key column `ttl.column` names; it must be a grouped timestamp.
fn resolve_ttl(plan: &IncrementalPlan, ttl: Ttl) -> Result<(Ttl, usize), WindowError> {
    let found = plan.key_outputs.iter().find(|(name, _)| *name == ttl.column).map(|(_, i)| *i);
    let is_time = |i: usize| {
        matches!(
            plan.state_schema.field(i).data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(..) | datafusion::arrow::datatypes::DataType::Date32
        )
    };
    match found {
        Some(i) if is_time(i) => Ok((ttl, i)),
        _ => {
            let candidates: Vec<&str> =
                plan.key_outputs.iter().filter(|(_, i)| is_time(*i)).map(|(name, _)| name.as_str()).collect();
            Err(WindowError::InvalidOption(format!(
                "ttl_column \"{}\" must be a grouped timestamp column of the view; its grouped timestamp columns are: {}",
                ttl.column,
                if candidates.is_empty() { "none".to_string() } else { candidates.join(", ") }
            )))
        }
    }
}

/// What a view was declared as.
#[derive(Debug, Clone)]
pub struct ViewDefinition {
    /// Its query, as SQL.
    pub query: String,
    /// Its `WITH (...)` options, as given.
    pub options: Vec<(String, String)>,
    /// Its retention, from the options.
    pub ttl: Option<Ttl>,
    /// The channel its changes are announced on (`notify`), if any.
    pub notify: Option<String>,
}

/// A TTL resolved to the key column it reads.
type ResolvedTtl = Option<(Ttl, usize)>;

/// One continuous view, running.
#[derive(Debug)]
pub struct ViewRuntime {
    id: u64,
    name: String,
    definition: String,
    options: Mutex<Vec<(String, String)>>,
    ttl: Mutex<ResolvedTtl>,
    /// The last sliding-window step edge and TTL cutoff expired at.
    expired_at: Mutex<(i64, i64)>,
    plan: Arc<IncrementalPlan>,
    table: Arc<dyn TableProvider>,
    sender: mpsc::Sender<Message>,
    stop: CancellationToken,
    /// Rows merged, and when the last merge was.
    traffic: crate::observe::Traffic,
    /// How long each write took to apply, from prepare to visible.
    apply: crate::observe::Histogram,
    /// The views that read this one.
    readers: parking_lot::RwLock<Vec<Arc<ViewRuntime>>>,
    /// Who is told of each epoch's changes.
    outbox: Arc<Outbox>,
}

/// Where a view's changes go besides the views that read it: its
/// SUBSCRIBErs, and a NOTIFY channel.
#[derive(Debug)]
struct Outbox {
    view: String,
    subscribers: Subscribers,
    notify: Option<(String, Arc<Notifier>)>,
}

impl Outbox {
    /// Whether anyone wants the view's changes.
    fn wanted(&self) -> bool {
        self.notify.is_some() || !self.subscribers.is_empty()
    }

    /// Hands an epoch's changes to the subscribers and the channel.
    fn publish(&self, changes: &ChangeBatch) {
        if changes.is_empty() {
            return;
        }
        self.subscribers.publish(changes);
        if let Some((channel, notifier)) = &self.notify {
            let payload = crate::push::notify::changes_payload(&self.view, changes);
            if let Err(e) = notifier.notify(0, channel, &payload) {
                warn!(view = %self.view, error = %e, "could not notify the view's channel");
            }
        }
    }
}

impl ViewRuntime {
    /// Starts the view's operator task on `tasks`; it ends when the view is
    /// dropped or `shutdown` fires. Its `notify` channel goes through `notifier`.
    pub fn start(
        id: u64,
        name: &str,
        definition: ViewDefinition,
        plan: IncrementalPlan,
        (tasks, shutdown): (&TaskTracker, &CancellationToken),
        notifier: &Arc<Notifier>,
    ) -> Result<Arc<Self>, WindowError> {
        if definition.notify.is_some() && plan.emit.is_none() {
            return Err(WindowError::Unsupported(
                "a view that sorts, limits or uses window functions cannot notify; drop ORDER BY/LIMIT from it".into(),
            ));
        }
        let outbox = Arc::new(Outbox {
            view: name.to_string(),
            subscribers: Subscribers::default(),
            notify: definition.notify.clone().map(|channel| (channel, notifier.clone())),
        });
        let ttl = match definition.ttl {
            Some(ttl) => Some(resolve_ttl(&plan, ttl)?),
            None => None,
        };
        let plan = Arc::new(plan);
        let operator = AggregateOperator::new(plan.clone());
        let table: Arc<dyn TableProvider> = match plan.transform {
            Some(_) => Arc::new(DerivedStreamTable::new(name, operator.output_schema())),
            None => Arc::new(ViewTable::new(plan.upper.clone(), Some(definition.query.clone()))),
        };
        let (sender, receiver) = mpsc::channel(VIEW_QUEUE_BATCHES);
        let stop = shutdown.child_token();
        let span = info_span!("view", name = %name);
        tasks.spawn(run_operator(receiver, operator, outbox.clone(), stop.clone()).instrument(span));
        Ok(Arc::new(Self {
            id,
            name: name.to_string(),
            definition: definition.query,
            options: Mutex::new(definition.options),
            ttl: Mutex::new(ttl),
            expired_at: Mutex::new((i64::MIN, i64::MIN)),
            plan,
            table,
            sender,
            stop,
            traffic: Default::default(),
            apply: crate::observe::Histogram::latency(),
            readers: parking_lot::RwLock::new(Vec::new()),
            outbox,
        }))
    }

    /// The view's `WITH (...)` options, as a checkpoint saves them.
    pub fn options(&self) -> Vec<(String, String)> {
        self.options.lock().clone()
    }

    /// Whether late events are kept from this view.
    pub fn event_windowed(&self) -> bool {
        self.plan.event_windowed
    }

    /// The view's sliding window, if it has one.
    pub fn sliding(&self) -> Option<&crate::window::Sliding> {
        self.plan.windowing.sliding.as_ref()
    }

    /// The view's TTL, if it has one.
    pub fn ttl(&self) -> Option<Ttl> {
        self.ttl.lock().as_ref().map(|(t, _)| t.clone())
    }

    /// Sets (or, with `None`, removes) the view's TTL.
    pub fn set_ttl(&self, ttl: Option<Ttl>) -> Result<(), WindowError> {
        if ttl.is_some() && !self.readers.read().is_empty() {
            return Err(WindowError::Unsupported(format!(
                "views read \"{}\", and cannot follow the groups a TTL would expire; drop them first",
                self.name
            )));
        }
        let resolved = match ttl {
            Some(ttl) => Some(resolve_ttl(&self.plan, ttl)?),
            None => None,
        };
        let mut options = self.options.lock();
        options.retain(|(k, _)| k != "ttl" && k != "ttl_column");
        if let Some((ttl, _)) = &resolved {
            options.push(("ttl".into(), format!("{} microseconds", ttl.ttl)));
            options.push(("ttl_column".into(), ttl.column.clone()));
        }
        *self.ttl.lock() = resolved;
        self.expired_at.lock().1 = i64::MIN;
        Ok(())
    }

    /// Removes the sliding window's expired steps and the groups past the
    /// view's TTL at time `now`; returns how many groups went. A sweep
    /// costs a pass over the groups, so it runs only when a step has left
    /// the window, or the TTL cutoff has moved by 1% of the TTL (at least a
    /// second) since the last one.
    pub fn expire(&self, now: i64) -> usize {
        let mut removed = 0;
        let mut expire = |key: usize, min: i64| match self.plan.state.lock().expire_before(key, min) {
            Ok(n) => removed += n,
            Err(e) => warn!(view = %self.name, error = %e, "expiring groups failed"),
        };
        let (mut last_step, mut last_cutoff) = *self.expired_at.lock();
        if let (Some(sliding), Some(step_key)) = (&self.plan.windowing.sliding, self.plan.step_key) {
            let oldest = sliding.oldest_live_step(now);
            if oldest > last_step {
                expire(step_key, oldest);
                last_step = oldest;
            }
        }
        let ttl = self.ttl.lock().clone();
        if let Some((ttl, key)) = ttl {
            let cutoff = now.saturating_sub(ttl.ttl);
            if cutoff.saturating_sub(last_cutoff) >= (ttl.ttl / 100).max(1_000_000) {
                expire(key, cutoff);
                last_cutoff = cutoff;
            }
        }
        *self.expired_at.lock() = (last_step, last_cutoff);
        removed
    }

    /// Whether the view is a derived stream (a transform): it passes its
    /// stream's events on and keeps nothing.
    pub fn is_transform(&self) -> bool {
        self.plan.transform.is_some()
    }

    /// Whether the view reads its input's output stream (`output_of('v')`).
    pub fn reads_output_of(&self) -> bool {
        self.plan.output_of
    }

    /// Whether the view has no aggregates: it keeps the rows it selects,
    /// which may repeat, so no columns are a key of its rows.
    pub fn keeps_rows(&self) -> bool {
        self.plan.state_schema.index_of(crate::planner::ROW_COUNT).is_ok()
    }

    /// The output columns that hold the view's whole group key, if every
    /// key column is one (what `output_of` pairs rows by).
    pub fn output_keys(&self) -> Option<Vec<usize>> {
        let schema = self.output_schema();
        let mut keys = Vec::new();
        let mut covered = std::collections::BTreeSet::new();
        for (name, key) in &self.plan.key_outputs {
            if let Ok(i) = schema.index_of(name) {
                keys.push(i);
                covered.insert(*key);
            }
        }
        (covered.len() == self.plan.layout.group_columns).then_some(keys)
    }

    /// The view's changes as its output stream (`output_of`): the −1/+1
    /// rows paired by group key into `(old, new, delta)` rows.
    pub fn output_stream(&self, changes: &ChangeBatch) -> Result<Option<ChangeBatch>, IngestError> {
        let failed = |e: datafusion::error::DataFusionError| IngestError::ViewFailed {
            view: self.name.clone(),
            source: Arc::new(e),
        };
        let Some(keys) = self.output_keys() else {
            return Err(failed(datafusion::error::DataFusionError::Internal(
                "output_of a view whose group key is not among its columns".into(),
            )));
        };
        let out = super::operator::output_of::schema(&self.output_schema());
        super::operator::output_of::pair(changes, &keys, &out)
            .map_err(|e| failed(datafusion::error::DataFusionError::ArrowError(Box::new(e), None)))
    }

    /// The view's number, which names its state on disk.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The view's groups.
    pub fn state(&self) -> &Arc<parking_lot::Mutex<crate::state::GroupedState>> {
        &self.plan.state
    }

    /// The view's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream the view reads.
    pub fn stream_name(&self) -> &str {
        &self.plan.stream
    }

    /// The view's incremental plan (what `EXPLAIN VIEW` shows).
    pub fn plan(&self) -> &Arc<IncrementalPlan> {
        &self.plan
    }

    /// The tables and views the view's events are joined with.
    pub fn lookups(&self) -> &[crate::planner::Lookup] {
        &self.plan.lookups
    }

    /// The tables the view's events are joined with (its lookups that are
    /// tables), whose write locks the stream's writers take.
    pub fn looked_up_tables(&self) -> impl Iterator<Item = &Arc<crate::table::TableEntry>> {
        self.plan.lookups.iter().filter_map(|l| match l {
            crate::planner::Lookup::Table(table) => Some(table),
            crate::planner::Lookup::View(_) => None,
        })
    }

    /// Every relation whose changes feed the view (several for a join of
    /// tables).
    pub fn inputs(&self) -> &[String] {
        &self.plan.inputs
    }

    /// The tables of a join of tables.
    pub fn joined_tables(&self) -> &[Arc<crate::table::TableEntry>] {
        &self.plan.joined_tables
    }

    /// The view's query, as SQL.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// The view as a DataFusion table: its query over its state.
    pub fn table(&self) -> Arc<dyn TableProvider> {
        self.table.clone()
    }

    /// Rows merged so far.
    pub fn rows_in(&self) -> u64 {
        self.traffic.rows()
    }

    /// Rows merged so far, and when the last merge was.
    pub fn traffic(&self) -> &crate::observe::Traffic {
        &self.traffic
    }

    /// How long writes took to apply, from prepare to visible to readers.
    pub fn apply_latency(&self) -> &crate::observe::Histogram {
        &self.apply
    }

    /// Groups held.
    pub fn groups(&self) -> usize {
        self.plan.state.lock().groups()
    }

    /// Bytes of state held, as the accumulators estimate them.
    pub fn state_bytes(&self) -> usize {
        self.plan.state.lock().size_bytes()
    }

    /// Runs the view's pre-aggregation over `changes`, leaving the state as
    /// it is; [`Self::merge`] applies the result.
    /// `source` is the relation that changed.
    pub async fn prepare(&self, source: &str, changes: ChangeBatch) -> Result<Prepared, IngestError> {
        let started = std::time::Instant::now();
        let rows = changes.len() as u64;
        let epoch = changes.epoch;
        let input = self.plan.inputs.iter().position(|n| n == source);
        debug_assert!(input.is_some(), "view \"{}\" was sent a change of \"{source}\"", self.name);
        let input = input.unwrap_or(0);
        let work = self.ask(|ack| Message::Prepare { changes, input, ack }).await?;
        // A derived stream counts the rows that passed it.
        let rows = match &work {
            Work::Rows(out) => out.iter().map(|b| b.num_rows() as u64).sum(),
            _ => rows,
        };
        Ok(Prepared { work, rows, epoch, started })
    }

    /// Merges what [`Self::prepare`] made, and returns once readers can see
    /// it; when views read this one, with how this view's rows changed.
    pub async fn merge(&self, prepared: Prepared) -> Result<Option<ChangeBatch>, IngestError> {
        let Prepared { work, rows, epoch, started } = prepared;
        let emit = (!self.readers.read().is_empty() || self.outbox.wanted()).then_some(epoch);
        let changes = self.ask(|ack| Message::Merge { work, emit, ack }).await?;
        if rows > 0 {
            self.traffic.count(rows, 0);
        }
        self.apply.observe_duration(started.elapsed());
        Ok(changes)
    }

    /// Subscribes to the view's changes, with (`snapshot`) its contents as
    /// of `epoch` first. The subscriber is added between two merges, so it
    /// misses no change and sees none twice.
    pub async fn subscribe(&self, snapshot: bool, epoch: u64) -> Result<Subscription, IngestError> {
        if let Some(why) = self.unsubscribable() {
            return Err(IngestError::Internal(why));
        }
        self.ask(|ack| Message::Subscribe { snapshot, epoch, ack }).await
    }

    /// Adds a follower of the view's changes (see [`crate::push::Follower`]).
    pub fn follow(&self, follower: Arc<dyn crate::push::Follower>) -> u64 {
        self.outbox.subscribers.follow(follower)
    }

    /// Removes follower `id`.
    pub fn unfollow(&self, id: u64) {
        self.outbox.subscribers.unfollow(id);
    }

    /// Why the view's changes cannot be followed, if they cannot.
    pub fn unsubscribable(&self) -> Option<String> {
        self.plan.emit.is_none().then(|| {
            format!(
                "continuous view \"{}\" sorts, limits or uses window functions, so its changes cannot be followed; subscribe to a view without ORDER BY/LIMIT, and sort when you read",
                self.name
            )
        })
    }

    /// The views that read this one, as a snapshot.
    pub fn readers(&self) -> Vec<Arc<ViewRuntime>> {
        self.readers.read().clone()
    }

    /// The views that read this one, and those that read them, however
    /// deep.
    pub fn downstream(&self) -> Vec<Arc<ViewRuntime>> {
        let mut out: Vec<Arc<ViewRuntime>> = Vec::new();
        let mut pending = self.readers();
        while let Some(view) = pending.pop() {
            if !out.iter().any(|v| Arc::ptr_eq(v, &view)) {
                pending.extend(view.readers());
                out.push(view);
            }
        }
        out
    }

    /// The tables this view and every view downstream of it look rows up
    /// in: a writer of what feeds it holds their write locks, so that the
    /// log's order is the order the lookups saw.
    pub fn looked_up_tables_downstream(&self) -> Vec<Arc<crate::table::TableEntry>> {
        let mut tables: Vec<_> = self.looked_up_tables().cloned().collect();
        for view in self.downstream() {
            tables.extend(view.looked_up_tables().cloned());
        }
        tables
    }

    /// Wires a view that reads this one.
    pub fn add_reader(&self, view: Arc<ViewRuntime>) {
        self.readers.write().push(view);
    }

    /// Unwires a view that read this one.
    pub fn remove_reader(&self, name: &str) {
        self.readers.write().retain(|v| v.name() != name);
    }

    /// Why other views cannot read this one, if they cannot.
    pub fn unreadable_by_views(&self) -> Option<String> {
        if self.plan.emit.is_none() {
            return Some(format!(
                "continuous view \"{}\" sorts, limits or uses window functions, so other views cannot follow it; read its source instead, or drop ORDER BY/LIMIT from it and put them in the view that reads it",
                self.name
            ));
        }
        if self.plan.windowing.sliding.is_some() || self.plan.windowing.session.is_some() || self.ttl().is_some() {
            return Some(format!(
                "continuous view \"{}\" has a sliding or session window or a TTL, whose expiry other views cannot follow yet; read its source instead",
                self.name
            ));
        }
        None
    }

    /// The view's output columns.
    pub fn output_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        crate::catalog::types::all_nullable(&self.table.schema())
    }

    /// Whether the view's state is derived from relations that keep their
    /// rows (a table): then it is rebuilt from them at recovery, not saved.
    pub fn derived(&self) -> bool {
        self.plan.retract.is_some()
    }

    /// The view as a checkpoint records it (without its files).
    pub fn record(&self) -> crate::checkpoint::manifest::ViewRecord {
        crate::checkpoint::manifest::ViewRecord {
            id: self.id,
            name: self.name.clone(),
            query: self.definition.clone(),
            options: self.options(),
            files: Vec::new(),
        }
    }

    /// Sends the operator a message and waits for its answer.
    async fn ask<T>(&self, message: impl FnOnce(super::Ack<T>) -> Message) -> Result<T, IngestError> {
        let (ack, done) = oneshot::channel();
        let gone = || IngestError::ViewStopped(self.name.clone());
        self.sender.send(message(ack)).await.map_err(|_| gone())?;
        match done.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(source)) => Err(IngestError::ViewFailed { view: self.name.clone(), source }),
            Err(_) => Err(gone()),
        }
    }

    /// Forgets every group.
    pub fn truncate(&self) -> datafusion::common::Result<()> {
        if !self.readers.read().is_empty() || self.derived() {
            return Err(datafusion::error::DataFusionError::NotImplemented(format!(
                "cannot truncate \"{}\": it reads a table or a view, or views read it, and they would no longer agree",
                self.name
            )));
        }
        self.plan.state.lock().clear()
    }

    /// Stops the operator; queued writes fail with "view stopped", and its
    /// subscriptions end.
    pub fn stop(&self) {
        self.stop.cancel();
        self.outbox.subscribers.close_all();
    }
}

/// A view's prepared changes, ready to merge.
#[derive(Debug)]
pub struct Prepared {
    work: Work,
    rows: u64,
    epoch: u64,
    started: std::time::Instant,
}

async fn run_operator(
    mut receiver: mpsc::Receiver<Message>,
    operator: AggregateOperator,
    outbox: Arc<Outbox>,
    stop: CancellationToken,
) {
    loop {
        // Biased: a message already queued is handled before a stop, so a
        // write that was accepted is never cut in half by shutdown.
        let message = tokio::select! {
            biased;
            m = receiver.recv() => m,
            _ = stop.cancelled() => break,
        };
        let failed = |e: datafusion::error::DataFusionError| {
            warn!(error = %e, "view failed to apply a batch");
            Arc::new(e)
        };
        match message {
            Some(Message::Prepare { changes, input, ack }) => {
                let _ = ack.send(operator.prepare(changes, input).await.map_err(failed));
            }
            Some(Message::Merge { work, emit: None, ack }) => {
                let _ = ack.send(operator.merge(&work).map(|()| None).map_err(failed));
            }
            Some(Message::Merge { work, emit: Some(epoch), ack }) => {
                let merged = operator.merge_emitting(&work, epoch).await;
                if let Ok(Some(changes)) = &merged {
                    outbox.publish(changes);
                }
                let _ = ack.send(merged.map_err(failed));
            }
            Some(Message::Subscribe { snapshot, epoch, ack }) => {
                let contents = match snapshot {
                    true => operator.snapshot().await.map(Some),
                    false => Ok(None),
                };
                let schema = operator.output_schema();
                let _ = ack.send(
                    contents.map(|rows| outbox.subscribers.add(&outbox.view, schema, rows, epoch)).map_err(failed),
                );
            }
            None => break,
        }
    }
}
