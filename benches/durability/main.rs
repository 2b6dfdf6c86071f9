//! The cost of durability: checkpoint and recovery times by view size, and
//! insert throughput with and without the fsync before acknowledgement.
//!
//! ```text
//! cargo bench --bench durability            # the figures in docs/benchmarks.md
//! cargo bench --bench durability -- --quick # a smoke run (also what `cargo test` runs)
//! ```
//!
//! Every case runs an in-process server on a fresh data directory under
//! `target/tmp` and drives it over pgwire with tokio-postgres. The view is
//! `SELECT k, count(*), sum(v), avg(v) FROM s GROUP BY k`.
//!
//! - **Checkpoints.** Load G groups, checkpoint (the first is full), change
//!   1% of the groups and checkpoint again (a delta), and check that a
//!   checkpoint with nothing changed costs nothing. The barrier time (writes
//!   paused) and the total are reported.
//! - **Recovery.** Shut down, then time `Server::start` on the directory:
//!   load the manifest, check and read the state files, rebuild the groups.
//! - **Inserts.** Single-row INSERTs from 4 connections, and COPY, each with
//!   `synchronous_commit` on (fsync before the acknowledgement) and off, and
//!   on an ephemeral server (no log at all) as the baseline of the same run.

#[path = "../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BenchResult;
use eddy::{Config, Server};
use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

struct Plan {
    groups: Vec<usize>,
    insert_seconds: f64,
    copy_rows: usize,
    copy_commands: usize,
}

