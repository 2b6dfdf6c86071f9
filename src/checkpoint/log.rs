//! The insert log: every `INSERT` and `COPY` is appended here, and fsynced,
//! before it is applied and acknowledged.
//!
//! One writer thread owns the files. Appends reach it over a bounded
//! channel; it takes every append waiting, writes them with one write and
//! makes them durable with one `fdatasync` (group commit), so concurrent
//! clients share the cost. An append with `synchronous_commit = off` is
//! acknowledged once written, and synced within [`IDLE_SYNC`].
//!
//! Each record is one statement's rows, numbered by a log sequence number
//! (LSN); its payload is `[u16 stream name length][name][Arrow IPC stream]`,
//! framed with checksums as [`super::log_format`] describes. The log is
//! split into segments named by their first LSN; each checkpoint starts a
//! new one, and segments older than the checkpoints kept are deleted.
//!
//! A failed write or sync (a full disk) cuts the segment back to where the
//! group began, so no record the client was told failed is ever replayed.

use std::fs::{File, OpenOptions};
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use tokio::sync::{mpsc, oneshot};

use super::log_format::{self, HEADER, MAGIC};
use super::manifest::CatalogChange;
use super::telemetry::Telemetry;
use super::{CheckpointError, fsync_dir, io_error};

/// Appends waiting for the writer before senders wait.
const QUEUE: usize = 1024;
/// Most appends written and synced together.
const MAX_GROUP: usize = 1024;
/// How soon an unsynced (`synchronous_commit = off`) append is synced.
pub const IDLE_SYNC: Duration = Duration::from_millis(200);

/// An append's wish: wait for the disk, or only for the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Acknowledged once fsynced (`synchronous_commit = on`, the default).
    Sync,
    /// Acknowledged once written; synced within [`IDLE_SYNC`].
    Async,
}

/// Where the writer answers: the LSN given, or why not.
type Reply = oneshot::Sender<Result<u64, CheckpointError>>;

enum Command {
    Append { payload: Vec<u8>, commit: Commit, reply: Reply },
    Rotate { reply: Reply },
}

/// The handle appends go through.
#[derive(Debug)]
pub struct InsertLog {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Append { .. } => "Append",
            Command::Rotate { .. } => "Rotate",
        })
    }
}

/// The file name of the segment whose first record is `lsn`.
pub fn segment_name(lsn: u64) -> String {
    format!("{lsn:020}.log")
}

/// The stream-name length that marks a catalog change instead of rows
/// (no stream name is this long).
const CATALOG_CHANGE: u16 = u16::MAX;

/// Encodes a catalog change as a record payload: the marker, then JSON.
pub fn encode_change(change: &CatalogChange) -> Result<Vec<u8>, CheckpointError> {
    let mut out = CATALOG_CHANGE.to_le_bytes().to_vec();
    serde_json::to_writer(&mut out, change).map_err(CheckpointError::encode)?;
    Ok(out)
}

/// The stream-name length that marks a transaction: the rows of several
/// relations in one record, replayed all or none.
const TRANSACTION: u16 = u16::MAX - 1;

