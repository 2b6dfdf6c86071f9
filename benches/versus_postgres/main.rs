//! Eddy side by side with PostgreSQL on one workload: N events over K keys
//! into a summary of `count`, `sum` and `avg` by key.
//!
//! ```text
//! cargo bench --bench versus_postgres            # 10,000,000 events, 100,000 keys
//! cargo bench --bench versus_postgres -- --quick # 20,000 events: what `cargo test --all-targets` runs
//! ```
//!
//! 1. **Eddy**, durable (a data directory, fsync before each acknowledgement),
//!    through COPY and through INSERTs of 1,000 rows.
//! 2. **PostgreSQL, incrementally**: an `events` table with a row trigger
//!    doing `INSERT ... ON CONFLICT DO UPDATE` into `summary`, what a PHP
//!    team would build; events arrive by COPY.
//! 3. **PostgreSQL, recomputing**: raw events in an indexed table, the
//!    summary computed by the read.
//!
//! PostgreSQL (15, from Debian; `tests/run.sh` installs it) is started by
//! the benchmark on a temporary directory, on loopback, as the `postgres`
//! user, with its default (durable) settings.
//!
//! Then the ingest of each system is measured again at several numbers of
//! groups (keys), and plotted: `docs/throughput-vs-groups.png` (the smoke
//! run draws its plot in the target directory instead).

#[path = "../common/mod.rs"]
mod common;
mod plot;
mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BenchResult;
use eddy::{Config, Server};
use futures::SinkExt;
use postgres::Postgres;
use tokio_postgres::{Client, NoTls};

#[derive(Clone)]
struct Plan {
    events: usize,
    keys: usize,
    lookups: usize,
    scans: usize,
    /// Events per point of the throughput-against-groups sweep.
    sweep_events: usize,
    /// The numbers of keys (groups) the sweep measures.
    sweep_keys: Vec<usize>,
    /// Where the plot goes.
    plot: PathBuf,
}

/// What one system did.
struct Outcome {
    name: &'static str,
    ingest: f64,
    point: (Duration, Duration),
    full: (Duration, Duration),
    disk: u64,
    memory: i64,
}

fn main() -> ExitCode {
    let quick = common::quick();
    let plan = if quick {
        Plan {
            events: 20_000,
            keys: 1_000,
            lookups: 50,
            scans: 3,
            sweep_events: 5_000,
            sweep_keys: vec![10, 1_000],
            plot: Path::new(env!("CARGO_TARGET_TMPDIR")).join("throughput-vs-groups.png"),
        }
    } else {
        Plan {
            events: 10_000_000,
            keys: 100_000,
            lookups: 1_000,
            scans: 20,
            sweep_events: 2_000_000,
            sweep_keys: vec![100, 1_000, 10_000, 100_000, 1_000_000],
            plot: Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/throughput-vs-groups.png"),
        }
    };
    common::run_report("versus_postgres", run(&plan))
}

