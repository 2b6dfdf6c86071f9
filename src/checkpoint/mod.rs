//! Durability: the insert log, checkpoints, and recovery after a crash.
//!
//! The data directory holds:
//!
//! - `wal/`: the insert log ([`log`]), where every `INSERT` and `COPY` is
//!   fsynced before it is applied and acknowledged;
//! - `state/<view id>/`: each view's state, as Arrow IPC files ([`state_file`]);
//! - `checkpoint-<seq>.json`: one manifest per checkpoint ([`manifest`]): the
//!   catalog, the source positions, and the state files that go with them.
//!
//! **The cut.** Every write to the views (a logged statement, or a Kafka
//! micro-batch together with its offsets) holds the *gate* for reading. A
//! checkpoint takes it for writing: that is the barrier. It does not queue
//! for it (a queued writer would stop every new write behind the writes
//! already admitted: one long COPY would stall every stream); it takes the
//! gate at a moment when no write is admitted, and queues only if no such
//! moment comes within [`BARRIER_PATIENCE`]. While nothing moves, the
//! checkpoint notes the
//! insert log's last LSN and the Kafka offsets, and takes each view's
//! changed groups. The gate then opens, and the files are written while
//! ingestion goes on. The state in a checkpoint is therefore exactly the
//! effect of the log up to its LSN and of Kafka up to its offsets; recovery
//! loads it and replays the log after the LSN, and Kafka resumes from the
//! offsets: nothing lost, nothing counted twice.
//!
//! **Increments.** A view writes only the groups changed since the last
//! checkpoint (a delta), until the deltas add up to as many groups as the
//! view holds; then it writes a full snapshot, and older files go.
//!
//! **Keeping two.** The last two checkpoints, and the log since the older,
//! are kept: if the newest is damaged, recovery falls back to the older and
//! replays more of the log.

/// How long a checkpoint looks for a moment between writes before it
/// queues for the barrier, holding new writes back until it has it.
pub const BARRIER_PATIENCE: Duration = Duration::from_secs(10);

pub mod durable_epochs;
pub mod log;
pub mod log_format;
pub mod manifest;
pub mod state_file;
pub mod telemetry;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use tokio::sync::{Mutex as AsyncMutex, RwLock, RwLockReadGuard};

use self::log::{Commit, InsertLog};
use self::manifest::{ConsumerRecord, Manifest, StateFile, StreamRecord, ViewRecord};
use crate::state::StateSnapshot;

/// Errors of the data directory.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("{}", io_message(path, source))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file failed its checks.
    #[error("\"{}\" is damaged: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// State could not be encoded.
    #[error("could not encode state: {0}")]
    Encode(String),
    /// The server is shutting down.
    #[error("the insert log is closed because the server is shutting down")]
    LogClosed,
    /// A failed write could not be undone.
    #[error("the insert log cannot accept writes: {0}; restart the server once the disk is healthy")]
    LogBroken(String),
    /// No checkpoint can be loaded.
    #[error(
        "no usable checkpoint in \"{}\": {errors}. Eddy will not start on damaged state; move the data directory aside to start empty, or restore it from a backup",
        dir.display()
    )]
    Unrecoverable {
        /// The data directory.
        dir: PathBuf,
        /// What was wrong with each checkpoint.
        errors: String,
    },
    /// Another server has the data directory.
    #[error("the data directory \"{}\" is in use by another eddy process; stop it or use another --data-dir", .0.display())]
    Locked(PathBuf),
    /// The catalog in a checkpoint could not be rebuilt.
    #[error("could not restore {0}")]
    Restore(String),
}

fn io_message(path: &Path, source: &std::io::Error) -> String {
    if source.raw_os_error() == Some(28) {
        format!(
            "could not write \"{}\": no space left on device; free disk space and retry (nothing was written)",
            path.display()
        )
    } else {
        format!("could not access \"{}\": {source}", path.display())
    }
}

impl CheckpointError {
    fn encode(e: impl std::fmt::Display) -> Self {
        CheckpointError::Encode(e.to_string())
    }