fn main() -> ExitCode {
    let quick = common::quick();
    let plan = if quick {
        Plan { groups: vec![1_000, 10_000], insert_seconds: 0.5, copy_rows: 20_000, copy_commands: 2 }
    } else {
        Plan { groups: vec![10_000, 1_000_000], insert_seconds: 5.0, copy_rows: 1_000_000, copy_commands: 5 }
    };
    common::run_report("durability", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let mut out = String::from(
        "| groups | full checkpoint (paused / total) | 1% changed: delta checkpoint (paused / total) | nothing changed | recovery | state on disk |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for &g in &plan.groups {
        out.push_str(&checkpoint_case(g).await?);
    }
    out.push_str("\n| ingest | synchronous_commit on (fsync) | off | ephemeral (no log) | on / off |\n|---|---:|---:|---:|---:|\n");
    let mut inserts = Vec::new();
    let mut copies = Vec::new();
    for mode in [Mode::Sync, Mode::Async, Mode::Ephemeral] {
        inserts.push(insert_case(mode, plan.insert_seconds).await?);
        copies.push(copy_case(mode, plan.copy_rows, plan.copy_commands).await?);
    }
    for (name, r) in [("single-row INSERT, 4 connections", &inserts), ("COPY", &copies)] {
        out.push_str(&format!(
            "| {name} | {} rows/s | {} rows/s | {} rows/s | {:.0}% |\n",
            common::thousands(r[0]),
            common::thousands(r[1]),
            common::thousands(r[2]),
            100.0 * r[0] / r[1]
        ));
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Mode {
    Sync,
    Async,
    Ephemeral,
}

fn data_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-durability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn start(dir: Option<&Path>) -> BenchResult<Server> {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.map(Path::to_path_buf),
        checkpoint_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    Ok(Server::start(config).await?)
}

async fn connect(server: &Server) -> BenchResult<Client> {
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port());
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute("SET synchronous_commit = off").await?;
    Ok(client)
}

async fn setup(client: &Client) -> BenchResult<()> {
    client
        .batch_execute(
            "CREATE STREAM s (k bigint, v bigint); CREATE VIEW g AS SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean FROM s GROUP BY k",
        )
        .await?;
    Ok(())
}

async fn copy(client: &Client, keys: impl Iterator<Item = usize>) -> BenchResult<()> {
    let mut text = String::new();
    for k in keys {
        text.push_str(&format!("{k}\t{}\n", k % 100));
    }
    let sink = client.copy_in("COPY s FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    sink.finish().await?;
    Ok(())
}

async fn checkpoint_case(groups: usize) -> BenchResult<String> {
    let dir = data_dir(&format!("checkpoint-{groups}"));
    let server = start(Some(&dir)).await?;
    let client = connect(&server).await?;
    setup(&client).await?;
    for chunk in (0..groups).collect::<Vec<_>>().chunks(200_000) {
        copy(&client, chunk.iter().copied()).await?;
    }
    let full = server.engine().checkpoint().await?;
    copy(&client, (0..groups).step_by(100)).await?;
    let delta = server.engine().checkpoint().await?;
    let idle = server.engine().checkpoint().await?;
    if delta.groups_written != groups.div_ceil(100) as u64 {
        return Err(format!("the delta wrote {} groups, expected {}", delta.groups_written, groups / 100).into());
    }
    let bytes: u64 = full.bytes_written + delta.bytes_written;
    drop(client);
    server.shutdown().await;
    let started = Instant::now();
    let server = start(Some(&dir)).await?;
    let recovery = started.elapsed();
    let client = connect(&server).await?;
    let row = client.query_one("SELECT count(*), sum(n)::bigint FROM g", &[]).await?;
    let (found, rows): (i64, i64) = (row.get(0), row.get(1));
    if found != groups as i64 || rows != (groups + groups.div_ceil(100)) as i64 {
        return Err(format!("recovered {found} groups and {rows} rows").into());
    }
    drop(client);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "| {} | {} / {} | {} / {} | {} | {} | {:.1} MiB |\n",
        common::thousands(groups as f64),
        common::ms(full.paused),
        common::ms(full.total),
        common::ms(delta.paused),
        common::ms(delta.total),
        common::ms(idle.total),
        common::ms(recovery),
        bytes as f64 / (1024.0 * 1024.0)
    ))
}

async fn prepare(mode: Mode, name: &str) -> BenchResult<(Server, PathBuf)> {
    let dir = data_dir(name);
    let server = start(match mode {
        Mode::Ephemeral => None,
        _ => Some(dir.as_path()),
    })
    .await?;
    let client = connect(&server).await?;
    setup(&client).await?;
    Ok((server, dir))
}

async fn session(server: &Server, mode: Mode) -> BenchResult<Client> {
    let client = connect(server).await?;
    if let Mode::Sync = mode {
        client.batch_execute("SET synchronous_commit = on").await?;
    }
    Ok(client)
}

async fn insert_case(mode: Mode, seconds: f64) -> BenchResult<f64> {
    let (server, dir) = prepare(mode, "insert").await?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let client = session(&server, mode).await?;
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare("INSERT INTO s (k, v) VALUES ($1, $2)").await?;
            let mut n = 0u64;
            while Instant::now() < deadline {
                client.execute(&statement, &[&((n * 4 + c) as i64 % 10_000), &1i64]).await?;
                n += 1;
            }
            Ok::<u64, tokio_postgres::Error>(n)
        }));
    }
    let mut rows = 0;
    for t in tasks {
        rows += t.await??;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rate)
}

async fn copy_case(mode: Mode, rows: usize, commands: usize) -> BenchResult<f64> {
    let (server, dir) = prepare(mode, "copy").await?;
    let client = session(&server, mode).await?;
    let mut text = String::new();
    for k in 0..rows {
        text.push_str(&format!("{}\t{}\n", k % 10_000, k % 100));
    }
    let payload = Bytes::from(text);
    let started = Instant::now();
    for _ in 0..commands {
        let sink = client.copy_in("COPY s FROM STDIN").await?;
        futures::pin_mut!(sink);
        sink.send(payload.clone()).await?;
        sink.finish().await?;
    }
    let rate = (rows * commands) as f64 / started.elapsed().as_secs_f64();
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rate)
}
