//! The changelog core's costs: `UPDATE` by primary key on a big table that
//! feeds a `GROUP BY` view, and a chain of views against one view on the
//! same events.
//!
//! ```text
//! cargo bench --bench tables            # the figures in docs/benchmarks.md
//! cargo bench --bench tables -- --quick # a smoke run (also what `cargo test` runs)
//! ```
//!
//! Every case runs an in-process, ephemeral server (no insert log, so the
//! figures are the engine's CPU, not the disk's fsync) driven over pgwire
//! with tokio-postgres.
//!
//! - **UPDATE by primary key.** Load N rows into `t (id int PRIMARY KEY,
//!   g int, v int)` with COPY, then 4 connections run the prepared
//!   `UPDATE t SET g = $2, v = v + 1 WHERE id = $1` on random ids for a
//!   while. Once with a view `SELECT g, count(*), sum(v) FROM t GROUP BY g`
//!   (100 groups) reading the table, and once without any view: the
//!   baseline of the same run.
//! - **A chain of views.** COPY the same events into a stream read by one
//!   view (`SELECT k, count(*) AS n FROM s GROUP BY k`), then by that view
//!   plus a view over it (`SELECT k, n FROM v1 WHERE n > 2`) plus a view
//!   over that one (`SELECT count(*), sum(n) FROM v2`): rows per second, and
//!   the cost of the two extra levels.

#[path = "../common/mod.rs"]
mod common;

use common::pg::{connect, copy, start};

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::BenchResult;

struct Plan {
    table_rows: usize,
    update_seconds: f64,
    stream_rows: usize,
    keys: usize,
}

fn main() -> ExitCode {
    let plan = if common::quick() {
        Plan { table_rows: 20_000, update_seconds: 0.5, stream_rows: 50_000, keys: 1_000 }
    } else {
        Plan { table_rows: 1_000_000, update_seconds: 5.0, stream_rows: 2_000_000, keys: 10_000 }
    };
    common::run_report("tables", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let mut out = format!(
        "| UPDATE by primary key, {} rows, 4 connections | updates/s |\n|---|---:|\n",
        common::thousands(plan.table_rows as f64)
    );
    let without = update_case(plan, false).await?;
    let with = update_case(plan, true).await?;
    out.push_str(&format!("| no view (baseline) | {} |\n", common::thousands(without)));
    out.push_str(&format!(
        "| a GROUP BY view over the table | {} ({:.0}% of the baseline) |\n",
        common::thousands(with),
        100.0 * with / without
    ));
    out.push_str(&format!(
        "\n| COPY {} events, {} keys | rows/s |\n|---|---:|\n",
        common::thousands(plan.stream_rows as f64),
        common::thousands(plan.keys as f64)
    ));
    let one = chain_case(plan, 1).await?;
    let three = chain_case(plan, 3).await?;
    out.push_str(&format!("| one view (baseline) | {} |\n", common::thousands(one)));
    out.push_str(&format!(
        "| a chain of three views | {} ({:.0}% of the baseline) |\n",
        common::thousands(three),
        100.0 * three / one
    ));
    Ok(out)
}

/// Updates per second by primary key, with or without a view.
async fn update_case(plan: &Plan, with_view: bool) -> BenchResult<f64> {
    let (server, client) = start().await?;
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, g int, v int)").await?;
    if with_view {
        client.batch_execute("CREATE VIEW by_g AS SELECT g, count(*) AS n, sum(v) AS total FROM t GROUP BY g").await?;
    }
    copy(&client, "t", plan.table_rows, |i| format!("{i}\t{}\t0\n", i % 100)).await?;
    let deadline = Instant::now() + Duration::from_secs_f64(plan.update_seconds);
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let client = connect(&server).await?;
        let rows = plan.table_rows as u64;
        workers.push(tokio::spawn(async move {
            let update = client.prepare("UPDATE t SET g = $2, v = v + 1 WHERE id = $1").await?;
            let mut n = 0u64;
            let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (id, g) = ((x % rows) as i32, ((x >> 32) % 100) as i32);
                let changed = client.execute(&update, &[&id, &g]).await?;
                if changed != 1 {
                    return Err(format!("an UPDATE changed {changed} rows").into());
                }
                n += 1;
            }
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(n)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    if with_view {
        let row = client.query_one("SELECT sum(n)::bigint FROM by_g", &[]).await?;
        let rows: Option<i64> = row.get(0);
        if rows != Some(plan.table_rows as i64) {
            return Err(format!("the view counts {rows:?} rows, the table has {}", plan.table_rows).into());
        }
    }
    server.shutdown().await;
    Ok(rate)
}

/// COPY rows per second into a stream read by a chain of `levels` views.
async fn chain_case(plan: &Plan, levels: usize) -> BenchResult<f64> {
    let (server, client) = start().await?;
    client.batch_execute("CREATE STREAM s (k int, v int)").await?;
    client.batch_execute("CREATE VIEW v1 AS SELECT k, count(*) AS n FROM s GROUP BY k").await?;
    if levels >= 3 {
        client.batch_execute("CREATE VIEW v2 AS SELECT k, n FROM v1 WHERE n > 2").await?;
        client.batch_execute("CREATE VIEW v3 AS SELECT count(*) AS keys, sum(n) AS rows FROM v2").await?;
    }
    let keys = plan.keys;
    let started = Instant::now();
    for part in 0..4 {
        copy(&client, "s", plan.stream_rows / 4, |i| format!("{}\t{i}\n", (i * 7 + part) % keys)).await?;
    }
    let rate = plan.stream_rows as f64 / started.elapsed().as_secs_f64();
    if levels >= 3 {
        let row = client.query_one("SELECT keys, rows::bigint FROM v3", &[]).await?;
        let (k, r): (i64, Option<i64>) = (row.get(0), row.get(1));
        if k != keys as i64 || r != Some(plan.stream_rows as i64) {
            return Err(format!("the chain's end holds {k} keys and {r:?} rows").into());
        }
    }
    server.shutdown().await;
    Ok(rate)
}