    /// The disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CheckpointError::Io { source, .. } if source.raw_os_error() == Some(28))
    }

    /// A copy, for telling several waiters about one failure.
    fn duplicate(&self) -> Self {
        match self {
            CheckpointError::Io { path, source } => CheckpointError::Io {
                path: path.clone(),
                source: source.raw_os_error().map_or_else(
                    || std::io::Error::new(source.kind(), source.to_string()),
                    std::io::Error::from_raw_os_error,
                ),
            },
            other => CheckpointError::LogBroken(other.to_string()),
        }
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io { path: path.to_path_buf(), source }
}

/// Makes a directory's entries (new and renamed files) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))
}

/// Writes a whole file and fsyncs it and its directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let outcome = (|| {
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, e));
    }
    match path.parent() {
        Some(dir) => fsync_dir(dir),
        None => Ok(()),
    }
}

/// What one checkpoint did.
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    /// Its number (0 when nothing is persisted).
    pub seq: u64,
    /// How long writes waited at the barrier.
    pub paused: Duration,
    /// The whole checkpoint.
    pub total: Duration,
    /// Groups written.
    pub groups_written: u64,
    /// Bytes of state written.
    pub bytes_written: u64,
}

/// What a checkpoint captures at the barrier, from the catalog and Kafka.
#[derive(Debug, Default)]
pub struct Capture {
    /// Streams.
    pub streams: Vec<StreamRecord>,
    /// Views with their state to write (`None`: unchanged since the last checkpoint).
    pub views: Vec<(ViewRecord, Option<StateSnapshot>)>,
    /// Tables with their rows to write (`None`: unchanged since the last checkpoint).
    pub tables: Vec<(manifest::TableRecord, Option<StateSnapshot>)>,
    /// Brokers.
    pub brokers: Vec<String>,
    /// Consumers and their offsets.
    pub consumers: Vec<ConsumerRecord>,
    /// Kafka sinks, with their outbox's events to write (`None`: its files
    /// stay as the record says; no batch: it is empty).
    pub sinks: Vec<(manifest::SinkRecord, Option<Vec<RecordBatch>>)>,
}

impl Capture {
    /// Nothing happened since `last` was taken at `log_lsn`: no checkpoint is needed.
    fn unchanged_since(&self, last: &Manifest, log_lsn: u64) -> bool {
        last.log_lsn == log_lsn
            && self.views.iter().all(|(_, s)| s.is_none())
            && self.tables.iter().all(|(_, s)| s.is_none())
            && self.tables.len() == last.tables.len()
            && self.tables.iter().zip(&last.tables).all(|((t, _), l)| t.id == l.id && t.name == l.name)
            && self.streams == last.streams
            && self.brokers == last.brokers
            && self.consumers == last.consumers
            && self.sinks.iter().all(|(_, s)| s.is_none())
            && self.sinks.iter().map(|(r, _)| r).eq(&last.sinks)
            && self.views.len() == last.views.len()
            && self.views.iter().zip(&last.views).all(|((v, _), l)| v.id == l.id && v.name == l.name)
    }
}

/// What the last checkpoints wrote.
#[derive(Debug, Default)]
struct Chain {
    /// The newest manifest number on disk (written or found).
    seq: u64,
    /// The last two good manifests, older first.
    kept: Vec<Manifest>,
    /// The next checkpoint writes every view in full (after a failed one).
    force_full: bool,
}

impl Chain {
    fn files(&self, view: u64) -> Option<&[StateFile]> {
        let newest = self.kept.last()?;
        let table = newest.tables.iter().find(|t| t.id == view).map(|t| t.files.as_slice());
        let outbox = newest.sinks.iter().filter_map(|s| s.outbox.as_ref()).find(|o| o.id == view);
        let outbox = outbox.map(|o| o.files.as_slice());
        newest.views.iter().find(|v| v.id == view).map(|v| v.files.as_slice()).or(table).or(outbox)
    }
}

#[derive(Debug)]
struct Store {
    root: PathBuf,
    log: OnceLock<InsertLog>,
    /// Shared with a checkpoint's writing task, which outlives its caller.
    chain: Arc<AsyncMutex<Chain>>,
    _lock: File,
}

