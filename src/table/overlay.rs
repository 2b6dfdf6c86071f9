//! A transaction block's uncommitted changes to tables.
//!
//! The first time a transaction changes a table it claims the table (see
//! [`super::claim`]) and takes a private copy of its rows. Each of its
//! statements then reads that copy (its own writes included, as in
//! PostgreSQL), is checked against it (a duplicate key fails the statement,
//! not the `COMMIT`), and changes it. Nobody else sees the copy: at
//! `COMMIT` the net change of each table goes through the table's write
//! path as one change; at `ROLLBACK` the copies are dropped. A savepoint is
//! a position in the transaction's writes: `ROLLBACK TO` undoes the later
//! changes on the copies, newest first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use parking_lot::Mutex;

use super::claim::Claim;
use super::rows::TableRows;
use super::{TableEntry, TableError};
use crate::stream::change::ChangeBatch;

/// The uncommitted table changes of one transaction block.
#[derive(Debug)]
pub struct Overlay {
    /// The transaction's number: who holds its claims.
    id: u64,
    /// Each table it changed, in the order it first did.
    tables: Mutex<Vec<Pending>>,
    /// Numbers the transaction's writes in order (its stream writes too);
    /// a savepoint is the number of the next one.
    sequence: AtomicU64,
}

/// One table a transaction changed.
#[derive(Debug)]
struct Pending {
    claim: Claim,
    rows: Arc<Mutex<TableRows>>,
    changes: Vec<Change>,
}

/// One statement's change of a table.
#[derive(Debug)]
struct Change {
    number: u64,
    deletes: RecordBatch,
    inserts: RecordBatch,
}

/// A table's net change at `COMMIT`: its claim (held until the change has
/// been applied), the rows removed and the rows added.
pub type NetChange = (Claim, RecordBatch, RecordBatch);

impl Overlay {
    /// An empty overlay for transaction `id` (not [`super::claim::STATEMENT`]).
    pub fn new(id: u64) -> Self {
        Self { id, tables: Mutex::new(Vec::new()), sequence: AtomicU64::new(0) }
    }

    /// The number the transaction's next write gets.
    pub fn next_number(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// The position a savepoint set now marks.
    pub fn mark(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }

    /// The rows of `table` as the transaction sees them, if it changed it.
    pub fn rows_of(&self, table: &TableEntry) -> Option<Arc<Mutex<TableRows>>> {
        let tables = self.tables.lock();
        tables.iter().find(|p| std::ptr::eq(p.claim.table().as_ref(), table)).map(|p| p.rows.clone())
    }

    /// Claims `table` for the transaction (the first time) and returns the
    /// transaction's copy of its rows, which its statement then reads.
    pub async fn enter(&self, table: &Arc<TableEntry>) -> Result<Arc<Mutex<TableRows>>, TableError> {
        if let Some(rows) = self.rows_of(table) {
            return Ok(rows);
        }
        if let Some(topic) = &table.def.kafka_topic {
            return Err(TableError::FedByKafka { table: table.def.name.clone(), topic: topic.clone() });
        }
        let claim = table.claim(self.id).await?;
        let rows = Arc::new(Mutex::new(table.rows().lock().private_copy()));
        self.tables.lock().push(Pending { claim, rows: rows.clone(), changes: Vec::new() });
        Ok(rows)
    }

    /// Applies one statement's change to the transaction's copy of `table`
    /// (entered before), all or nothing, checking the table's constraints.
    pub fn record(&self, table: &TableEntry, deletes: RecordBatch, inserts: RecordBatch) -> Result<(), TableError> {
        if deletes.num_rows() == 0 && inserts.num_rows() == 0 {
            return Ok(());
        }
        let mut tables = self.tables.lock();
        let Some(pending) = tables.iter_mut().find(|p| std::ptr::eq(p.claim.table().as_ref(), table)) else {
            return Err(TableError::Internal(format!(
                "a transaction changed \"{}\" before claiming it",
                table.def.name
            )));
        };
        pending.rows.lock().apply(&ChangeBatch::of(&deletes, &inserts, 0)?)?;
        pending.changes.push(Change { number: self.next_number(), deletes, inserts });
        Ok(())
    }

    /// Undoes the changes made since `mark` (`ROLLBACK TO SAVEPOINT`),
    /// newest first. The tables stay claimed until the transaction ends.
    pub fn rollback_to(&self, mark: u64) -> Result<(), TableError> {
        for pending in self.tables.lock().iter_mut() {
            let mut rows = pending.rows.lock();
            while let Some(change) = pending.changes.pop_if(|c| c.number >= mark) {
                rows.apply(&ChangeBatch::of(&change.inserts, &change.deletes, 0)?)?;
            }
        }
        Ok(())
    }

    /// Empties the overlay into each changed table's net change, in the
    /// order the tables were first changed.
    pub fn take(&self) -> Result<Vec<NetChange>, TableError> {
        let pending = std::mem::take(&mut *self.tables.lock());
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            let (removed, added) = net(&p.claim.table().def.schema, &p.changes)?;
            out.push((p.claim, removed, added));
        }
        Ok(out)
    }
}