/// The events as COPY text chunks of 100,000 rows: key, value.
fn events(plan: &Plan) -> Vec<String> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    for i in 0..plan.events {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = state % plan.keys as u64;
        chunk.push_str(&format!("{key}\t{}\n", state % 1000));
        if (i + 1) % 100_000 == 0 {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let chunks = events(plan);
    let mut outcomes = vec![eddy_run(plan, &chunks, false).await?, eddy_run(plan, &chunks, true).await?];
    let postgres = Postgres::start()?;
    outcomes.push(postgres_run(plan, &chunks, &postgres, true).await?);
    outcomes.push(postgres_run(plan, &chunks, &postgres, false).await?);
    drop(chunks);
    let sweep = sweep(plan, &postgres).await?;
    drop(postgres);
    let mut out = format!(
        "{} events, {} keys; reads: {} point lookups, {} full summaries\n\n\
         | system | ingest rows/s | point lookup p50 / p99 | full summary p50 / p99 | disk | memory |\n|---|---:|---:|---:|---:|---:|\n",
        plan.events, plan.keys, plan.lookups, plan.scans
    );
    for o in &outcomes {
        out += &format!(
            "| {} | {:.0} | {} / {} | {} / {} | {:.1} MiB | {:.1} MiB |\n",
            o.name,
            o.ingest,
            ms(o.point.0),
            ms(o.point.1),
            ms(o.full.0),
            ms(o.full.1),
            o.disk as f64 / 1048576.0,
            o.memory as f64 / 1048576.0
        );
    }
    let (eddy, pg_inc, pg_raw) = (&outcomes[0], &outcomes[2], &outcomes[3]);
    out += &format!(
        "\nEddy COPY / PostgreSQL trigger ingest: {:.1}x; / PostgreSQL raw COPY: {:.1}x\n\
         point lookup p50, PostgreSQL trigger / Eddy: {:.2}x; full summary p50, PostgreSQL recompute / Eddy: {:.2}x\n",
        eddy.ingest / pg_inc.ingest,
        eddy.ingest / pg_raw.ingest,
        pg_inc.point.0.as_secs_f64() / eddy.point.0.as_secs_f64(),
        pg_raw.full.0.as_secs_f64() / eddy.full.0.as_secs_f64()
    );
    out += &format!("\nIngest rows/s against the number of groups ({} events each):\n\n| system |", plan.sweep_events);
    for keys in &plan.sweep_keys {
        out += &format!(" {} groups |", common::thousands(*keys as f64));
    }
    out += &format!("\n|---|{}\n", "---:|".repeat(plan.sweep_keys.len()));
    for s in &sweep {
        out += &format!("| {} |", s.name);
        for (_, rate) in &s.points {
            out += &format!(" {} |", common::thousands(*rate));
        }
        out += "\n";
    }
    plot::throughput_vs_groups(
        &plan.plot,
        &format!("Ingest against groups: {} events, count/sum/avg by key", common::thousands(plan.sweep_events as f64)),
        &sweep,
    )?;
    out += &format!("\nPlot: {}\n", plan.plot.display());
    Ok(out)
}

/// Each system's ingest rate at each of the plan's numbers of groups.
async fn sweep(plan: &Plan, pg: &Postgres) -> BenchResult<Vec<plot::Series>> {
    let mut series: Vec<plot::Series> =
        ["Eddy, COPY", "PostgreSQL, trigger + ON CONFLICT", "PostgreSQL, raw events (COPY)"]
            .into_iter()
            .map(|name| plot::Series { name, points: Vec::new() })
            .collect();
    for &keys in &plan.sweep_keys {
        let point = Plan { events: plan.sweep_events, keys, lookups: 20, scans: 1, ..plan.clone() };
        let chunks = events(&point);
        let rates = [
            eddy_run(&point, &chunks, false).await?.ingest,
            postgres_run(&point, &chunks, pg, true).await?.ingest,
            postgres_run(&point, &chunks, pg, false).await?.ingest,
        ];
        for (s, rate) in series.iter_mut().zip(rates) {
            s.points.push((keys as u64, rate));
        }
    }
    Ok(series)
}

async fn eddy_run(plan: &Plan, chunks: &[String], insert: bool) -> BenchResult<Outcome> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("versus-postgres-eddy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: Some(dir.clone()),
        checkpoint_interval: Duration::from_secs(1),
        ..Config::default()
    };
    let rss_before = common::rss_bytes(std::process::id());
    let server = Server::start(config).await?;
    let client = connect(&format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port())).await?;
    client
        .batch_execute(
            "CREATE STREAM s (k int, v int); CREATE VIEW summary AS SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean FROM s GROUP BY k",
        )
        .await?;
    let started = Instant::now();
    for chunk in chunks {
        if insert {
            for statement in insert_statements(chunk, "s") {
                client.batch_execute(&statement).await?;
            }
        } else {
            copy(&client, "COPY s FROM STDIN", chunk).await?;
        }
    }
    let ingest = plan.events as f64 / started.elapsed().as_secs_f64();
    let point = latencies(&client, "SELECT n, total, mean FROM summary WHERE k = $1", plan, plan.lookups).await?;
    let full = latencies(&client, "SELECT k, n, total, mean FROM summary", plan, plan.scans).await?;
    check_total(&client, "SELECT sum(n)::bigint FROM summary", plan).await?;
    client.batch_execute("CHECKPOINT").await?;
    let memory = common::rss_bytes(std::process::id()) - rss_before;
    let disk = du(&dir);
    drop(client);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let name = if insert { "Eddy, INSERT of 1,000 rows" } else { "Eddy, COPY" };
    Ok(Outcome { name, ingest, point, full, disk, memory })
}