/// The data directory, or nothing for an ephemeral server.
#[derive(Debug)]
pub struct Durability {
    gate: RwLock<()>,
    store: Option<Store>,
    next_view_id: AtomicU64,
    /// The last epoch given out: each write to a table is one.
    epoch: AtomicU64,
    /// The epochs a crash could still undo.
    durable: durable_epochs::DurableEpochs,
    /// Checkpoint and insert-log figures.
    telemetry: Arc<telemetry::Telemetry>,
    /// How much state writes may add (see `crate::observe::budget`).
    budget: Arc<crate::observe::MemoryBudget>,
}

/// A checkpoint found on disk, ready to load.
#[derive(Debug)]
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// Each view's state files, read and checked, in order.
    pub states: BTreeMap<u64, Vec<StateSnapshot>>,
}

impl Durability {
    /// Nothing on disk: state lives and dies with the process.
    pub fn ephemeral() -> Arc<Self> {
        Arc::new(Self {
            gate: RwLock::new(()),
            store: None,
            next_view_id: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            durable: Default::default(),
            telemetry: Default::default(),
            budget: Default::default(),
        })
    }

    /// Opens (creating if needed) the data directory, and finds the newest
    /// checkpoint whose files all pass their checks.
    pub fn open(root: &Path) -> Result<(Arc<Self>, Option<Loaded>), CheckpointError> {
        for dir in [root.to_path_buf(), root.join("wal"), root.join("state")] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        }
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(CheckpointError::Locked(root.to_path_buf()));
        }
        let (loaded, chain) = find_checkpoint(root)?;
        let next_view_id = loaded.as_ref().map_or(1, |l| l.manifest.next_view_id);
        let store = Store {
            root: root.to_path_buf(),
            log: OnceLock::new(),
            chain: Arc::new(AsyncMutex::new(chain)),
            _lock: lock,
        };
        let durability = Arc::new(Self {
            gate: RwLock::new(()),
            store: Some(store),
            next_view_id: AtomicU64::new(next_view_id),
            epoch: AtomicU64::new(0),
            durable: Default::default(),
            telemetry: Default::default(),
            budget: Default::default(),
        });
        Ok((durability, loaded))
    }

    /// Whether state is kept on disk.
    pub fn is_persistent(&self) -> bool {
        self.store.is_some()
    }

    /// The newest epoch given out.
    pub fn last_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// A number for a new write to a table: the epoch of its changes.
    pub fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The epoch of a write the insert log does not hold (a Kafka batch):
    /// durable only once a checkpoint holds it. Without a data directory
    /// nothing is durable, and nothing is waited for.
    pub fn next_unlogged_epoch(&self) -> u64 {
        let epoch = self.next_epoch();
        if self.store.is_some() {
            self.durable.hold(epoch);
        }
        epoch
    }

    /// Waits until no crash can undo the writes up to epoch `epoch`.
    pub async fn wait_durable(&self, epoch: u64) {
        self.durable.wait(epoch).await
    }

    /// The number of the checkpoint capture being taken (at the barrier),
    /// or of the last one.
    pub fn capture_number(&self) -> u64 {
        self.durable.capture()
    }

    /// The newest capture a completed checkpoint saved; `None` without a
    /// data directory, where nothing is saved (and nothing waits).
    pub fn saved_capture(&self) -> Option<u64> {
        self.store.as_ref().map(|_| self.durable.saved())
    }

    /// Woken at the end of each completed checkpoint.
    pub fn checkpoint_completed(&self) -> tokio::sync::futures::Notified<'_> {
        self.durable.completed()
    }

    /// The next relation number (views and tables), which names its files.
    pub fn next_view_id(&self) -> u64 {
        self.next_view_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The checkpoint barrier: the gate for writing, taken between writes
    /// (see the module doc).
    /// Holds every write to the views out until dropped (a checkpoint's
    /// barrier; also a view's backfill from another view). It waits for
    /// the writes already admitted.
    pub async fn barrier(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        let deadline = Instant::now() + BARRIER_PATIENCE;
        let mut wait = Duration::from_micros(200);
        while Instant::now() < deadline {
            if let Ok(barrier) = self.gate.try_write() {
                return barrier;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(5));
        }
        self.gate.write().await
    }

    /// Admits one write to the views; a checkpoint waits until it is done.
    pub async fn admit(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// The log records after `after`, to replay; and the last LSN found.
    /// `checkpointed` says a checkpoint was loaded, whose log segment must
    /// then be there.
    pub fn replay_log(&self, after: u64, checkpointed: bool) -> Result<(Vec<log::Record>, u64), CheckpointError> {
        match &self.store {
            Some(store) => log::replay(&store.root.join("wal"), after, checkpointed),
            None => Ok((Vec::new(), after)),
        }
    }

    /// Starts the insert log; its next record is `next_lsn`.
    pub fn start_log(&self, next_lsn: u64) -> Result<(), CheckpointError> {
        if let Some(store) = &self.store {
            let log = InsertLog::start(store.root.join("wal"), next_lsn, self.telemetry.clone())?;
            let _ = store.log.set(log);
        }
        Ok(())
    }

    /// Logs one statement's rows (already stamped) before they are applied.
    /// The caller holds [`Self::admit`]'s guard across this and the apply.
    pub async fn log_rows(&self, stream: &str, batches: &[RecordBatch], commit: Commit) -> Result<(), CheckpointError> {
        let Some(log) = self.store.as_ref().and_then(|s| s.log.get()) else {
            return Ok(());
        };
        let payload = log::encode_payload(stream, batches)?;
        log.append(payload, commit).await.map(|_| ())
    }

    /// Logs the rows of a transaction's relations as one record, so that a
    /// replay applies all of them or none; `parts` holds each relation's
    /// name and rows.
    pub async fn log_transaction(
        &self,
        parts: &[(String, Vec<RecordBatch>)],
        commit: Commit,
    ) -> Result<(), CheckpointError> {
        let Some(log) = self.store.as_ref().and_then(|s| s.log.get()) else {
            return Ok(());
        };
        let payload = match parts {
            [(relation, batches)] => log::encode_payload(relation, batches)?,
            _ => log::encode_transaction(parts)?,
        };
        log.append(payload, commit).await.map(|_| ())
    }

    /// Logs a catalog change, synced, before it is made visible. The caller
    /// holds [`Self::admit`]'s guard across this and the change, so that a
    /// checkpoint sees both or neither.
    pub async fn log_change(&self, change: &manifest::CatalogChange) -> Result<(), CheckpointError> {
        let Some(log) = self.store.as_ref().and_then(|s| s.log.get()) else {
            return Ok(());
        };
        log.append(log::encode_change(change)?, Commit::Sync).await.map(|_| ())
    }

    /// Notes a view number found in the log, so new views get larger ones.
    pub fn saw_view_id(&self, id: u64) {
        self.next_view_id.fetch_max(id + 1, Ordering::Relaxed);
    }

    /// Checkpoint and insert-log figures.
    pub fn telemetry(&self) -> &Arc<telemetry::Telemetry> {
        &self.telemetry
    }

    /// The state memory budget every writer checks before adding rows.
    pub fn budget(&self) -> &Arc<crate::observe::MemoryBudget> {
        &self.budget
    }

    /// Takes a checkpoint: `capture` runs at the barrier (writes paused) and
    /// says what to save; the files are written after the barrier lifts.
    pub async fn checkpoint<F>(&self, capture: F) -> Result<CheckpointStats, CheckpointError>
    where
        F: FnOnce(&dyn Fn(u64) -> Option<Vec<StateFile>>, bool) -> Result<Capture, CheckpointError>,
    {
        let Some(store) = &self.store else {
            return Ok(CheckpointStats::default());
        };
        let Some(log) = store.log.get() else {
            return Ok(CheckpointStats::default());
        };
        let started = Instant::now();
        let chain = store.chain.clone().lock_owned().await;
        let taken = async {
            let _barrier = self.barrier().await;
            let log_lsn = log.rotate().await?;
            let files = |id: u64| chain.files(id).map(<[StateFile]>::to_vec);
            let number = self.durable.next_capture();
            Ok::<_, CheckpointError>((log_lsn, capture(&files, chain.force_full)?, (self.last_epoch(), number)))
        };
        let (log_lsn, captured, through) = taken.await.inspect_err(|e| self.telemetry.failed(e.to_string()))?;
        let paused = started.elapsed();
        // The capture took the views' changes since the last checkpoint (a
        // delta is relative to it). From here on the checkpoint runs in a
        // task of its own: a caller that goes away (a DDL statement cut
        // short by shutdown, say) must not leave the changes taken and the
        // chain not told, or the next delta would leave them out.
        let finish = Finish {
            root: store.root.clone(),
            next_view_id: self.next_view_id.load(Ordering::Relaxed),
            log_lsn,
            started,
            paused,
        };
        let telemetry = self.telemetry.clone();
        let run = async move {
            let outcome = finish.run(chain, captured).await;
            match &outcome {
                Ok(stats) => telemetry.succeeded(stats),
                Err(e) => telemetry.failed(e.to_string()),
            }
            outcome
        };
        let outcome = match tokio::spawn(run).await {
            Ok(outcome) => outcome,
            Err(e) => Err(CheckpointError::Encode(format!("checkpoint writer failed: {e}"))),
        };
        if outcome.is_ok() {
            self.durable.release_through(through.0, through.1);
        }
        outcome
    }
}

/// What a checkpoint does after its capture: write the files and the
/// manifest, then record it in the chain.
struct Finish {
    root: PathBuf,
    next_view_id: u64,
    log_lsn: u64,
    started: Instant,
    paused: Duration,
}

impl Finish {
    async fn run(
        self,
        mut chain: tokio::sync::OwnedMutexGuard<Chain>,
        captured: Capture,
    ) -> Result<CheckpointStats, CheckpointError> {
        let Finish { root, next_view_id, log_lsn, started, paused } = self;
        if let Some(last) = chain.kept.last()
            && captured.unchanged_since(last, log_lsn)
        {
            return Ok(CheckpointStats { seq: last.seq, paused, total: started.elapsed(), ..Default::default() });
        }
        let seq = chain.seq + 1;
        let previous: BTreeMap<u64, Vec<StateFile>> = chain
            .kept
            .last()
            .map(|m| {
                let views = m.views.iter().map(|v| (v.id, v.files.clone()));
                views.chain(m.tables.iter().map(|t| (t.id, t.files.clone()))).collect()
            })
            .unwrap_or_default();
        let dir = root.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_checkpoint(&dir, seq, log_lsn, next_view_id, captured, &previous)
        })
        .await
        .map_err(|e| CheckpointError::Encode(format!("checkpoint writer failed: {e}")));
        let (manifest, groups_written, bytes_written) = match written.and_then(|r| r) {
            Ok(w) => w,
            Err(e) => {
                // The changes taken at the barrier were not saved: the next
                // checkpoint writes everything, under a new number.
                chain.seq = seq;
                chain.force_full = true;
                return Err(e);
            }
        };
        chain.seq = seq;
        chain.force_full = false;
        chain.kept.push(manifest);
        if chain.kept.len() > 2 {
            chain.kept.remove(0);
        }
        collect_garbage(&root, &chain.kept);
        Ok(CheckpointStats { seq, paused, total: started.elapsed(), groups_written, bytes_written })
    }
}

