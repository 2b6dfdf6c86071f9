//! Lookup joins: a stream joined with a table of users, against the same
//! view without the join, in the same run.
//!
//! ```text
//! cargo bench --bench joins            # the figures in docs/benchmarks.md
//! cargo bench --bench joins -- --quick # a smoke run
//! ```
//!
//! An in-process, ephemeral server (no insert log: the figures are the
//! engine's CPU, not the disk's) is driven over pgwire with tokio-postgres.
//! The table `users (id bigint PRIMARY KEY, tier text)` holds N users.
//!
//! - **COPY.** Events `(user_id, ms)` are copied into the stream `clicks`,
//!   read by `SELECT u.tier, count(*), sum(c.ms) FROM clicks c JOIN users u
//!   ON c.user_id = u.id GROUP BY u.tier`; the baseline is
//!   `SELECT user_id % 10, count(*), sum(ms) FROM clicks GROUP BY 1`.
//! - **INSERT.** 4 connections run a prepared single-row `INSERT INTO
//!   clicks` for a while, with each view: what one event's lookup costs.
//!
//! Every case checks that the view counted every event.

#[path = "../common/mod.rs"]
mod common;

use common::pg::{connect, copy};

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::BenchResult;
use eddy::Server;
use tokio_postgres::Client;

struct Plan {
    users: usize,
    events: usize,
    insert_seconds: f64,
}

const JOINED: &str =
    "SELECT u.tier, count(*) AS n, sum(c.ms) AS ms FROM clicks c JOIN users u ON c.user_id = u.id GROUP BY u.tier";
const PLAIN: &str = "SELECT user_id % 10 AS tier, count(*) AS n, sum(ms) AS ms FROM clicks GROUP BY 1";

fn main() -> ExitCode {
    let plan = if common::quick() {
        Plan { users: 10_000, events: 50_000, insert_seconds: 0.5 }
    } else {
        Plan { users: 100_000, events: 2_000_000, insert_seconds: 5.0 }
    };
    common::run_report("joins", run(&plan))
}

async fn run(plan: &Plan) -> BenchResult<String> {
    let mut out = format!(
        "| {} users; view | COPY {} events, rows/s | single-row INSERT, 4 connections, rows/s |\n|---|---:|---:|\n",
        common::thousands(plan.users as f64),
        common::thousands(plan.events as f64)
    );
    let mut baseline = (0.0, 0.0);
    for (label, view) in [("without the join (baseline)", PLAIN), ("joined with users", JOINED)] {
        let copy = copy_case(plan, view).await?;
        let insert = insert_case(plan, view).await?;
        if view == PLAIN {
            baseline = (copy, insert);
            out.push_str(&format!("| {label} | {} | {} |\n", common::thousands(copy), common::thousands(insert)));
        } else {
            out.push_str(&format!(
                "| {label} | {} ({:.0}%) | {} ({:.0}%) |\n",
                common::thousands(copy),
                100.0 * copy / baseline.0,
                common::thousands(insert),
                100.0 * insert / baseline.1
            ));
        }
    }
    Ok(out)
}

/// A server with the users table and view `v` over `clicks`.
async fn start(plan: &Plan, view: &str) -> BenchResult<(Server, Client)> {
    let (server, client) = common::pg::start().await?;
    client.batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, tier text NOT NULL)").await?;
    copy(&client, "users", plan.users, |i| format!("{i}\ttier{}\n", i % 10)).await?;
    client.batch_execute("CREATE STREAM clicks (user_id bigint, ms int)").await?;
    client.batch_execute(&format!("CREATE VIEW v AS {view}")).await?;
    Ok((server, client))
}

/// Fails unless view `v` counted `events` events.
async fn check(client: &Client, events: u64) -> BenchResult<()> {
    let counted: Option<i64> = client.query_one("SELECT sum(n)::bigint FROM v", &[]).await?.get(0);
    if counted != Some(events as i64) {
        return Err(format!("the view counted {counted:?} events of {events}").into());
    }
    Ok(())
}

/// COPY rows per second into `clicks`, read by `view`.
async fn copy_case(plan: &Plan, view: &str) -> BenchResult<f64> {
    let (server, client) = start(plan, view).await?;
    let users = plan.users;
    let started = Instant::now();
    for part in 0..4 {
        copy(&client, "clicks", plan.events / 4, |i| format!("{}\t{}\n", (i * 7919 + part) % users, i % 100)).await?;
    }
    let rate = plan.events as f64 / started.elapsed().as_secs_f64();
    check(&client, (plan.events / 4 * 4) as u64).await?;
    server.shutdown().await;
    Ok(rate)
}

/// Single-row INSERTs per second into `clicks`, read by `view`.
async fn insert_case(plan: &Plan, view: &str) -> BenchResult<f64> {
    let (server, client) = start(plan, view).await?;
    let deadline = Instant::now() + Duration::from_secs_f64(plan.insert_seconds);
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let client = connect(&server).await?;
        let users = plan.users as u64;
        workers.push(tokio::spawn(async move {
            let insert = client.prepare("INSERT INTO clicks VALUES ($1, $2)").await?;
            let mut n = 0u64;
            let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (user, ms) = ((x % users) as i64, ((x >> 40) % 100) as i32);
                client.execute(&insert, &[&user, &ms]).await?;
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
    check(&client, total).await?;
    server.shutdown().await;
    Ok(rate)
}