async fn postgres_run(plan: &Plan, chunks: &[String], pg: &Postgres, trigger: bool) -> BenchResult<Outcome> {
    let admin = connect(&pg.conn("postgres")).await?;
    let db = if trigger { "incremental" } else { "recompute" };
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await?;
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let client = connect(&pg.conn(db)).await?;
    let (setup, point_sql, full_sql, total_sql) = if trigger {
        (
            "CREATE TABLE events (k int, v int);
             CREATE TABLE summary (k int PRIMARY KEY, n bigint NOT NULL, total bigint NOT NULL);
             CREATE FUNCTION summarize() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO summary VALUES (NEW.k, 1, NEW.v)
                 ON CONFLICT (k) DO UPDATE SET n = summary.n + 1, total = summary.total + EXCLUDED.total;
               RETURN NULL;
             END $$;
             CREATE TRIGGER summarize AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION summarize();",
            "SELECT n, total, total::float8 / n FROM summary WHERE k = $1",
            "SELECT k, n, total, total::float8 / n FROM summary",
            "SELECT sum(n)::bigint FROM summary",
        )
    } else {
        (
            "CREATE TABLE events (k int, v int); CREATE INDEX ON events (k);",
            "SELECT count(*), sum(v), avg(v)::float8 FROM events WHERE k = $1",
            "SELECT k, count(*), sum(v), avg(v)::float8 FROM events GROUP BY k",
            "SELECT count(*)::bigint FROM events",
        )
    };
    client.batch_execute(setup).await?;
    let started = Instant::now();
    for chunk in chunks {
        copy(&client, "COPY events FROM STDIN", chunk).await?;
    }
    let ingest = plan.events as f64 / started.elapsed().as_secs_f64();
    client.batch_execute("ANALYZE").await?;
    let point = latencies(&client, point_sql, plan, plan.lookups).await?;
    let full = latencies(&client, full_sql, plan, plan.scans).await?;
    check_total(&client, total_sql, plan).await?;
    client.batch_execute("CHECKPOINT").await?;
    let disk = pg_database_size(&client).await?;
    let memory = pg.memory();
    Ok(Outcome {
        name: if trigger { "PostgreSQL, trigger + ON CONFLICT" } else { "PostgreSQL, raw events + GROUP BY at read" },
        ingest,
        point,
        full,
        disk,
        memory,
    })
}

async fn pg_database_size(client: &Client) -> BenchResult<u64> {
    let row = client.query_one("SELECT pg_database_size(current_database())", &[]).await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Every event was counted once.
async fn check_total(client: &Client, sql: &str, plan: &Plan) -> BenchResult<()> {
    let row = client.query_one(sql, &[]).await?;
    let total: i64 = row.get(0);
    if total != plan.events as i64 {
        return Err(format!("{sql}: {total}, want {}", plan.events).into());
    }
    Ok(())
}

/// p50 and p99 of `times` runs of `sql` (with a random key for `$1`).
async fn latencies(client: &Client, sql: &str, plan: &Plan, times: usize) -> BenchResult<(Duration, Duration)> {
    let statement = client.prepare(sql).await?;
    let mut samples = Vec::with_capacity(times);
    for i in 0..times {
        let started = Instant::now();
        if statement.params().is_empty() {
            client.query(&statement, &[]).await?;
        } else {
            let key = ((i * 7919) % plan.keys) as i32;
            let rows = client.query(&statement, &[&key]).await?;
            if rows.len() > 1 {
                return Err(format!("{sql}: {} rows for one key", rows.len()).into());
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

fn insert_statements(chunk: &str, table: &str) -> Vec<String> {
    let rows: Vec<String> = chunk.lines().map(|l| format!("({})", l.replace('\t', ", "))).collect();
    rows.chunks(1_000).map(|c| format!("INSERT INTO {table} (k, v) VALUES {}", c.join(", "))).collect()
}

async fn copy(client: &Client, sql: &str, chunk: &str) -> BenchResult<()> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(chunk.to_string())).await?;
    sink.finish().await?;
    Ok(())
}

async fn connect(conn: &str) -> BenchResult<Client> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn du(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
