//! The write path of a table: one writer at a time (the holder of the
//! table's claim, see [`super::claim`]) computes its change from the rows
//! as they are, then the change is checked, prepared by every view, logged,
//! applied to the rows and merged into the views, in that order, before the
//! write returns. A transaction block's `COMMIT` logs first and then applies
//! ([`apply_committed`]).
//!
//! Checking and preparing come before the log, so a write that breaks a
//! constraint, or that a view's expression fails on, changes nothing and
//! is never replayed. Once logged, applying cannot fail for a reason the
//! checks did not see, so the rows and the views move together.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::{TableEntry, TableError};
use crate::checkpoint::log::Commit;
use crate::ingest::IngestError;
use crate::stream::change::ChangeBatch;

/// Table write locks, held from reading the rows to the views having
/// applied the change.
#[derive(Debug)]
pub struct WriteGuard {
    _held: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

/// Takes the write locks of `tables` in name order (every writer takes its
/// locks in that order, so none waits on another in a cycle).
pub async fn lock_tables(mut tables: Vec<Arc<TableEntry>>) -> WriteGuard {
    tables.sort_by(|a, b| a.def.name.cmp(&b.def.name));
    tables.dedup_by(|a, b| Arc::ptr_eq(a, b));
    let mut held = Vec::with_capacity(tables.len());
    for table in tables {
        held.push(table.writer.clone().lock_owned().await);
    }
    WriteGuard { _held: held }
}

impl TableEntry {
    /// Takes the table's write lock, and those of the tables its views join
    /// it with: writes to one table are serial, and a change of one table
    /// of a join is evaluated against the others while they hold still.
    pub async fn begin_write(self: &Arc<Self>) -> WriteGuard {
        loop {
            let tables = self.write_set();
            let guard = lock_tables(tables.clone()).await;
            // A join view created while this writer waited joins more tables.
            if self.write_set().iter().all(|t| tables.iter().any(|u| Arc::ptr_eq(t, u))) {
                return guard;
            }
        }
    }

