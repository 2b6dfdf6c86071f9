//! The manifest: one file per checkpoint that says what the checkpoint is.
//!
//! It holds the catalog (streams, views, Kafka brokers, consumers and sinks
//! with their options), the source positions (the insert log's last LSN and each
//! consumer's Kafka offsets), and, for each view, the state files to load in
//! order (a full snapshot, then deltas) with their sizes and checksums. It
//! is written last, to a temporary name, fsynced and renamed, so a
//! checkpoint exists on disk only once all of it does. Its last line is a
//! CRC-32 of the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CheckpointError, fsync_dir, io_error};
use crate::ingest::kafka::options::ConsumerOptions;

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A declared stream column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRecord {
    /// The column's name, normalized.
    pub name: String,
    /// Its SQL type, as declared.
    pub sql_type: String,
    /// Declared `NOT NULL`.
    pub not_null: bool,
}

/// A stream, as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Its name.
    pub name: String,
    /// Its user columns (not `arrival_timestamp`).
    pub columns: Vec<ColumnRecord>,
    /// Its event-time column and lateness, if declared.
    #[serde(default)]
    pub event_time: Option<crate::window::watermark::EventTime>,
    /// Its watermark when the checkpoint was taken.
    #[serde(default)]
    pub watermark: Option<crate::window::watermark::WatermarkState>,
}

/// One state file of a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Its name inside the view's directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// CRC-32 of its contents.
    pub crc32: u32,
    /// Groups it holds.
    pub rows: u64,
    /// A full snapshot (else a delta over the files before it).
    pub full: bool,
}

/// A continuous view and where its state is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewRecord {
    /// Its number: names its state directory.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its query, as SQL.
    pub query: String,
    /// Its `WITH (...)` options (windows, TTL).
    #[serde(default)]
    pub options: Vec<(String, String)>,
    /// State files, loaded in order: the first is full.
    pub files: Vec<StateFile>,
}

/// A table and where its rows are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRecord {
    /// Its number: names its directory of rows.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<ColumnRecord>,
    /// Its primary key's columns (none: a multiset).
    pub primary_key: Vec<String>,
    /// The Kafka topic that feeds it, if any: then SQL may not write to it.
    #[serde(default)]
    pub kafka_topic: Option<String>,
    /// Its rows: one full file.
    pub files: Vec<StateFile>,
}

/// A Kafka consumer with its options and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The stream.
    pub stream: String,
    /// How it consumes.
    pub options: ConsumerOptions,
    /// The next offset to apply, by partition: the position the views' state corresponds to.
    pub offsets: BTreeMap<i32, i64>,
    /// Whether it was consuming (else stopped by `consume_end`).
    pub running: bool,
}

/// A Kafka sink (`CREATE SINK`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRecord {
    /// Its name.
    pub name: String,
    /// The view, table or stream it writes out.
    pub relation: String,
    /// Its `WITH (...)` options, with the brokers it was made with.
    pub options: Vec<(String, String)>,
    /// Made with its relation (`CREATE STREAM | TABLE ... WITH (kafka_topic
    /// = ...) AS SELECT`): dropped with it, without CASCADE.
    #[serde(default)]
    pub owned: bool,
    /// A stream's sink: the events it has yet to write.
    #[serde(default)]
    pub outbox: Option<OutboxRecord>,
}

/// The events a stream's sink has yet to write, numbered: the sink reads
/// the last number its topic holds, and writes those after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The number of its state directory (a relation number).
    pub id: u64,
    /// The number of its first event.
    pub first: u64,
    /// Whether its numbers continue its topic's (set on the sink's first start).
    pub anchored: bool,
    /// Its events; none when it holds none.
    pub files: Vec<StateFile>,
}

/// A catalog change, as the insert log records it: logged (and synced)
/// before the change is visible, so that the rows written after it always
/// find it on replay, and a fallback to an older checkpoint replays it
/// rather than losing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CatalogChange {
    /// `CREATE STREAM`.
    CreateStream(StreamRecord),
    /// `CREATE VIEW`, with no state yet.
    CreateView(ViewRecord),
    /// `DROP STREAM`, with `CASCADE` or not.
    DropStream {
        /// The stream.
        name: String,
        /// Whether its views go too.
        cascade: bool,
    },
    /// `DROP VIEW`.
    DropView {
        /// The view.
        name: String,
        /// Whether the views over it go too.
        #[serde(default)]
        cascade: bool,
    },
    /// `CREATE TABLE`, empty.
    CreateTable(TableRecord),
    /// `DROP TABLE`, with `CASCADE` or not.
    DropTable {
        /// The table.
        name: String,
        /// Whether the views over it go too.
        cascade: bool,
    },
}

/// One checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub version: u32,
    /// Its number; later checkpoints have larger ones.
    pub seq: u64,
    /// When it was taken, in microseconds since the epoch.
    pub taken_micros: i64,
    /// The last insert-log record whose rows the state holds.
    pub log_lsn: u64,
    /// The next view number to give out.
    pub next_view_id: u64,
    /// Streams.
    pub streams: Vec<StreamRecord>,
    /// Views.
    pub views: Vec<ViewRecord>,
    /// Tables.
    #[serde(default)]
    pub tables: Vec<TableRecord>,
    /// Brokers added with `add_broker`.
    pub brokers: Vec<String>,
    /// Kafka consumers.
    pub consumers: Vec<ConsumerRecord>,
    /// Kafka sinks.
    #[serde(default)]
    pub sinks: Vec<SinkRecord>,
}

/// The file name of checkpoint `seq`'s manifest.
pub fn manifest_name(seq: u64) -> String {
    format!("checkpoint-{seq:012}.json")
}

/// The manifests in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let seq =
            name.strip_prefix("checkpoint-").and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, entry.path()));
        }
    }
    out.sort_by_key(|m| std::cmp::Reverse(m.0));
    Ok(out)
}

impl Manifest {
    /// Writes the manifest durably into `dir`: temporary file, fsync, rename, directory fsync.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        let body = serde_json::to_string_pretty(self).map_err(|e| CheckpointError::Encode(e.to_string()))?;
        let text = format!("{body}\ncrc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        let path = dir.join(manifest_name(self.seq));
        let tmp = dir.join(format!("{}.tmp", manifest_name(self.seq)));
        super::write_durably(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        fsync_dir(dir)?;
        Ok(path)
    }

    /// Reads and checks a manifest.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |what: &str| CheckpointError::Corrupt { path: path.to_path_buf(), what: what.to_string() };
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        let trimmed = text.strip_suffix('\n').ok_or_else(|| corrupt("it is truncated"))?;
        let (body, last) = trimmed.rsplit_once('\n').ok_or_else(|| corrupt("it is truncated"))?;
        let crc = last
            .strip_prefix("crc32 ")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| corrupt("it is truncated (no checksum line)"))?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return Err(corrupt("its checksum does not match"));
        }
        let manifest: Manifest = serde_json::from_str(body).map_err(|e| corrupt(&e.to_string()))?;
        if manifest.version != FORMAT_VERSION {
            return Err(corrupt(&format!(
                "it has format version {}, this build reads {FORMAT_VERSION}",
                manifest.version
            )));
        }
        Ok(manifest)
    }
}
