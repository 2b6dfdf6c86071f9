//! Who may change a table's rows now: one writer, a statement or a whole
//! transaction block, holds a table's claim from its first read of the rows
//! it changes to its end. A transaction computes its changes against a
//! private copy of the rows (see [`super::overlay`]), so nobody else may
//! change them meanwhile; this is PostgreSQL's row lock, taken on the whole
//! table.
//!
//! Two transactions that each hold a table the other wants would wait for
//! ever: a waiter looks for such a cycle (who holds the table it wants,
//! what that holder waits for, and so on) every [`DEADLOCK_CHECK`], and
//! the one that finds it fails with 40P01, as PostgreSQL's deadlock
//! detector fails one of them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;

use super::{TableEntry, TableError};

/// How long a waiter waits before it looks for a deadlock (again);
/// PostgreSQL's `deadlock_timeout` defaults to one second.
pub const DEADLOCK_CHECK: Duration = Duration::from_millis(200);

/// A claimant that holds no other claim (an autocommit statement) and so
/// cannot be part of a deadlock.
pub const STATEMENT: u64 = 0;

/// The table each waiting transaction waits for, by transaction number.
static WAITING: LazyLock<Mutex<HashMap<u64, Arc<TableEntry>>>> = LazyLock::new(Default::default);

/// A held claim on a table; dropping it lets the next writer in.
#[derive(Debug)]
pub struct Claim {
    table: Arc<TableEntry>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Claim {
    /// The claimed table.
    pub fn table(&self) -> &Arc<TableEntry> {
        &self.table
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        *self.table.holder.lock() = None;
    }
}

/// Removes a transaction from [`WAITING`] however its wait ends (a
/// cancelled statement included).
struct Waiting(u64);

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.lock().remove(&self.0);
    }
}

impl TableEntry {
    /// Waits for the table's claim, for transaction `claimant` (or
    /// [`STATEMENT`]). Fails with [`TableError::Deadlock`] when the wait
    /// closes a cycle of transactions that wait for each other.
    pub async fn claim(self: &Arc<Self>, claimant: u64) -> Result<Claim, TableError> {
        let mut waiting = None;
        loop {
            let attempt = match waiting {
                None => self.owner.clone().try_lock_owned().ok(),
                Some(_) => tokio::time::timeout(DEADLOCK_CHECK, self.owner.clone().lock_owned()).await.ok(),
            };
            if let Some(held) = attempt {
                *self.holder.lock() = Some(claimant);
                return Ok(Claim { table: self.clone(), _held: held });
            }
            if claimant == STATEMENT {
                let held = self.owner.clone().lock_owned().await;
                *self.holder.lock() = Some(claimant);
                return Ok(Claim { table: self.clone(), _held: held });
            }
            if waiting.is_none() {
                WAITING.lock().insert(claimant, self.clone());
                waiting = Some(Waiting(claimant));
            }
            if self.closes_cycle(claimant) {
                return Err(TableError::Deadlock { table: self.def.name.clone() });
            }
        }
    }

    /// Whether `claimant` waiting for this table closes a cycle: its holder
    /// waits (through others, perhaps) for a table `claimant` holds.
    fn closes_cycle(&self, claimant: u64) -> bool {
        let waiting = WAITING.lock();
        let mut holder = *self.holder.lock();
        for _ in 0..=waiting.len() {
            match holder {
                Some(h) if h == claimant => return true,
                Some(h) if h != STATEMENT => match waiting.get(&h) {
                    Some(table) => holder = *table.holder.lock(),
                    None => return false,
                },
                _ => return false,
            }
        }
        false
    }
}