/// Writes the state files, then the manifest.
fn write_checkpoint(
    root: &Path,
    seq: u64,
    log_lsn: u64,
    next_view_id: u64,
    captured: Capture,
    previous: &BTreeMap<u64, Vec<StateFile>>,
) -> Result<(Manifest, u64, u64), CheckpointError> {
    let mut views = Vec::with_capacity(captured.views.len());
    let (mut groups, mut bytes) = (0, 0);
    for (mut record, snapshot) in captured.views {
        let mut files = if snapshot.as_ref().is_some_and(|s| s.full) {
            Vec::new()
        } else {
            previous.get(&record.id).cloned().unwrap_or_default()
        };
        if let Some(snapshot) = snapshot {
            let file = state_file::write(root, record.id, seq, &snapshot)?;
            groups += file.rows;
            bytes += file.bytes;
            files.push(file);
        }
        record.files = files;
        views.push(record);
    }
    let mut tables = Vec::with_capacity(captured.tables.len());
    for (mut record, snapshot) in captured.tables {
        record.files = match snapshot {
            Some(snapshot) => {
                let file = state_file::write(root, record.id, seq, &snapshot)?;
                groups += file.rows;
                bytes += file.bytes;
                vec![file]
            }
            None => previous.get(&record.id).cloned().unwrap_or_default(),
        };
        tables.push(record);
    }
    let mut sinks = Vec::with_capacity(captured.sinks.len());
    for (mut record, snapshot) in captured.sinks {
        if let (Some(outbox), Some(batches)) = (record.outbox.as_mut(), snapshot) {
            outbox.files = Vec::new();
            if !batches.is_empty() {
                let file = state_file::write_batches(root, outbox.id, seq, &batches, true)?;
                bytes += file.bytes;
                outbox.files.push(file);
            }
        }
        sinks.push(record);
    }
    let manifest = Manifest {
        version: manifest::FORMAT_VERSION,
        seq,
        taken_micros: chrono::Utc::now().timestamp_micros(),
        log_lsn,
        next_view_id,
        streams: captured.streams,
        views,
        tables,
        brokers: captured.brokers,
        consumers: captured.consumers,
        sinks,
    };
    manifest.write(root)?;
    Ok((manifest, groups, bytes))
}

