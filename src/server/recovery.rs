//! Recovery and checkpoint capture, the engine's side of durability:
//! [`capture`] takes the catalog, the Kafka positions, the tables' rows and
//! the views' changed state at the barrier; [`restore`] rebuilds them at
//! startup; [`replay`] applies the insert log after the checkpoint's LSN.
//!
//! It sits beside the server because it orchestrates every room (catalog,
//! tables, views, Kafka); `crate::checkpoint` below it only stores and
//! loads files, and never calls up.

use crate::checkpoint::log::Record;
use crate::checkpoint::manifest::{CatalogChange, StateFile};
use crate::checkpoint::{Capture, CheckpointError, Loaded};
use crate::server::Engine;

/// Takes what a checkpoint saves. Runs at the barrier: no write is in
/// flight, so the state, the log position and the offsets agree.
/// `files(id)` is a view's current state files, if it has any on disk.
pub fn capture(
    engine: &Engine,
    files: &dyn Fn(u64) -> Option<Vec<StateFile>>,
    force_full: bool,
) -> Result<Capture, CheckpointError> {
    let streams = engine.catalog.streams().iter().map(|s| s.record()).collect();
    let mut views = Vec::new();
    for view in engine.catalog.views() {
        if view.derived() {
            // Rebuilt from the relations it reads when restored: nothing to save.
            views.push((view.record(), None));
            continue;
        }
        let on_disk = files(view.id());
        let mut state = view.state().lock();
        let delta_rows: u64 = on_disk.iter().flatten().filter(|f| !f.full).map(|f| f.rows).sum();
        // Deltas that add up to the whole state are compacted into a full
        // snapshot; so is a delta that would hold most groups anyway.
        let (dirty, groups) = (state.dirty_groups() as u64, state.groups() as u64);
        let compact = delta_rows + dirty > groups.max(1024) || dirty * 2 >= groups.max(1);
        let full = force_full || on_disk.is_none() || (dirty > 0 && compact);
        let snapshot = if full || state.dirty_groups() > 0 {
            Some(state.take_snapshot(full).map_err(|e| CheckpointError::Encode(e.to_string()))?)
        } else {
            None
        };
        drop(state);
        views.push((view.record(), snapshot));
    }
    let mut tables = Vec::new();
    for table in engine.catalog.tables() {
        let mut rows = table.rows().lock();
        let changed = force_full || files(table.def.id).is_none() || rows.changed();
        let snapshot = if changed {
            let batch = rows.snapshot().map_err(|e| CheckpointError::Encode(e.to_string()))?;
            rows.mark_saved();
            Some(crate::state::StateSnapshot { batch, full: true })
        } else {
            None
        };
        drop(rows);
        tables.push((table.record(), snapshot));
    }
    let (brokers, consumers) = engine.kafka.records();
    let sinks = engine.sinks.capture(files, force_full);
    Ok(Capture { streams, views, tables, brokers, consumers, sinks })
}

/// Rebuilds streams, views (with their state) and Kafka consumers (stopped)
/// from a checkpoint.
pub async fn restore(engine: &Engine, loaded: Loaded) -> Result<(), CheckpointError> {
    let Loaded { manifest, mut states } = loaded;
    for stream in &manifest.streams {
        engine.add_stream_record(stream).map_err(|e| restore_error("stream", &stream.name, e))?;
    }
    for table in &manifest.tables {
        let entry = engine.add_table_record(table).map_err(|e| restore_error("table", &table.name, e))?;
        for snapshot in states.remove(&table.id).unwrap_or_default() {
            entry.advance_sequences(&snapshot.batch);
            let changes = crate::stream::change::ChangeBatch::inserts(snapshot.batch, 0);
            entry.rows().lock().apply(&changes).map_err(|e| restore_error("table", &table.name, e))?;
        }
    }
    // In creation order: a view that reads another view comes after it.
    let mut views: Vec<_> = manifest.views.iter().collect();
    views.sort_by_key(|v| v.id);
    for view in views {
        let query = crate::sql::parser::parse_query(&view.query).map_err(|e| restore_error("view", &view.name, e))?;
        let runtime = engine
            .start_view(view.id, &view.name, &query, view.options.clone())
            .await
            .map_err(|e| restore_error("view", &view.name, e))?;
        let mut state = runtime.state().lock();
        for snapshot in states.remove(&view.id).unwrap_or_default() {
            state.restore(&snapshot).map_err(|e| restore_error("view", &view.name, e))?;
        }
    }
    for broker in &manifest.brokers {
        engine.kafka.add_broker(broker).map_err(|e| restore_error("Kafka broker", broker, e))?;
    }
    for consumer in &manifest.consumers {
        engine.kafka.restore(consumer.clone());
    }
    for record in &manifest.sinks {
        if engine.catalog.relation(&record.relation).is_none() {
            tracing::warn!(sink = %record.name, relation = %record.relation, "dropping a sink whose relation is gone");
            continue;
        }
        let sink = engine.sinks.define(record, &[]).map_err(|e| restore_error("sink", &record.name, e))?;
        if let Some(outbox) = &record.outbox {
            let saved = states.remove(&outbox.id).unwrap_or_default();
            sink.load_outbox(outbox, saved.into_iter().map(|s| s.batch).collect());
        }
        engine.sinks.add(sink, false).map_err(|e| restore_error("sink", &record.name, e))?;
    }
    Ok(())
}

/// Applies the insert log's records, in order, to the restored views.
pub async fn replay(engine: &Engine, records: Vec<Record>) -> Result<u64, CheckpointError> {
    let mut rows = 0;
    for record in records {
        if let Some(change) = &record.change {
            replay_change(engine, change, record.lsn).await?;
            continue;
        }
        if let Ok(table) = engine.catalog.table(&record.stream) {
            for batch in &record.batches {
                crate::table::write::replay(&table, batch, record.lsn)
                    .await
                    .map_err(|e| restore_error("insert log record for table", &record.stream, e))?;
            }
            continue;
        }
        let Ok(stream) = engine.catalog.stream(&record.stream) else {
            // Written by a statement or a transaction block that committed
            // while its relation was being dropped: the DROP came first.
            tracing::warn!(lsn = record.lsn, relation = %record.stream, "skipping rows for a dropped relation in the insert log");
            continue;
        };
        for batch in record.batches {
            rows += batch.num_rows() as u64;
            match crate::ingest::apply_batch(&stream, batch).await {
                Ok(()) => {}
                // The view failed on these rows when they were first written
                // too (the client was told); the other views applied them.
                Err(e @ crate::ingest::IngestError::ViewFailed { .. }) => {
                    tracing::warn!(lsn = record.lsn, "replaying the insert log: {e}");
                }
                Err(e) => return Err(restore_error("insert log record for stream", &record.stream, e)),
            }
        }
    }
    Ok(rows)
}

/// Applies a catalog change from the log, as it was applied when logged.
async fn replay_change(engine: &Engine, change: &CatalogChange, lsn: u64) -> Result<(), CheckpointError> {
    engine
        .apply_change(change)
        .await
        .map_err(|e| CheckpointError::Restore(format!("catalog change {lsn} in the insert log: {e}")))?;
    if let CatalogChange::DropStream { name, .. } | CatalogChange::DropTable { name, .. } = change {
        engine.kafka.relation_dropped(name).await;
    }
    Ok(())
}

fn restore_error(kind: &str, name: &str, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Restore(format!("{kind} \"{name}\" from the checkpoint: {e}"))
}
