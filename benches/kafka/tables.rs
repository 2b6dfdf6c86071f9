//! The upsert-table cases of the Kafka benchmark: keyed messages (the
//! `customers` schema of `eddy generate`: one in ten a tombstone) consumed
//! into a table fed by the topic, with no view and with a `GROUP BY` view,
//! and, for comparison in the same run, into a stream (which ignores the
//! keys, and records each tombstone as a message that did not decode).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::common::BenchResult;
use crate::cpu;
use crate::run::{Case, DynError, Plan, SERVER_THREAD, connect, start_server};

/// The topic of keyed messages.
pub const TABLE_TOPIC: &str = "bench_customers";
const DEADLINE: Duration = Duration::from_secs(600);

/// What the table holds after the first `messages` messages: rows, and
/// customers per plan.
fn expected(messages: u64, keys: u64) -> (i64, BTreeMap<String, i64>) {
    let mut last = BTreeMap::new();
    for seq in 0..messages {
        let (key, _, value) = eddy::generate::customers_message(seq, keys);
        last.insert(key, value);
    }
    let mut by_plan = BTreeMap::new();
    for value in last.values().flatten() {
        let v: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
        *by_plan.entry(v["plan"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
    }
    (by_plan.values().sum(), by_plan)
}

/// What the keyed messages are consumed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Into {
    /// A stream: keys ignored, tombstones bad messages.
    Stream,
    /// A table with no view.
    Table,
    /// A table and a `GROUP BY plan` view over it.
    TableAndView,
}

/// Consumes the keyed topic into a fresh server; times it until every
/// message is applied, and checks the table (and the view) against the
/// last value of every key.
pub fn consume(server_rt: &Runtime, client_rt: &Runtime, brokers: &str, plan: &Plan, into: Into) -> BenchResult<Case> {
    let server = start_server(server_rt)?;
    let messages = plan.table_messages;
    let outcome = client_rt.block_on(async {
        let client = connect(&server).await?;
        let declare = match into {
            Into::Stream => format!(
                "CREATE STREAM customers (plan text, seats int, name text) WITH (kafka_topic = '{TABLE_TOPIC}', kafka_brokers = '{brokers}', start_offset = 'earliest')"
            ),
            _ => format!(
                "CREATE TABLE customers (id text PRIMARY KEY, plan text NOT NULL, seats int, name text) WITH (kafka_topic = '{TABLE_TOPIC}', kafka_brokers = '{brokers}')"
            ),
        };
        let before = cpu::sample(SERVER_THREAD);
        let started = Instant::now();
        let client = &client;
        let exec = |sql: String| async move {
            client.batch_execute(&sql).await.map_err(|e| format!("{sql}: {}", e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())))
        };
        if into == Into::TableAndView {
            // The view exists before the first message: its upkeep is measured, not a backfill.
            exec(declare.replace("WITH (", "WITH (start_offset = 'latest', ")).await?;
            exec("CREATE VIEW by_plan AS SELECT plan, count(*) AS n FROM customers GROUP BY plan".into()).await?;
            exec(format!("SELECT pipeline_kafka.consume_end('{TABLE_TOPIC}', 'customers')")).await?;
            exec(format!(
                "SELECT pipeline_kafka.consume_begin('{TABLE_TOPIC}', 'customers', format := 'json', start_offset := -2)"
            ))
            .await?;
        } else {
            exec(declare).await?;
        }
        loop {
            let row = client.query_one("SELECT messages FROM pipeline_kafka.consumers", &[]).await?;
            let consumed: i64 = row.get(0);
            if consumed as u64 >= messages {
                break;
            }
            if started.elapsed() > DEADLINE {
                return Err(format!("only {consumed} messages consumed").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        let used = cpu::sample(SERVER_THREAD).since(&before);
        let check = check(client, into, messages, plan.table_keys).await?;
        let label = match into {
            Into::Stream => "the same keyed messages into a stream (no view)".to_string(),
            Into::Table => format!("upsert table, {} keys, no view", plan.table_keys),
            Into::TableAndView => format!("upsert table, {} keys, GROUP BY plan view", plan.table_keys),
        };
        Ok::<_, DynError>(Case { label, elapsed, cpu: used.process, check })
    });
    server_rt.block_on(server.shutdown());
    outcome
}

async fn check(client: &tokio_postgres::Client, into: Into, messages: u64, keys: u64) -> BenchResult<String> {
    if into == Into::Stream {
        let errors: i64 = client.query_one("SELECT errors FROM pipeline_kafka.consumers", &[]).await?.get(0);
        return Ok(format!("{errors} tombstones recorded as bad messages"));
    }
    let (rows, by_plan) = expected(messages, keys);
    let held: i64 = client.query_one("SELECT count(*) FROM customers", &[]).await?.get(0);
    if held != rows {
        return Err(format!("the table holds {held} rows, and the topic's last values are {rows}").into());
    }
    if into == Into::TableAndView {
        let got = client.query("SELECT plan, n FROM by_plan ORDER BY plan", &[]).await?;
        let got: BTreeMap<String, i64> = got.iter().map(|r| (r.get(0), r.get(1))).collect();
        if got != by_plan {
            return Err(format!("by_plan is {got:?}, expected {by_plan:?}").into());
        }
        return Ok(format!("{held} rows; the view equals the last value of every key"));
    }
    Ok(format!("{held} rows, the last value of every key"))
}
