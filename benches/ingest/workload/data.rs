//! The rows, generated in memory before any clock starts.
//!
//! Keys come in passes: each pass is every key of `0..keys` once, in a fresh
//! random order. So any `keys` consecutive rows hold every key, a view holds
//! exactly `keys` groups after the first pass, and the load is uniform.
//! Values are random with two decimals, as text (`123.45`).

use std::fmt::Write as _;
use std::io::Write as _;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Yields keys pass by pass, each pass a fresh permutation.
struct Keys {
    order: Vec<i32>,
    next: usize,
    rng: StdRng,
}

impl Keys {
    fn new(keys: usize, seed: u64) -> Self {
        let count = i32::try_from(keys).unwrap_or(i32::MAX);
        Self {
            order: (0..count).collect(),
            next: keys, // shuffle before the first key
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next key, and a random value in hundredths (0.00 to 999.99).
    fn next_row(&mut self) -> (i32, u32) {
        if self.next == self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.next = 0;
        }
        let key = self.order[self.next];
        self.next += 1;
        (key, self.rng.random_range(0..100_000))
    }
}

/// `count` distinct COPY payloads (text format, `k<TAB>v<NL>`) of `rows` rows
/// each, continuing one key sequence.
pub fn copy_payloads(keys: usize, rows: usize, count: usize, seed: u64) -> Vec<Bytes> {
    let mut source = Keys::new(keys, seed);
    (0..count)
        .map(|_| {
            let mut out = Vec::with_capacity(rows * 16);
            for _ in 0..rows {
                let (k, v) = source.next_row();
                // Writing to a Vec cannot fail.
                let _ = writeln!(out, "{k}\t{}.{:02}", v / 100, v % 100);
            }
            Bytes::from(out)
        })
        .collect()
}

/// `count` distinct multi-row INSERT statements of `rows` rows each.
pub fn insert_statements(keys: usize, rows: usize, count: usize, seed: u64) -> Vec<String> {
    let mut source = Keys::new(keys, seed);
    (0..count)
        .map(|_| {
            let mut sql = String::with_capacity(32 + rows * 20);
            sql.push_str("INSERT INTO s (k, v) VALUES ");
            for i in 0..rows {
                let (k, v) = source.next_row();
                let sep = if i == 0 { "" } else { "," };
                // Writing to a String cannot fail.
                let _ = write!(sql, "{sep}({k}, {}.{:02})", v / 100, v % 100);
            }
            sql
        })
        .collect()
}

/// `count` random keys in `0..keys`, for point lookups.
pub fn lookup_keys(keys: usize, count: usize, seed: u64) -> Vec<i32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let max = i32::try_from(keys).unwrap_or(i32::MAX);
    (0..count).map(|_| rng.random_range(0..max)).collect()
}

#[cfg(test)]
mod tests {
    // No imports: cargo bench builds this module with cfg(test) but no harness.
    #[test]
    fn every_pass_holds_every_key_once() {
        let payload = &super::copy_payloads(10, 20, 1, 7)[0];
        let text = std::str::from_utf8(payload).unwrap_or_default();
        let mut keys: Vec<i32> =
            text.lines().map(|l| l.split('\t').next().unwrap_or("").parse().unwrap_or(-1)).collect();
        assert_eq!(keys.len(), 20);
        keys[..10].sort_unstable();
        assert_eq!(keys[..10], (0..10).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn insert_statement_has_the_rows() {
        let sql = &super::insert_statements(5, 3, 1, 1)[0];
        assert!(sql.starts_with("INSERT INTO s (k, v) VALUES ("), "{sql}");
        assert_eq!(sql.matches('(').count(), 4, "{sql}");
    }
}
