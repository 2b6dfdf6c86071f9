//! The cost of a sliding window: ingest into a 1-hour window with 1-minute
//! steps against the same view without a window, memory per (key, step),
//! and the time to read the window.
//!
//! ```text
//! cargo bench --bench windows            # the figures in docs/benchmarks.md
//! cargo bench --bench windows -- --quick # a smoke run (also what `cargo test` runs)
//! cargo bench --bench windows -- --per-step=1  # one load only
//! ```
//!
//! An in-process server runs on a manual clock. Each step, COPY sends one
//! (or ten) events for every key (`k`, `v`), then the clock advances one
//! step, so the window ends up holding keys x steps groups. One event per key
//! and step is the worst case: every event creates a group. The baseline, in the same run,
//! is the same view with no window: `SELECT k, count(*), sum(v) FROM s GROUP BY k`.
//! Only the COPYs are timed; a full read is timed three times and the
//! median reported.

#[path = "../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BenchResult;
use eddy::{Config, Server};
use futures::SinkExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// 2026-01-01 00:00:00+00.
const START: i64 = 1_767_225_600_000_000;

struct Plan {
    keys: usize,
    /// Events per key in each step (each run of the benchmark does every count).
    per_step: Vec<usize>,
    /// Steps in the window (also the number of COPYs).
    steps: usize,
    step_minutes: usize,
}

struct Case {
    name: &'static str,
    rows: usize,
    elapsed: Duration,
    groups: i64,
    bytes: i64,
    full_read: Duration,
    point_read: Duration,
    /// Growth of the process's resident memory over the case's ingest.
    rss_growth: i64,
}

fn main() -> ExitCode {
    let quick = common::quick();
    let mut plan = if quick {
        Plan { keys: 1_000, per_step: vec![1, 2], steps: 5, step_minutes: 1 }
    } else {
        Plan { keys: 100_000, per_step: vec![1, 10], steps: 60, step_minutes: 1 }
    };
    // `--per-step=N` runs one of the two loads (for a profiler).
    if let Some(n) = std::env::args().find_map(|a| a.strip_prefix("--per-step=").and_then(|n| n.parse().ok())) {
        plan.per_step = vec![n];
    }
    common::run_report("windows", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let mut out = String::new();
    for &per_step in &plan.per_step {
        out += &run_one(plan, per_step).await?;
        out.push('\n');
    }
    Ok(out)
}

async fn run_one(plan: &Plan, per_step: usize) -> BenchResult<String> {
    let width = plan.steps * plan.step_minutes;
    let factor = 100.0 / plan.steps as f64;
    let unwindowed = "SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k".to_string();
    let sliding = format!(
        "WITH (sw = '{width} minutes', step_factor = '{factor:.10}') AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k"
    );
    let base = case(plan, per_step, "no window (baseline)", &format!("AS {unwindowed}")).await?;
    let window = case(plan, per_step, "sliding, 1-minute steps", &sliding).await?;
    let expected_groups = (plan.keys * plan.steps) as i64;
    if window.groups != expected_groups || base.groups != plan.keys as i64 {
        return Err(
            format!("groups: window {} (want {expected_groups}), baseline {}", window.groups, base.groups).into()
        );
    }
    let mut out = format!(
        "{} keys, a {width}-minute window in {} steps, {per_step} event(s) per key per step: {} events per case\n\n\
         | view | events/s | groups | state bytes (estimate) | per group | RSS growth | per group | full read | point read (k = 42) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        plan.keys, plan.steps, base.rows
    );
    for c in [&base, &window] {
        let rate = c.rows as f64 / c.elapsed.as_secs_f64();
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.name,
            common::thousands(rate),
            common::thousands(c.groups as f64),
            common::thousands(c.bytes as f64),
            common::thousands(c.bytes as f64 / c.groups.max(1) as f64),
            common::thousands(c.rss_growth as f64),
            common::thousands(c.rss_growth as f64 / c.groups.max(1) as f64),
            common::ms(c.full_read),
            common::ms(c.point_read)
        );
    }
    let ratio = base.elapsed.as_secs_f64() / window.elapsed.as_secs_f64();
    out += &format!("\nwindowed throughput / baseline: {:.2}\n", ratio);
    Ok(out)
}

async fn case(plan: &Plan, per_step: usize, name: &'static str, view: &str) -> BenchResult<Case> {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        manual_clock: Some(START),
        expiry_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let server = Server::start(config).await?;
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port());
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE STREAM s (k bigint, v bigint); CREATE VIEW w {view}")).await?;
    let mut elapsed = Duration::ZERO;
    let rss_before = common::rss_bytes(std::process::id());
    for step in 0..plan.steps {
        let mut text = String::with_capacity(plan.keys * per_step * 12);
        for i in 0..plan.keys * per_step {
            text.push_str(&format!("{}\t{}\n", i % plan.keys, (i + step) % 100));
        }
        let started = Instant::now();
        copy(&client, text).await?;
        elapsed += started.elapsed();
        if step + 1 < plan.steps {
            client
                .batch_execute(&format!("SELECT eddy_advance_clock(interval '{} minutes')", plan.step_minutes))
                .await?;
        }
    }
    let rss_growth = common::rss_bytes(std::process::id()) - rss_before;
    let stats = first_row(&client, "SELECT groups, bytes FROM pipelinedb.views WHERE name = 'w'").await?;
    // The median of three full reads.
    let mut reads = Vec::new();
    let mut all = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        all = client.simple_query("SELECT k, n, total FROM w").await?;
        reads.push(started.elapsed());
    }
    reads.sort();
    let full_read = reads[1];
    let read_rows = all.iter().filter(|m| matches!(m, SimpleQueryMessage::Row(_))).count();
    if read_rows != plan.keys {
        return Err(format!("{name}: read {read_rows} rows, want {}", plan.keys).into());
    }
    let started = Instant::now();
    let point = first_row(&client, "SELECT n FROM w WHERE k = 42").await?;
    let point_read = started.elapsed();
    let want = (plan.steps * per_step).to_string();
    if point.first() != Some(&want) {
        return Err(format!("{name}: key 42 counted {point:?}, want {want}").into());
    }
    drop(client);
    server.shutdown().await;
    let parse = |i: usize| stats.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Ok(Case {
        name,
        rows: plan.keys * plan.steps * per_step,
        elapsed,
        groups: parse(0),
        bytes: parse(1),
        full_read,
        point_read,
        rss_growth,
    })
}

async fn copy(client: &Client, text: String) -> BenchResult<()> {
    let sink = client.copy_in("COPY s (k, v) FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    sink.finish().await?;
    Ok(())
}

async fn first_row(client: &Client, sql: &str) -> BenchResult<Vec<String>> {
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect());
        }
    }
    Err(format!("no row from {sql}").into())
}
