//! Kafka sink throughput, in messages per second written to the topic, with
//! and without transactions (`exactly_once = true | false`), side by side
//! in one run.
//!
//! ```text
//! cargo bench --bench sink            # the figures in docs/benchmarks.md
//! cargo bench --bench sink -- --quick # a smoke run
//! ```
//!
//! An in-process server is driven over pgwire; the broker is noida-db out
//! of process (the one broker on this machine's registries whose
//! transactions are real). The view is `SELECT k, count(*) AS n, sum(v) AS
//! s FROM events GROUP BY k`.
//!
//! - **Snapshot.** The view holds `GROUPS` groups; a new upsert sink writes
//!   them all (its catch-up: the topic read back, then one transaction).
//! - **Changes.** An append sink follows the view while `BATCHES` COPYs of
//!   `BATCH_ROWS` rows each change it; a changed group is a −1 and a +1 (a
//!   new group only a +1), and writes the view merges together reach the
//!   sink as their net change. The time runs from the first COPY to the
//!   sink having written everything (`lag` 0 once the last COPY returned).
//! - **Single-row INSERTs.** The same, but 4 connections each send
//!   `INSERTS` single-row INSERTs over 1,000 keys: many small epochs, where
//!   a transaction per batch of epochs is the cost to see.
//!
//! - **A stream's events.** A sink of a stream (no view) while the same
//!   COPYs go into it, on a server with a data directory: a stream's sink
//!   writes an event once a checkpoint (every second) holds its outbox.
//!   The baseline is the same COPYs into a stream with no sink, on the same
//!   server.
//!
//! The run fails unless each snapshot sink wrote exactly one message per
//! group, the changes sinks at least one per group, and each stream sink
//! one per event.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::BenchResult;
use common::broker::Broker;
use tokio_postgres::Client;

struct Plan {
    inserts: usize,
    groups: usize,
    batches: usize,
    batch_rows: usize,
    keys: usize,
}

