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
//! - **A join of tables.** `orders (id PRIMARY KEY, customer_id, amount)`
//!   of N rows and `customers (id PRIMARY KEY, segment)` of N / 10 rows; 4
//!   connections run a prepared `UPDATE orders SET amount = amount + 1
//!   WHERE id = $1` for a while, with `SELECT c.segment, count(*),
//!   sum(o.amount) FROM orders o JOIN customers c ON o.customer_id = c.id
//!   GROUP BY c.segment`, against `SELECT customer_id % 10, count(*),
//!   sum(amount) FROM orders GROUP BY 1` (the baseline).
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
    let plain = update_case(plan, TABLE_PLAIN).await?;
    let joined = update_case(plan, TABLE_JOINED).await?;
    out.push_str(&format!(
        "\n| {} orders, {} customers; view | UPDATE by primary key, 4 connections, updates/s |\n|---|---:|\n\
         | orders alone (baseline) | {} |\n| orders joined with customers | {} ({:.0}%) |\n",
        common::thousands(plan.users as f64),
        common::thousands((plan.users / 10) as f64),
        common::thousands(plain),
        common::thousands(joined),
        100.0 * joined / plain
    ));
    Ok(out)
}

const TABLE_JOINED: &str = "SELECT c.segment, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.segment";
const TABLE_PLAIN: &str =
    "SELECT customer_id % 10 AS segment, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1";

/// Updates per second of single orders, read by `view`; the view must then
/// hold every order and every update.
async fn update_case(plan: &Plan, view: &str) -> BenchResult<f64> {
    let (server, client) = common::pg::start().await?;
    let orders = plan.users;
    let customers = orders / 10;
    client.batch_execute("CREATE TABLE customers (id bigint PRIMARY KEY, segment text NOT NULL)").await?;
    client.batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount bigint)").await?;
    copy(&client, "customers", customers, |i| format!("{i}\tsegment{}\n", i % 10)).await?;
    copy(&client, "orders", orders, |i| format!("{i}\t{}\t0\n", i % customers)).await?;
    client.batch_execute(&format!("CREATE VIEW v AS {view}")).await?;
    let deadline = Instant::now() + Duration::from_secs_f64(plan.insert_seconds);
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let client = connect(&server).await?;
        workers.push(tokio::spawn(async move {
            let update = client.prepare("UPDATE orders SET amount = amount + 1 WHERE id = $1").await?;
            let mut n = 0u64;
            let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = (x % orders as u64) as i64;
                client.execute(&update, &[&id]).await?;
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
    let row = client.query_one("SELECT sum(n)::bigint, sum(total)::bigint FROM v", &[]).await?;
    let (n, sum): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    if n != Some(orders as i64) || sum != Some(total as i64) {
        return Err(format!("the view holds {n:?} orders summing to {sum:?}; expected {orders} and {total}").into());
    }
    server.shutdown().await;
    Ok(rate)
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