/// The rows `changes` remove and add, all told: a row added and then
/// removed again is in neither.
fn net(schema: &SchemaRef, changes: &[Change]) -> Result<(RecordBatch, RecordBatch), TableError> {
    let converter = RowConverter::new(schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect())?;
    let mut weights: std::collections::HashMap<OwnedRow, i64> = Default::default();
    let mut order: Vec<OwnedRow> = Vec::new();
    for change in changes {
        for (batch, weight) in [(&change.deletes, -1), (&change.inserts, 1)] {
            for row in converter.convert_columns(batch.columns())?.iter() {
                let owned = row.owned();
                let entry = weights.entry(owned.clone()).or_insert_with(|| {
                    order.push(owned);
                    0
                });
                *entry += weight;
            }
        }
    }
    let (weights, order) = (&weights, &order);
    let pick = |negative: bool| {
        order.iter().flat_map(move |row| {
            let w = weights.get(row).copied().unwrap_or(0);
            let n = if negative { (-w).max(0) } else { w.max(0) };
            std::iter::repeat_n(row.row(), n as usize)
        })
    };
    let removed = RecordBatch::try_new(schema.clone(), converter.convert_rows(pick(true))?)?;
    let added = RecordBatch::try_new(schema.clone(), converter.convert_rows(pick(false))?)?;
    Ok((removed, added))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("v", DataType::Utf8, true)]))
    }

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        let ids: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
        let vs: StringArray = rows.iter().map(|r| Some(r.1)).collect();
        RecordBatch::try_new(schema(), vec![Arc::new(ids), Arc::new(vs)]).unwrap()
    }

    fn change(number: u64, deletes: &[(i64, &str)], inserts: &[(i64, &str)]) -> Change {
        Change { number, deletes: batch(deletes), inserts: batch(inserts) }
    }

    fn ids(b: &RecordBatch) -> Vec<i64> {
        b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
    }

    /// Insert 3, update 1 twice, delete 3 again: all told, 1's old row goes
    /// and its last row comes; 3 never happened.
    #[test]
    fn the_net_change_cancels_what_a_transaction_undid_itself() {
        let changes = [
            change(0, &[], &[(3, "c")]),
            change(1, &[(1, "a")], &[(1, "b")]),
            change(2, &[(1, "b")], &[(1, "z")]),
            change(3, &[(3, "c")], &[]),
        ];
        let (removed, added) = net(&schema(), &changes).unwrap();
        assert_eq!(ids(&removed), vec![1]);
        assert_eq!(ids(&added), vec![1]);
        let v = added.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(v.value(0), "z");
    }

    #[test]
    fn a_multiset_keeps_its_counts() {
        let changes = [change(0, &[], &[(1, "a"), (1, "a")]), change(1, &[(1, "a"), (2, "b")], &[])];
        let (removed, added) = net(&schema(), &changes).unwrap();
        assert_eq!((ids(&removed), ids(&added)), (vec![2], vec![1]));
    }
}