/// Deletes manifests, state files and log segments no kept checkpoint needs.
/// Failures only leave garbage behind, so they are logged, not returned.
fn collect_garbage(root: &Path, kept: &[Manifest]) {
    let Some(oldest) = kept.first() else {
        return;
    };
    if let Ok(manifests) = manifest::list(root) {
        for (seq, path) in manifests {
            if seq < oldest.seq {
                remove(&path);
            }
        }
    }
    let mut referenced: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in kept {
        for v in &m.views {
            referenced.entry(v.id.to_string()).or_default().extend(v.files.iter().map(|f| f.name.clone()));
        }
        for t in &m.tables {
            referenced.entry(t.id.to_string()).or_default().extend(t.files.iter().map(|f| f.name.clone()));
        }
        for o in m.sinks.iter().filter_map(|s| s.outbox.as_ref()) {
            referenced.entry(o.id.to_string()).or_default().extend(o.files.iter().map(|f| f.name.clone()));
        }
    }
    if let Ok(dirs) = std::fs::read_dir(root.join("state")) {
        for dir in dirs.flatten() {
            let id = dir.file_name().to_string_lossy().to_string();
            match referenced.get(&id) {
                None => {
                    if let Err(e) = std::fs::remove_dir_all(dir.path()) {
                        tracing::warn!(path = %dir.path().display(), "could not remove a dropped view's state: {e}");
                    }
                }
                Some(names) => {
                    for file in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                        if !names.contains(&file.file_name().to_string_lossy().to_string()) {
                            remove(&file.path());
                        }
                    }
                }
            }
        }
    }
    if let Ok(segments) = log::segments(&root.join("wal")) {
        // A segment is done with when the next one starts at or before the
        // first record the oldest kept checkpoint would replay.
        for pair in segments.windows(2) {
            if pair[1].0 <= oldest.log_lsn + 1 {
                remove(&pair[0].1);
            }
        }
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), "could not remove an old checkpoint file: {e}");
    }
}

