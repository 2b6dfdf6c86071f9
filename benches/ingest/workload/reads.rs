//! Read latency over pgwire: a prepared point lookup by key, and a full
//! scan, over the view the COPY case filled. Each latency is one round trip
//! as the client sees it: Bind, Execute, the rows decoded, ReadyForQuery.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::{BenchResult, Plan, data};

/// Untimed calls before the timed ones (connection and plan caches warm).
const WARMUP_CALLS: usize = 20;

/// The latency distribution of one query at one group count.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The query, as sent.
    pub query: &'static str,
    /// Groups in the view.
    pub groups: i64,
    /// Timed calls.
    pub calls: usize,
    /// Rows returned by the last call.
    pub rows_per_call: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest call.
    pub max: Duration,
}

impl Latency {
    fn from_samples(query: &'static str, groups: i64, rows_per_call: usize, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            query,
            groups,
            calls: samples.len(),
            rows_per_call,
            p50: percentile(&samples, 50),
            p99: percentile(&samples, 99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The smallest sample with at least `p` percent of samples at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Point lookups, then full scans, over a view of `keys` groups fed
/// `rows_ingested` rows.
pub async fn measure(client: &Client, plan: &Plan, keys: usize, rows_ingested: u64) -> BenchResult<Vec<Latency>> {
    let groups = keys as i64;
    Ok(vec![point_lookups(client, plan, keys, groups).await?, full_scans(client, plan, groups, rows_ingested).await?])
}

const POINT_LOOKUP: &str = "SELECT * FROM v WHERE k = $1";
const FULL_SCAN: &str = "SELECT * FROM v";

async fn point_lookups(client: &Client, plan: &Plan, keys: usize, groups: i64) -> BenchResult<Latency> {
    let statement = client.prepare(POINT_LOOKUP).await?;
    let wide = statement.params().first() == Some(&Type::INT8);
    let keys = data::lookup_keys(keys, WARMUP_CALLS + plan.lookups, 42);
    let mut samples = Vec::with_capacity(plan.lookups);
    for (i, &key) in keys.iter().enumerate() {
        let key64 = i64::from(key);
        let param: &(dyn ToSql + Sync) = if wide { &key64 } else { &key };
        let start = Instant::now();
        let rows = client.query(&statement, &[param]).await?;
        let elapsed = start.elapsed();
        // Every key has a group: the data holds each key once per pass.
        let found: i32 = match rows.as_slice() {
            [row] => row.try_get::<_, i32>(0)?,
            _ => return Err(format!("k = {key} returned {} rows", rows.len()).into()),
        };
        if found != key {
            return Err(format!("k = {key} returned the group of {found}").into());
        }
        if i >= WARMUP_CALLS {
            samples.push(elapsed);
        }
    }
    Ok(Latency::from_samples(POINT_LOOKUP, groups, 1, samples))
}

/// Full scans until `plan.scans_max` or the time budget; the first checks
/// that the counts add up to the rows ingested.
async fn full_scans(client: &Client, plan: &Plan, groups: i64, rows_ingested: u64) -> BenchResult<Latency> {
    let statement = client.prepare(FULL_SCAN).await?;
    let budget = Duration::from_secs_f64(plan.scan_seconds_max);
    let begun = Instant::now();
    let mut samples = Vec::new();
    let mut rows_per_call = 0;
    while samples.len() < plan.scans_max && (samples.is_empty() || begun.elapsed() < budget) {
        let start = Instant::now();
        let rows = client.query(&statement, &[]).await?;
        samples.push(start.elapsed());
        rows_per_call = rows.len();
        if samples.len() == 1 {
            let counted: i64 = rows.iter().map(|r| r.try_get::<_, i64>(1).unwrap_or(0)).sum();
            if rows.len() as i64 != groups || counted as u64 != rows_ingested {
                return Err(format!(
                    "full scan: {} groups counting {counted} rows; expected {groups} groups counting {rows_ingested}",
                    rows.len()
                )
                .into());
            }
        }
    }
    Ok(Latency::from_samples(FULL_SCAN, groups, rows_per_call, samples))
}

#[cfg(test)]
mod tests {
    // No imports: cargo bench builds this module with cfg(test) but no harness.
    #[test]
    fn percentiles_by_rank() {
        let ms = std::time::Duration::from_millis;
        let samples: Vec<std::time::Duration> = (1..=100).map(ms).collect();
        assert_eq!(super::percentile(&samples, 50), ms(50));
        assert_eq!(super::percentile(&samples, 99), ms(99));
        assert_eq!(super::percentile(&samples[..1], 99), ms(1));
    }
}