    /// This table, the tables its views join it with, and those that views
    /// downstream of them look rows up in (a view over `output_of` of a
    /// view of this table, joined with another table).
    pub(crate) fn write_set(self: &Arc<Self>) -> Vec<Arc<TableEntry>> {
        let mut tables = vec![self.clone()];
        for view in self.views() {
            tables.extend(view.joined_tables().iter().cloned());
            for downstream in view.downstream() {
                tables.extend(downstream.looked_up_tables().cloned());
            }
        }
        tables
    }
}

/// Removes `deletes` and adds `inserts` (rows of the table's schema), as
/// one change, and returns once every view of the table shows it. Runs in
/// a task of its own, so that a client that goes away cannot cut it in
/// half.
pub async fn commit(
    table: &Arc<TableEntry>,
    guard: WriteGuard,
    deletes: RecordBatch,
    inserts: RecordBatch,
    commit: Commit,
) -> Result<(), IngestError> {
    if let Some(topic) = &table.def.kafka_topic {
        return Err(TableError::FedByKafka { table: table.def.name.clone(), topic: topic.clone() }.into());
    }
    if deletes.num_rows() == 0 && inserts.num_rows() == 0 {
        return Ok(());
    }
    // A DELETE makes room; what adds rows waits for it.
    if inserts.num_rows() > 0 {
        table.durability().budget().check()?;
    }
    let epoch = table.durability().next_epoch();
    let changes = ChangeBatch::of(&deletes, &inserts, epoch).map_err(TableError::from)?;
    table.rows().lock().check(&changes)?;
    let table = table.clone();
    let write = async move {
        let _guard = guard;
        let views = table.views();
        let still_there = |v: &Arc<crate::stream::ViewRuntime>| table.views().iter().any(|w| Arc::ptr_eq(v, w));
        let prepared = crate::stream::prepare_views(&views, &table.def.name, |_| changes.clone(), &still_there).await?;
        let durability = table.durability().clone();
        let _admitted = durability.admit().await;
        durability.log_rows(&table.def.name, &[changes.to_logged().map_err(TableError::from)?], commit).await?;
        finish(&table, &changes, prepared).await
    };
    let span = tracing::info_span!("table write");
    match tokio::spawn(tracing::Instrument::instrument(write, span)).await {
        Ok(done) => done,
        Err(e) => Err(IngestError::Internal(format!("the write task ended: {e}"))),
    }
}

/// Applies a checked change to the rows, and merges what every view
/// prepared from it.
async fn finish(
    table: &Arc<TableEntry>,
    changes: &ChangeBatch,
    prepared: Vec<crate::stream::PreparedView>,
) -> Result<(), IngestError> {
    let still_there = |v: &Arc<crate::stream::ViewRuntime>| table.views().iter().any(|w| Arc::ptr_eq(v, w));
    table.rows().lock().apply_checked(changes)?;
    table.count_changes(changes);
    table.publish(changes);
    crate::stream::merge_views(prepared, &still_there).await
}

/// Applies a change that a transaction's `COMMIT` checked (against the
/// rows, under the write locks it holds) and logged, inside the checkpoint
/// gate it holds: to every view, then to the rows.
pub async fn apply_committed(table: &Arc<TableEntry>, changes: &ChangeBatch) -> Result<(), IngestError> {
    let views = table.views();
    let still_there = |v: &Arc<crate::stream::ViewRuntime>| table.views().iter().any(|w| Arc::ptr_eq(v, w));
    let prepared = crate::stream::prepare_views(&views, &table.def.name, |_| changes.clone(), &still_there).await?;
    finish(table, changes, prepared).await
}

/// Applies a micro-batch of messages from the Kafka topic that feeds the
/// table: each row of `rows` upserts its key, or deletes it where `deleted`
/// (see [`super::rows::TableRows::upsert_change`]).
///
/// Not logged: the topic is the log. A checkpoint records the rows with the
/// consumer's offsets, and recovery reads the topic again from them.
/// `applied`, which advances the offsets, runs inside the checkpoint gate
/// once the rows and every view show the change, so that a checkpoint sees
/// the change and its offsets together or neither. The table's lock is
/// taken before the gate, as every writer of a table takes them; the whole
/// write runs inside the gate.
pub async fn upsert(
    table: &Arc<TableEntry>,
    rows: &RecordBatch,
    deleted: &[bool],
    applied: impl FnOnce(),
) -> Result<(), IngestError> {
    let _guard = table.begin_write().await;
    // The epoch is taken inside the gate, so that the checkpoint that
    // makes it durable (`next_unlogged_epoch`) holds the change.
    let durability = table.durability().clone();
    let _admitted = durability.admit().await;
    let (deletes, inserts) = table.rows().lock().upsert_change(rows, deleted)?;
    let changes =
        ChangeBatch::of(&deletes, &inserts, table.durability().next_unlogged_epoch()).map_err(TableError::from)?;
    table.rows().lock().check(&changes)?;
    let views = table.views();
    let still_there = |v: &Arc<crate::stream::ViewRuntime>| table.views().iter().any(|w| Arc::ptr_eq(v, w));
    let prepared = if changes.is_empty() {
        Vec::new()
    } else {
        crate::stream::prepare_views(&views, &table.def.name, |_| changes.clone(), &still_there).await?
    };
    table.rows().lock().apply_checked(&changes)?;
    table.count_changes(&changes);
    table.publish(&changes);
    crate::stream::merge_views(prepared, &still_there).await?;
    applied();
    Ok(())
}

/// Applies a change read back from the insert log: to the rows, then to
/// every view, as when it was written.
pub async fn replay(table: &Arc<TableEntry>, logged: &RecordBatch, lsn: u64) -> Result<(), IngestError> {
    let changes = ChangeBatch::from_logged(logged, lsn).ok_or_else(|| {
        IngestError::Internal(format!("log record {lsn} for table \"{}\" has no weights", table.def.name))
    })?;
    let _guard = table.begin_write().await;
    table.advance_sequences(&changes.rows);
    table.rows().lock().apply(&changes)?;
    let views = table.views();
    let prepared = crate::stream::prepare_views(&views, &table.def.name, |_| changes.clone(), &|_| true).await?;
    crate::stream::merge_views(prepared, &|_| true).await
}