/// The newest checkpoint whose manifest and state files all check out.
fn find_checkpoint(root: &Path) -> Result<(Option<Loaded>, Chain), CheckpointError> {
    let manifests = manifest::list(root)?;
    let newest_seq = manifests.first().map_or(0, |(s, _)| *s);
    let mut errors = Vec::new();
    for (seq, path) in &manifests {
        match load(root, path) {
            Ok(loaded) => {
                if !errors.is_empty() {
                    tracing::error!(
                        "falling back to checkpoint {seq} ({}) because newer ones are damaged: {}",
                        path.display(),
                        errors.join("; ")
                    );
                }
                let chain =
                    Chain { seq: newest_seq, kept: vec![loaded.manifest.clone()], force_full: !errors.is_empty() };
                return Ok((Some(loaded), chain));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(CheckpointError::Unrecoverable { dir: root.to_path_buf(), errors: errors.join("; ") });
    }
    let has_log =
        log::segments(&root.join("wal"))?.iter().any(|(_, p)| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
    if has_log {
        return Err(CheckpointError::Unrecoverable {
            dir: root.to_path_buf(),
            errors: "the insert log has records but no checkpoint manifest says what they belong to".into(),
        });
    }
    Ok((None, Chain::default()))
}

fn load(root: &Path, path: &Path) -> Result<Loaded, CheckpointError> {
    let manifest = Manifest::read(path)?;
    let mut states = BTreeMap::new();
    for view in &manifest.views {
        let snapshots = view.files.iter().map(|f| state_file::read(root, view.id, f)).collect::<Result<Vec<_>, _>>()?;
        states.insert(view.id, snapshots);
    }
    for table in &manifest.tables {
        let snapshots =
            table.files.iter().map(|f| state_file::read(root, table.id, f)).collect::<Result<Vec<_>, _>>()?;
        states.insert(table.id, snapshots);
    }
    for outbox in manifest.sinks.iter().filter_map(|s| s.outbox.as_ref()) {
        let snapshots =
            outbox.files.iter().map(|f| state_file::read(root, outbox.id, f)).collect::<Result<Vec<_>, _>>()?;
        states.insert(outbox.id, snapshots);
    }
    Ok(Loaded { manifest, states })
}

/// The session's `synchronous_commit`, carried to the INSERT sink in the
/// DataFusion session config.
#[derive(Debug, Clone, Copy)]
pub struct SessionCommit(pub Commit);

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint waiting for a long write (a big COPY) does not hold back
    /// new writes: they are admitted while it waits, and it takes the
    /// barrier once the long write is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_checkpoint_does_not_stall_new_writes() {
        let dir = std::env::temp_dir().join(format!("eddy-barrier-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (durability, _) = Durability::open(&dir).unwrap();
        durability.start_log(1).unwrap();
        let long_write = durability.admit().await;
        let checkpointing = {
            let durability = durability.clone();
            tokio::spawn(async move {
                let capture = |_: &dyn Fn(u64) -> Option<Vec<StateFile>>, _| Ok(Capture::default());
                durability.checkpoint(capture).await.map(|s| s.seq)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!checkpointing.is_finished(), "the checkpoint waits for the long write");
        let short_write = tokio::time::timeout(Duration::from_secs(5), durability.admit()).await;
        assert!(short_write.is_ok(), "a new write was held back behind the waiting checkpoint");
        drop(short_write);
        drop(long_write);
        let seq = tokio::time::timeout(Duration::from_secs(5), checkpointing).await.unwrap().unwrap().unwrap();
        assert!(seq > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn view_capture(rows: Option<(i64, bool)>) -> Capture {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let record =
            ViewRecord { id: 1, name: "v".into(), query: "SELECT 1".into(), options: Vec::new(), files: Vec::new() };
        let snapshot = rows.map(|(value, full)| {
            let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![value]))]).unwrap();
            StateSnapshot { batch, full }
        });
        Capture { views: vec![(record, snapshot)], ..Capture::default() }
    }

    /// A checkpoint whose caller goes away after the capture (a DDL
    /// statement cut short by shutdown) still finishes: the changes it
    /// took are in the chain, and the next checkpoint's delta builds on
    /// them. It once left them out, and a view lost rows across a SIGTERM.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_whose_caller_goes_away_still_counts() {
        let dir = std::env::temp_dir().join(format!("eddy-cut-checkpoint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (durability, _) = Durability::open(&dir).unwrap();
        durability.start_log(1).unwrap();
        durability.checkpoint(|_, _| Ok(view_capture(Some((1, true))))).await.unwrap();
        let captured = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = captured.clone();
        let mut cut = Box::pin(durability.checkpoint(move |_, _| {
            flag.store(true, Ordering::SeqCst);
            Ok(view_capture(Some((2, false))))
        }));
        while !captured.load(Ordering::SeqCst) {
            assert!(futures::poll!(&mut cut).is_pending(), "the checkpoint finished before it could be cut");
            tokio::task::yield_now().await;
        }
        drop(cut);
        durability.checkpoint(|_, _| Ok(view_capture(None))).await.unwrap();
        drop(durability);
        let (_, loaded) = Durability::open(&dir).unwrap();
        let loaded = loaded.expect("a checkpoint");
        let values: Vec<i64> = loaded.states[&1]
            .iter()
            .flat_map(|s| {
                s.batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, vec![1, 2], "the delta of the checkpoint whose caller went away is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
