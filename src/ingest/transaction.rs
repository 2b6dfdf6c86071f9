//! A transaction block's writes, held until `COMMIT` and then applied
//! together; `ROLLBACK` drops them.
//!
//! Rows for streams are checked when their statement runs (a bad value
//! fails the statement, as in PostgreSQL) and held. Table changes are made
//! on the transaction's private copies of the rows (see
//! [`crate::table::overlay`]), which its own statements read. At `COMMIT`:
//! every table's net change is checked against the table under the write
//! locks of everything the transaction touches; the whole transaction is
//! logged as one record, so a crash replays all of it or none; and each
//! relation's rows go to its views, inside one checkpoint gate, so a
//! checkpoint holds all of the transaction or none of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;

use super::{Commit, IngestError};
use crate::catalog::StreamEntry;
use crate::stream::change::ChangeBatch;
use crate::table::claim::Claim;
use crate::table::overlay::Overlay;
use crate::table::{TableEntry, TableError};

/// Numbers transactions, for their table claims (0 is a statement's).
static NEXT_TRANSACTION: AtomicU64 = AtomicU64::new(1);

/// One transaction block's uncommitted writes.
#[derive(Debug)]
pub struct Transaction {
    overlay: Arc<Overlay>,
    streams: Mutex<Vec<StreamWrite>>,
}

/// One statement's rows for a stream.
#[derive(Debug)]
struct StreamWrite {
    number: u64,
    stream: Arc<StreamEntry>,
    batches: Vec<RecordBatch>,
}

/// One relation's share of a committing transaction.
enum Part {
    Table(Claim, ChangeBatch),
    Stream(Arc<StreamEntry>, Vec<RecordBatch>),
}

impl Default for Transaction {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction {
    /// A transaction with no writes yet.
    pub fn new() -> Self {
        let id = NEXT_TRANSACTION.fetch_add(1, Ordering::Relaxed);
        Self { overlay: Arc::new(Overlay::new(id)), streams: Mutex::new(Vec::new()) }
    }

    /// Its table changes, which its statements read and write.
    pub fn overlay(&self) -> &Arc<Overlay> {
        &self.overlay
    }

    /// The position a savepoint set now marks.
    pub fn mark(&self) -> u64 {
        self.overlay.mark()
    }

    /// Checks one statement's rows for `stream` and holds them until
    /// `COMMIT`; returns how many there are.
    pub fn hold(&self, stream: &Arc<StreamEntry>, batches: Vec<RecordBatch>) -> Result<u64, IngestError> {
        super::check_batches(stream, &batches)?;
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        if rows > 0 {
            stream.durability().budget().check()?;
            let number = self.overlay.next_number();
            self.streams.lock().push(StreamWrite { number, stream: stream.clone(), batches });
        }
        Ok(rows)
    }

    /// Undoes the writes made since `mark` (`ROLLBACK TO SAVEPOINT`).
    pub fn rollback_to(&self, mark: u64) -> Result<(), IngestError> {
        self.overlay.rollback_to(mark)?;
        self.streams.lock().retain(|w| w.number < mark);
        Ok(())
    }

    /// Applies every write of the transaction, as one, and returns once
    /// every view shows them. The tables' claims are held until then.
    pub async fn commit(&self, commit: Commit) -> Result<(), IngestError> {
        let tables = self.overlay.take()?;
        let streams = std::mem::take(&mut *self.streams.lock());
        let tables: Vec<_> = tables.into_iter().filter(|(_, r, a)| r.num_rows() + a.num_rows() > 0).collect();
        let streams = by_stream(streams);
        let durability = match (tables.first(), streams.first()) {
            (Some((claim, _, _)), _) => claim.table().durability().clone(),
            (None, Some((stream, _))) => stream.durability().clone(),
            (None, None) => return Ok(()),
        };
        let touched: Vec<Arc<TableEntry>> = tables.iter().map(|(c, _, _)| c.table().clone()).collect();
        let fed: Vec<Arc<StreamEntry>> = streams.iter().map(|(s, _)| s.clone()).collect();
        let guard = lock_all(&touched, &fed).await;
        let mut parts = Vec::with_capacity(tables.len() + streams.len());
        for (claim, removed, added) in tables {
            let change = ChangeBatch::of(&removed, &added, durability.next_epoch()).map_err(TableError::from)?;
            claim.table().rows().lock().check(&change)?;
            parts.push(Part::Table(claim, change));
        }
        for (stream, batches) in streams {
            let now = stream.clock().now_micros();
            let stamped = batches.into_iter().map(|b| super::stamp_arrival(b, now)).collect::<Result<_, _>>()?;
            parts.push(Part::Stream(stream, stamped));
        }
        let write = async move {
            let _guard = guard;
            let _admitted = durability.admit().await;
            durability.log_transaction(&logged(&parts)?, commit).await?;
            for part in &parts {
                match part {
                    Part::Table(claim, change) => crate::table::write::apply_committed(claim.table(), change).await?,
                    Part::Stream(stream, batches) => {
                        for batch in batches {
                            super::apply_batch(stream, batch.clone()).await?;
                        }
                    }
                }
            }
            Ok(())
        };
        let span = tracing::info_span!("commit");
        match tokio::spawn(tracing::Instrument::instrument(write, span)).await {
            Ok(done) => done,
            Err(e) => Err(IngestError::Internal(format!("the commit task ended: {e}"))),
        }
    }
}

/// Each stream's rows, in the order the streams were first written.
fn by_stream(writes: Vec<StreamWrite>) -> Vec<(Arc<StreamEntry>, Vec<RecordBatch>)> {
    let mut out: Vec<(Arc<StreamEntry>, Vec<RecordBatch>)> = Vec::new();
    for write in writes {
        match out.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &write.stream)) {
            Some((_, batches)) => batches.extend(write.batches),
            None => out.push((write.stream, write.batches)),
        }
    }
    out
}

/// What the log holds of the parts: each relation's name and rows.
fn logged(parts: &[Part]) -> Result<Vec<(String, Vec<RecordBatch>)>, IngestError> {
    parts
        .iter()
        .map(|part| match part {
            Part::Table(claim, change) => {
                Ok((claim.table().def.name.clone(), vec![change.to_logged().map_err(TableError::from)?]))
            }
            Part::Stream(stream, batches) => Ok((stream.def.name.clone(), batches.clone())),
        })
        .collect()
}

/// Takes the write locks of the changed tables, of the tables their views
/// join them with, and of those the streams' views look rows up in.
async fn lock_all(tables: &[Arc<TableEntry>], streams: &[Arc<StreamEntry>]) -> crate::table::write::WriteGuard {
    let wanted = || {
        let mut set: Vec<Arc<TableEntry>> = tables.iter().flat_map(|t| t.write_set()).collect();
        for stream in streams {
            for view in stream.views() {
                set.extend(view.looked_up_tables_downstream());
            }
        }
        set
    };
    loop {
        let set = wanted();
        let guard = crate::table::write::lock_tables(set.clone()).await;
        // A join view created while this waited locks more tables.
        if wanted().iter().all(|t| set.iter().any(|u| Arc::ptr_eq(t, u))) {
            return guard;
        }
    }
}