/// Encodes a transaction's rows, relation by relation, as one record
/// payload: the marker, then each relation's payload after its length.
pub fn encode_transaction(parts: &[(String, Vec<RecordBatch>)]) -> Result<Vec<u8>, CheckpointError> {
    let mut out = TRANSACTION.to_le_bytes().to_vec();
    for (relation, batches) in parts {
        let part = encode_payload(relation, batches)?;
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// Encodes one statement's rows as a record payload.
pub fn encode_payload(stream: &str, batches: &[RecordBatch]) -> Result<Vec<u8>, CheckpointError> {
    let mut out = Vec::with_capacity(64 + batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>());
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(stream.as_bytes());
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let mut writer = StreamWriter::try_new(&mut out, &first.schema()).map_err(CheckpointError::encode)?;
    for b in batches {
        writer.write(b).map_err(CheckpointError::encode)?;
    }
    writer.finish().map_err(CheckpointError::encode)?;
    drop(writer);
    Ok(out)
}

/// One replayed record.
#[derive(Debug)]
pub struct Record {
    /// Its LSN.
    pub lsn: u64,
    /// The stream it was written to.
    pub stream: String,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// A catalog change instead of rows (then `stream` is empty).
    pub change: Option<CatalogChange>,
}

/// The records one payload holds: one, or a transaction's parts (which
/// share its LSN).
fn decode_records(lsn: u64, payload: &[u8], path: &Path) -> Result<Vec<Record>, CheckpointError> {
    let corrupt = |what: String| CheckpointError::Corrupt { path: path.to_path_buf(), what };
    if payload.get(..2) != Some(&TRANSACTION.to_le_bytes()[..]) {
        return Ok(vec![decode_payload(lsn, payload, path)?]);
    }
    let mut records = Vec::new();
    let mut rest = &payload[2..];
    while !rest.is_empty() {
        let length = rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes);
        let part = length.and_then(|n| rest.get(8..8 + usize::try_from(n).ok()?));
        let Some(part) = part else {
            return Err(corrupt(format!("record {lsn} holds a truncated transaction")));
        };
        records.push(decode_payload(lsn, part, path)?);
        rest = &rest[8 + part.len()..];
    }
    Ok(records)
}

fn decode_payload(lsn: u64, payload: &[u8], path: &Path) -> Result<Record, CheckpointError> {
    let corrupt = |what: String| CheckpointError::Corrupt { path: path.to_path_buf(), what };
    if payload.len() < 2 {
        return Err(corrupt(format!("record {lsn} is too short")));
    }
    let marker = u16::from_le_bytes([payload[0], payload[1]]);
    if marker == CATALOG_CHANGE {
        let change = serde_json::from_slice(&payload[2..])
            .map_err(|e| corrupt(format!("record {lsn} holds an unreadable catalog change: {e}")))?;
        return Ok(Record { lsn, stream: String::new(), batches: Vec::new(), change: Some(change) });
    }
    let name_len = marker as usize;
    let name = payload.get(2..2 + name_len).ok_or_else(|| corrupt(format!("record {lsn} is too short")))?;
    let stream = String::from_utf8(name.to_vec()).map_err(|_| corrupt(format!("record {lsn} names no stream")))?;
    let rest = &payload[2 + name_len..];
    let mut batches = Vec::new();
    if !rest.is_empty() {
        let reader = StreamReader::try_new(Cursor::new(rest), None).map_err(|e| corrupt(e.to_string()))?;
        for b in reader {
            batches.push(b.map_err(|e| corrupt(e.to_string()))?);
        }
    }
    Ok(Record { lsn, stream, batches, change: None })
}

/// The segments in `dir`, by first LSN.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(lsn) = name.strip_suffix(".log").and_then(|n| n.parse::<u64>().ok()) {
            out.push((lsn, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every record after `after` from the segments in `dir`, in order.
/// A torn record at the very end of the last segment (a crash mid-write,
/// never acknowledged) is cut off; damage anywhere is an error. After a
/// checkpoint (`checkpointed`), the segment it started, named `after + 1`,
/// must be there: without it, acknowledged rows may be missing.
pub fn replay(dir: &Path, after: u64, checkpointed: bool) -> Result<(Vec<Record>, u64), CheckpointError> {
    let segments = segments(dir)?;
    if checkpointed && !segments.iter().any(|(first, _)| *first == after + 1) {
        return Err(CheckpointError::Corrupt {
            path: dir.join(segment_name(after + 1)),
            what: "the insert log segment that follows the checkpoint is missing, so acknowledged rows may be \
                   lost; restore the data directory from a backup"
                .into(),
        });
    }
    let mut records = Vec::new();
    let mut last = after;
    for (i, (first, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let (valid_len, lsns) = log_format::scan(&bytes, path, is_last)?;
        if valid_len < bytes.len() {
            tracing::warn!(path = %path.display(), cut = bytes.len() - valid_len, "cutting a torn record off the end of the insert log");
            let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error(path, e))?;
            file.set_len(valid_len as u64).map_err(|e| io_error(path, e))?;
            file.sync_all().map_err(|e| io_error(path, e))?;
        }
        for (lsn, range) in lsns {
            if lsn < *first {
                return Err(CheckpointError::Corrupt {
                    path: path.clone(),
                    what: format!("record {lsn} is in a segment starting at {first}"),
                });
            }
            if lsn <= after {
                continue;
            }
            if lsn != last + 1 {
                return Err(CheckpointError::Corrupt {
                    path: path.clone(),
                    what: format!("record {} is missing (found {lsn} next)", last + 1),
                });
            }
            records.extend(decode_records(lsn, &bytes[range], path)?);
            last = lsn;
        }
    }
    Ok((records, last))
}

impl InsertLog {
    /// Starts the writer thread with a new segment whose first record will
    /// be `next_lsn`.
    /// Its fsyncs and group commits are counted in `telemetry`.
    pub fn start(dir: PathBuf, next_lsn: u64, telemetry: Arc<Telemetry>) -> Result<Self, CheckpointError> {
        let writer = Writer::open(dir, next_lsn, telemetry)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("eddy-insert-log".into())
            .spawn(move || writer.run(rx, handle))
            .map_err(|e| CheckpointError::Io { path: PathBuf::from("insert log thread"), source: e })?;
        Ok(Self { tx })
    }

    /// Appends one statement's record; returns its LSN once `commit` is met.
    pub async fn append(&self, payload: Vec<u8>, commit: Commit) -> Result<u64, CheckpointError> {
        let (reply, done) = oneshot::channel();
        self.tx.send(Command::Append { payload, commit, reply }).await.map_err(|_| CheckpointError::LogClosed)?;
        done.await.map_err(|_| CheckpointError::LogClosed)?
    }

    /// Syncs and starts a new segment; returns the last LSN written before it.
    pub async fn rotate(&self) -> Result<u64, CheckpointError> {
        let (reply, done) = oneshot::channel();
        self.tx.send(Command::Rotate { reply }).await.map_err(|_| CheckpointError::LogClosed)?;
        done.await.map_err(|_| CheckpointError::LogClosed)?
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    len: u64,
    next_lsn: u64,
    unsynced: bool,
    /// Set when a failed write could not be cut back: nothing more is accepted.
    broken: Option<String>,
    telemetry: Arc<Telemetry>,
}

impl Writer {
    fn open(dir: PathBuf, next_lsn: u64, telemetry: Arc<Telemetry>) -> Result<Self, CheckpointError> {
        let path = dir.join(segment_name(next_lsn));
        let file =
            OpenOptions::new().create(true).write(true).truncate(true).open(&path).map_err(|e| io_error(&path, e))?;
        file.write_all_at(MAGIC, 0).and_then(|()| file.sync_data()).map_err(|e| io_error(&path, e))?;
        fsync_dir(&dir)?;
        let len = MAGIC.len() as u64;
        Ok(Self { dir, file, path, len, next_lsn, unsynced: false, broken: None, telemetry })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>, handle: tokio::runtime::Handle) {
        loop {
            let first = match handle.block_on(async { tokio::time::timeout(IDLE_SYNC, rx.recv()).await }) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(_) => {
                    self.sync_idle();
                    continue;
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            self.process(group);
        }
        self.sync_idle();
    }

    fn sync_idle(&mut self) {
        if self.unsynced {
            match self.timed_sync() {
                Ok(()) => self.unsynced = false,
                Err(e) => tracing::error!(path = %self.path.display(), "could not sync the insert log: {e}"),
            }
        }
    }

    fn process(&mut self, group: Vec<Command>) {
        let mut appends = Vec::new();
        for command in group {
            match command {
                Command::Append { payload, commit, reply } => appends.push((payload, commit, reply)),
                Command::Rotate { reply } => {
                    self.write_group(std::mem::take(&mut appends));
                    let _ = reply.send(self.rotate());
                }
            }
        }
        self.write_group(appends);
    }

    fn write_group(&mut self, appends: Vec<(Vec<u8>, Commit, Reply)>) {
        if appends.is_empty() {
            return;
        }
        if let Some(why) = &self.broken {
            for (_, _, reply) in appends {
                let _ = reply.send(Err(CheckpointError::LogBroken(why.clone())));
            }
            return;
        }
        let (start_len, start_lsn) = (self.len, self.next_lsn);
        let mut buffer = Vec::with_capacity(appends.iter().map(|(p, _, _)| p.len() + HEADER).sum());
        let mut lsns = Vec::with_capacity(appends.len());
        for (payload, _, _) in &appends {
            let lsn = self.next_lsn;
            self.next_lsn += 1;
            log_format::encode_record(&mut buffer, lsn, payload);
            lsns.push(lsn);
        }
        let sync = appends.iter().any(|(_, c, _)| *c == Commit::Sync);
        let outcome =
            self.file.write_all_at(&buffer, start_len).and_then(|()| if sync { self.timed_sync() } else { Ok(()) });
        match outcome {
            Ok(()) => {
                if sync {
                    self.telemetry.group_commit.observe(appends.len() as f64);
                }
                self.len += buffer.len() as u64;
                self.unsynced = !sync;
                for ((_, _, reply), lsn) in appends.into_iter().zip(lsns) {
                    let _ = reply.send(Ok(lsn));
                }
            }
            Err(e) => {
                self.cut_back(start_len, start_lsn);
                let error = io_error(&self.path, e);
                for (_, _, reply) in appends {
                    let _ = reply.send(Err(error.duplicate()));
                }
            }
        }
    }

    /// `fdatasync`, timed.
    fn timed_sync(&self) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let synced = self.file.sync_data();
        self.telemetry.fsync.observe_duration(started.elapsed());
        synced
    }

    /// Undoes a failed group so that none of it is ever replayed.
    fn cut_back(&mut self, len: u64, lsn: u64) {
        self.next_lsn = lsn;
        if let Err(e) = self.file.set_len(len).and_then(|()| self.file.sync_data()) {
            let why = format!("a failed write to {} could not be undone ({e})", self.path.display());
            tracing::error!("{why}; inserts are refused until the server restarts");
            self.broken = Some(why);
        }
    }

    fn rotate(&mut self) -> Result<u64, CheckpointError> {
        let cut = self.next_lsn - 1;
        if let Some(why) = &self.broken {
            return Err(CheckpointError::LogBroken(why.clone()));
        }
        if self.len == MAGIC.len() as u64 {
            return Ok(cut); // nothing since the last rotation: keep this segment
        }
        self.file.sync_data().map_err(|e| io_error(&self.path, e))?;
        self.unsynced = false;
        let next = Writer::open(self.dir.clone(), self.next_lsn, self.telemetry.clone())?;
        *self = next;
        Ok(cut)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(n: i64) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        vec![RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()))]).unwrap()]
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("eddy-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A transaction's record replays as one record per relation, all with
    /// its LSN, in the order written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_replays_as_its_parts() {
        let d = dir("transaction");
        let log = InsertLog::start(d.clone(), 1, Default::default()).unwrap();
        let parts = vec![("a".to_string(), rows(2)), ("b".to_string(), rows(3)), ("a".to_string(), rows(1))];
        log.append(encode_transaction(&parts).unwrap(), Commit::Sync).await.unwrap();
        log.append(encode_payload("c", &rows(4)).unwrap(), Commit::Sync).await.unwrap();
        let (records, last) = replay(&d, 0, false).unwrap();
        let seen: Vec<(u64, &str, usize)> =
            records.iter().map(|r| (r.lsn, r.stream.as_str(), r.batches[0].num_rows())).collect();
        assert_eq!(seen, vec![(1, "a", 2), (1, "b", 3), (1, "a", 1), (2, "c", 4)]);
        assert_eq!(last, 2);
        let mut torn = encode_transaction(&parts).unwrap();
        torn.truncate(torn.len() - 3);
        assert!(decode_records(3, &torn, &d).is_err(), "a cut transaction is damage, not half a transaction");
    }

    /// Concurrent appends share syncs, get consecutive LSNs, and replay in
    /// order across a rotation; replay skips what a checkpoint holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_replay_in_order_across_segments() {
        let d = dir("order");
        let log = Arc::new(InsertLog::start(d.clone(), 1, Default::default()).unwrap());
        let appends = (0..50).map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let commit = if i % 2 == 0 { Commit::Sync } else { Commit::Async };
                log.append(encode_payload("s", &rows(i + 1)).unwrap(), commit).await.unwrap()
            })
        });
        let mut lsns: Vec<u64> = futures::future::join_all(appends).await.into_iter().map(|r| r.unwrap()).collect();
        lsns.sort();
        assert_eq!(lsns, (1..=50).collect::<Vec<_>>());
        assert_eq!(log.rotate().await.unwrap(), 50);
        log.append(encode_payload("t", &rows(3)).unwrap(), Commit::Sync).await.unwrap();
        let (records, last) = replay(&d, 0, false).unwrap();
        assert_eq!((records.len(), last), (51, 51));
        assert_eq!(segments(&d).unwrap().len(), 2);
        assert_eq!(records[50].stream, "t");
        let total: usize = records[..50].iter().map(|r| r.batches[0].num_rows()).sum();
        assert_eq!(total, (1..=50).sum::<usize>(), "every statement's rows, whichever order they were logged in");
        let (after, _) = replay(&d, 50, true).unwrap();
        assert_eq!(after.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tails_are_cut_and_damage_is_reported() {
        let d = dir("torn");
        let log = InsertLog::start(d.clone(), 7, Default::default()).unwrap();
        for _ in 0..3 {
            log.append(encode_payload("s", &rows(10)).unwrap(), Commit::Sync).await.unwrap();
        }
        let (_, path) = segments(&d).unwrap().pop().unwrap();
        let good = std::fs::read(&path).unwrap();
        // A crash in the middle of the last record.
        std::fs::write(&path, &good[..good.len() - 5]).unwrap();
        let (records, last) = replay(&d, 6, true).unwrap();
        assert_eq!((records.len(), last), (2, 8));
        assert!(std::fs::metadata(&path).unwrap().len() < good.len() as u64 - 5, "the torn record was cut off");
        // A flipped byte in the first record, with a record after it.
        let mut damaged = good.clone();
        damaged[MAGIC.len() + HEADER + 3] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let err = replay(&d, 6, true).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
        // The segment a checkpoint started is deleted: refused, not an empty log.
        std::fs::remove_file(&path).unwrap();
        let err = replay(&d, 6, true).unwrap_err().to_string();
        assert!(err.contains("00000000000000000007.log") && err.contains("missing"), "{err}");
        assert_eq!(replay(&d, 0, false).unwrap().0.len(), 0, "a fresh data directory has no log yet");
    }
}