fn main() -> ExitCode {
    let plan = match common::quick() {
        true => Plan { inserts: 50, groups: 2_000, batches: 4, batch_rows: 500, keys: 1_000 },
        false => Plan { inserts: 2_500, groups: 200_000, batches: 40, batch_rows: 5_000, keys: 50_000 },
    };
    common::run_report("sink", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let broker = Broker::start_noida()?;
    let (server, db) = common::pg::start().await?;
    db.batch_execute(&format!(
        "SELECT pipeline_kafka.add_broker('{}');
         CREATE STREAM events (k bigint, v bigint);
         CREATE VIEW snap AS SELECT k, count(*) AS n, sum(v) AS s FROM events GROUP BY k;",
        broker.brokers()
    ))
    .await?;
    common::pg::copy(&db, "events", plan.groups, |i| format!("{i}\t{i}\n")).await?;
    let mut out =
        "| case | exactly_once | messages | seconds | messages/s | transactions |\n|---|---|---:|---:|---:|---:|\n"
            .to_string();
    for exactly_once in [true, false] {
        let name = format!("snap_{exactly_once}");
        let started = Instant::now();
        db.batch_execute(&format!(
            "CREATE SINK {name} FROM snap WITH (kafka_topic = '{name}', exactly_once = {exactly_once})"
        ))
        .await?;
        let (messages, transactions) = wait_for(&db, &name, plan.groups as i64).await?;
        out.push_str(&row("snapshot (upsert)", exactly_once, messages, started.elapsed(), transactions));
        db.batch_execute(&format!("DROP SINK {name}")).await?;
    }
    for exactly_once in [true, false] {
        let (messages, seconds, transactions) = changes_case(&server, plan, exactly_once).await?;
        out.push_str(&row("COPY changes (append)", exactly_once, messages, seconds, transactions));
    }
    let (_, baseline, _) = inserts_case(&server, plan, None).await?;
    out.push_str(&format!(
        "| single-row INSERTs, no sink (baseline) | | {} rows | {:.2} | {} rows/s | |\n",
        common::thousands((4 * plan.inserts) as f64),
        baseline.as_secs_f64(),
        common::thousands((4 * plan.inserts) as f64 / baseline.as_secs_f64())
    ));
    for exactly_once in [true, false] {
        let (messages, seconds, transactions) = inserts_case(&server, plan, Some(exactly_once)).await?;
        out.push_str(&row("single-row INSERTs (append)", exactly_once, messages, seconds, transactions));
    }
    out.push_str(&streams_case(plan, &broker).await?);
    out.push_str(&format!("\nBroker: {}.\n", broker.name()));
    Ok(out)
}

fn row(case: &str, exactly_once: bool, messages: i64, took: Duration, transactions: i64) -> String {
    let secs = took.as_secs_f64();
    format!(
        "| {case} | {exactly_once} | {} | {secs:.2} | {} | {transactions} |\n",
        common::thousands(messages as f64),
        common::thousands(messages as f64 / secs)
    )
}

/// A view of its own, an append sink on it, then the COPYs.
async fn changes_case(server: &eddy::Server, plan: &Plan, exactly_once: bool) -> BenchResult<(i64, Duration, i64)> {
    let db = common::pg::connect(server).await?;
    let (stream, view) = (format!("ev_{exactly_once}"), format!("agg_{exactly_once}"));
    db.batch_execute(&format!(
        "CREATE STREAM {stream} (k bigint, v bigint);
         CREATE VIEW {view} AS SELECT k, count(*) AS n, sum(v) AS s FROM {stream} GROUP BY k;
         CREATE SINK {view} FROM {view} WITH (kafka_topic = '{view}', envelope = 'append', exactly_once = {exactly_once});"
    ))
    .await?;
    wait_running(&db, &view).await?;
    let mut seen: HashSet<usize> = HashSet::new();
    let started = Instant::now();
    for batch in 0..plan.batches {
        let keys: Vec<usize> = (0..plan.batch_rows).map(|i| (batch * plan.batch_rows + i) * 7919 % plan.keys).collect();
        seen.extend(keys.iter().copied());
        common::pg::copy(&db, &stream, keys.len(), |i| format!("{}\t{i}\n", keys[i])).await?;
    }
    let (messages, transactions) = wait_idle(&db, &view).await?;
    if messages < seen.len() as i64 {
        return Err(format!("sink {view} wrote {messages} messages for {} groups", seen.len()).into());
    }
    Ok((messages, started.elapsed(), transactions))
}

/// COPYs into a stream, with no sink (the baseline), then with a sink of
/// each kind; a server with a data directory and 1 s checkpoints.
async fn streams_case(plan: &Plan, broker: &Broker) -> BenchResult<String> {
    let dir = std::env::temp_dir().join(format!("eddy-bench-sink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = eddy::Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(dir.clone()),
        ..eddy::Config::default()
    };
    let server = eddy::Server::start(config).await?;
    let db = common::pg::connect(&server).await?;
    db.batch_execute(&format!("SELECT pipeline_kafka.add_broker('{}')", broker.brokers())).await?;
    let events = plan.batches * plan.batch_rows;
    let copies = |stream: String| {
        let db = &db;
        async move {
            let started = Instant::now();
            for batch in 0..plan.batches {
                let first = batch * plan.batch_rows;
                common::pg::copy(db, &stream, plan.batch_rows, |i| format!("{}\t{}\n", (first + i) % 1000, first + i))
                    .await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(started.elapsed())
        }
    };
    db.batch_execute("CREATE STREAM bare (k bigint, v bigint)").await?;
    let baseline = copies("bare".into()).await?;
    let mut out = format!(
        "| COPY into a stream, no sink (baseline, data directory) | | {} rows | {:.2} | {} rows/s | |\n",
        common::thousands(events as f64),
        baseline.as_secs_f64(),
        common::thousands(events as f64 / baseline.as_secs_f64())
    );
    for exactly_once in [true, false] {
        let (stream, sink) = (format!("st_{exactly_once}"), format!("st_out_{exactly_once}"));
        db.batch_execute(&format!(
            "CREATE STREAM {stream} (k bigint, v bigint);
             CREATE SINK {sink} FROM {stream} WITH (kafka_topic = '{sink}', exactly_once = {exactly_once});"
        ))
        .await?;
        wait_running(&db, &sink).await?;
        let started = Instant::now();
        let copied = copies(stream).await?;
        let (messages, transactions) = wait_for(&db, &sink, events as i64).await?;
        out.push_str(&row("COPY into a stream (its events)", exactly_once, messages, started.elapsed(), transactions));
        out.push_str(&format!("|   (the COPYs alone) | | | {:.2} | | |\n", copied.as_secs_f64()));
    }
    drop(db);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// 4 connections of single-row INSERTs into a view with an append sink
/// (`None`: no sink, the baseline).
async fn inserts_case(
    server: &eddy::Server,
    plan: &Plan,
    exactly_once: Option<bool>,
) -> BenchResult<(i64, Duration, i64)> {
    let db = common::pg::connect(server).await?;
    let suffix = exactly_once.map_or("none".to_string(), |e| e.to_string());
    let (stream, view) = (format!("one_{suffix}"), format!("ones_{suffix}"));
    db.batch_execute(&format!(
        "CREATE STREAM {stream} (k bigint, v bigint);
         CREATE VIEW {view} AS SELECT k, count(*) AS n, sum(v) AS s FROM {stream} GROUP BY k;"
    ))
    .await?;
    if let Some(exactly_once) = exactly_once {
        db.batch_execute(&format!(
            "CREATE SINK {view} FROM {view} WITH (kafka_topic = '{view}', envelope = 'append', exactly_once = {exactly_once})"
        ))
        .await?;
        wait_running(&db, &view).await?;
    }
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let client = common::pg::connect(server).await?;
        let (sql, n) = (format!("INSERT INTO {stream} VALUES ($1, $2)"), plan.inserts as i64);
        writers.push(tokio::spawn(async move {
            for i in 0..n {
                client.execute(&sql, &[&((w * n + i) * 7919 % 1000), &i]).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    if exactly_once.is_none() {
        return Ok((0, started.elapsed(), 0));
    }
    let (messages, transactions) = wait_idle(&db, &view).await?;
    if messages < 1_000.min(4 * plan.inserts) as i64 {
        return Err(format!("sink {view} wrote only {messages} messages").into());
    }
    Ok((messages, started.elapsed(), transactions))
}

async fn wait_running(db: &Client, sink: &str) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = db.query_one("SELECT status, last_error FROM pipelinedb.sinks WHERE name = $1", &[&sink]).await?;
        if row.get::<_, String>(0) == "running" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("sink {sink} never ran: {:?}", row.get::<_, Option<String>>(1)).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `sink` has written everything its relation has; its
/// messages and transactions.
async fn wait_idle(db: &Client, sink: &str) -> BenchResult<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut idle_at: Option<i64> = None;
    loop {
        let row = db
            .query_one("SELECT messages, transactions, lag, last_error FROM pipelinedb.sinks WHERE name = $1", &[&sink])
            .await?;
        let (messages, lag): (i64, i64) = (row.get(0), row.get(2));
        // Idle twice in a row, 20 ms apart, with nothing written between.
        if lag == 0 && idle_at == Some(messages) {
            return Ok((messages, row.get(1)));
        }
        idle_at = (lag == 0).then_some(messages);
        if idle_at.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if Instant::now() > deadline {
            return Err(format!("sink {sink} never caught up: {:?}", row.get::<_, Option<String>>(3)).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `sink` wrote `expected` messages; its messages and transactions.
async fn wait_for(db: &Client, sink: &str, expected: i64) -> BenchResult<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let row = db
            .query_one("SELECT messages, transactions, last_error FROM pipelinedb.sinks WHERE name = $1", &[&sink])
            .await?;
        let (messages, transactions): (i64, i64) = (row.get(0), row.get(1));
        if messages > expected {
            return Err(format!("sink {sink} wrote {messages} messages, {expected} expected").into());
        }
        if messages == expected {
            return Ok((messages, transactions));
        }
        if Instant::now() > deadline {
            return Err(
                format!("sink {sink} wrote {messages} of {expected}: {:?}", row.get::<_, Option<String>>(2)).into()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
