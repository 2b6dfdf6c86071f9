//! Exactly once under `kill -9`: the real `eddy` binary, a real Kafka broker
//! (tansu), and four clients inserting, while the server is killed at random
//! moments and restarted, over and over.
//!
//! - `eddy generate` produces 200,000 JSON events over 4 partitions at a
//!   steady rate, into a topic the stream `events` consumes.
//! - Four client connections insert into the same stream, one statement at
//!   a time. A statement the server acknowledged must count; one whose
//!   answer was lost in a crash is *in doubt*, and the client resolves it
//!   after reconnecting by reading its own progress (the `max(latency_ms)`
//!   of its service), as an idempotent client would.
//! - Checkpoints are taken every 100 ms, so kills land during checkpoints too.
//! - Every third stop is a SIGTERM instead: a clean shutdown under the same
//!   load, whose writes in flight and last checkpoint must be just as exact.
//! - A fifth client creates and drops views all along: after every
//!   restart the views must exist exactly as acknowledged (DDL is logged
//!   before it is visible, and replayed with the rows). It found a lost
//!   checkpoint: a DDL statement cut short by a SIGTERM dropped its
//!   checkpoint after the capture, and the next checkpoint's delta left
//!   that capture's changes out (one Kafka batch missing from a view).
//! - Two more clients update a table (`counters`, one row each, `n = n + 1`),
//!   read by a chain of views (`counter_total`, then `counter_big` over
//!   it); a view over `per_service` (`busy_services`) is a chain over the
//!   stream. An update in doubt is resolved by reading the client's row.
//! - `eddy generate --schema customers` produces 40,000 keyed messages to
//!   a second topic, one in ten a tombstone, which feeds the table
//!   `customers` (ksqlDB style), read by `customers_by_plan` and
//!   `big_plans` over it. At the end the table must hold the last value of
//!   each key, and its views must agree.
//! - A view fails on a few Kafka messages (`fragile` divides by zero for
//!   the `cart` events of user 7): each such message is
//!   reported and applied to no view, the rest of its batch to every view,
//!   also across restarts.
//! - A view joins the stream with a table (`per_team`, a lookup join), and
//!   a view joins the counters with a second table (`counters_by_group`).
//! - At the end, every view must equal a batch recompute over every message
//!   in the topic (read back from the broker) plus every insert that landed,
//!   and the table and its chain must hold every update that landed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::process::{EddyProcess, free_port};
use common::tansu::{generate, generate_command, start_tansu};
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_postgres::NoTls;

const TOPIC: &str = "crash";
const MESSAGES: u64 = 200_000;
const CRASHES: usize = 24;
const CLIENTS: usize = 4;
const ROWS_PER_INSERT: i64 = 3;
const TABLE_CLIENTS: usize = 2;
/// `busy_services` keeps the services with at least this many events.
const BUSY: i64 = 1000;
const CUSTOMERS_TOPIC: &str = "customers";
const CUSTOMER_MESSAGES: u64 = 40_000;
const CUSTOMER_KEYS: u64 = 500;
/// `fragile` fails on the `cart` events of this user.
const FRAGILE_USER: i64 = 7;
/// `big_plans` keeps the plans with at least this many customers.
const BIG_PLAN: i64 = 100;
/// The table `teams` that `per_team` joins the events with: the services
/// it maps (the others are left out by the inner join).
const TEAMS: [(&str, &str); 4] = [("checkout", "money"), ("cart", "money"), ("search", "find"), ("catalog", "find")];

/// What the views must hold, per key.
#[derive(Debug, Default, Clone, PartialEq)]
struct Agg {
    count: i64,
    /// Sum of the summed column (`user_id` per service, `ts` per user).
    sum: i64,
    max_seq: Option<i64>,
    distinct: BTreeSet<i64>,
}

impl Agg {
    fn add(&mut self, user: i64, summed: i64, seq: Option<i64>) {
        self.count += 1;
        self.sum += summed;
        self.max_seq = self.max_seq.max(seq);
        self.distinct.insert(user);
    }
}

/// An event: service, user_id, ts, and the client's statement number.
type Row = (String, i64, i64, Option<i64>);

/// The rows client `c`'s statement `seq` inserts.
fn insert_rows(c: usize, seq: i64) -> Vec<Row> {
    (0..ROWS_PER_INSERT)
        .map(|r| (format!("client-{c}"), (seq * 7 + r * 13 + c as i64) % 1000, seq * 1000 + r, Some(seq)))
        .collect()
}

fn insert_sql(c: usize, seq: i64) -> String {
    let values: Vec<String> = insert_rows(c, seq)
        .iter()
        .map(|(s, u, ts, q)| format!("('{s}', {u}, {ts}, {})", q.unwrap_or_default()))
        .collect();
    format!("INSERT INTO events (service, user_id, ts, seq) VALUES {}", values.join(", "))
}

async fn connect(port: u16) -> Option<tokio_postgres::Client> {
    let conn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy connect_timeout=2");
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

/// Is this error the server going away (expected here), or a real failure?
fn is_disconnect(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none()
}

/// One client: inserts until told to stop; returns the statements that landed.
async fn client(c: usize, port: u16, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) -> Vec<i64> {
    let mut landed = Vec::new();
    let mut in_doubt: Option<i64> = None;
    let mut seq = 0i64;
    loop {
        let Some(db) = connect(port).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Some(s) = in_doubt {
            let q = format!("SELECT max_seq FROM per_service WHERE service = 'client-{c}'");
            match db.query_opt(q.as_str(), &[]).await {
                Ok(row) => {
                    let max: Option<i64> = row.and_then(|r| r.get::<_, Option<i64>>(0));
                    if max.is_some_and(|m| m >= s) {
                        landed.push(s);
                    }
                }
                Err(e) if is_disconnect(&e) => continue,
                Err(e) => panic!("client {c}: resolving statement {s} failed: {e:?}"),
            }
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return landed;
            }
            seq += 1;
            in_doubt = Some(seq);
            match db.execute(insert_sql(c, seq).as_str(), &[]).await {
                Ok(_) => {
                    // Resolved: the next statement replaces `in_doubt`.
                    landed.push(seq);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if is_disconnect(&e) => break,
                Err(e) => panic!("client {c}: statement {seq} failed: {e:?}"),
            }
        }
    }
}

/// A client updating its own row of `counters` until told to stop; returns
/// how many of its updates landed (an update in doubt is resolved by
/// reading the row, which only this client changes).
async fn table_client(c: usize, port: u16, stop: Arc<AtomicBool>) -> i64 {
    let mut landed = 0i64;
    loop {
        let Some(db) = connect(port).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match db.query_one("SELECT n FROM counters WHERE client = $1", &[&(c as i32)]).await {
            Ok(row) => {
                let n: i64 = row.get(0);
                assert!(n == landed || n == landed + 1, "client {c}: counter {n}, {landed} updates landed");
                landed = n;
            }
            Err(e) if is_disconnect(&e) => continue,
            Err(e) => panic!("table client {c}: reading its row failed: {e:?}"),
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return landed;
            }
            match db.execute("UPDATE counters SET n = n + 1 WHERE client = $1", &[&(c as i32)]).await {
                Ok(1) => landed += 1,
                Ok(n) => panic!("table client {c}: UPDATE changed {n} rows"),
                Err(e) if is_disconnect(&e) => break,
                Err(e) => panic!("table client {c}: UPDATE failed: {e:?}"),
            }
        }
    }
}

/// The table and the views over it and over `per_service` hold every
/// update and event that landed.
async fn check_chains(port: u16, counters: &[i64], by_service: &BTreeMap<String, Agg>) {
    let db = connect(port).await.expect("connect for the chain check");
    let rows = db.query("SELECT client, n FROM counters ORDER BY client", &[]).await.expect("counters");
    let got: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(got, counters, "each client's counter");
    let total: i64 = counters.iter().sum();
    let row = db.query_one("SELECT total::bigint, clients FROM counter_total", &[]).await.expect("counter_total");
    assert_eq!((row.get::<_, Option<i64>>(0), row.get::<_, i64>(1)), (Some(total), counters.len() as i64));
    let rows = db.query("SELECT total::bigint FROM counter_big", &[]).await.expect("counter_big");
    let got: Vec<Option<i64>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, if total > 0 { vec![Some(total)] } else { vec![] }, "counter_big");
    let rows = db.query("SELECT service, n FROM busy_services ORDER BY service", &[]).await.expect("busy_services");
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(String, i64)> =
        by_service.iter().filter(|(_, a)| a.count >= BUSY).map(|(s, a)| (s.clone(), a.count)).collect();
    assert_eq!(got, want, "busy_services");
    // A lookup join of the stream with `teams`, and a join of two tables.
    let rows = db.query("SELECT team, n, total FROM per_team ORDER BY team", &[]).await.expect("per_team");
    let got: Vec<(String, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let mut want = BTreeMap::<String, (i64, i64)>::new();
    for (service, agg) in by_service {
        if let Some((_, team)) = TEAMS.iter().find(|(s, _)| s == service) {
            let e = want.entry(team.to_string()).or_default();
            e.0 += agg.count;
            e.1 += agg.sum;
        }
    }
    let want: Vec<(String, i64, i64)> = want.into_iter().map(|(t, (n, total))| (t, n, total)).collect();
    assert_eq!(got, want, "per_team");
    let rows = db
        .query("SELECT grp, total::bigint FROM counters_by_group ORDER BY grp", &[])
        .await
        .expect("counters_by_group");
    let got: Vec<(String, Option<i64>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![("even".to_string(), Some(counters[0])), ("odd".to_string(), Some(counters[1]))],
        "counters_by_group"
    );
}

/// A client running DDL under the same load: it creates and drops views
/// `ddl_<n>` in turn. Returns the views that must exist at the end (created
/// and not dropped, as acknowledged), the one whose last statement was in
/// doubt when the server went away, if any, and how many it ran.
async fn ddl_client(port: u16, stop: Arc<AtomicBool>) -> (BTreeSet<String>, Option<String>, usize) {
    let (mut exist, mut in_doubt) = (BTreeSet::new(), None::<String>);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(db) = connect(port).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Settle the statement in doubt by looking.
        if let Some(name) = in_doubt.take() {
            let found = match db.query_opt("SELECT name FROM pipelinedb.views WHERE name = $1", &[&name]).await {
                Ok(row) => row.is_some(),
                Err(_) => {
                    in_doubt = Some(name);
                    continue;
                }
            };
            // The statement landed if a CREATE's view is there or a DROP's is not.
            if found == (n % 2 == 0) {
                n += 1;
            }
            if found {
                exist.insert(name);
            } else {
                exist.remove(&name);
            }
        }
        while !stop.load(Ordering::Relaxed) {
            let name = format!("ddl_{}", n / 2);
            let creating = n % 2 == 0;
            let sql = if creating {
                format!("CREATE VIEW {name} AS SELECT service, count(*) AS n FROM events GROUP BY service")
            } else {
                format!("DROP VIEW {name}")
            };
            in_doubt = Some(name.clone());
            match db.batch_execute(&sql).await {
                Ok(()) if creating => exist.insert(name),
                Ok(()) => exist.remove(&name),
                Err(e) if is_disconnect(&e) => break,
                Err(e) => panic!("{sql}: {e:?}"),
            };
            in_doubt = None;
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (exist, in_doubt, n)
}

/// Reads every message of the topic back from the broker.
fn topic_messages(brokers: &str) -> Vec<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "crash-test-recompute")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..4 {
        assignment.add_partition_offset(TOPIC, p, Offset::Beginning).expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (out.len() as u64) < MESSAGES {
        assert!(Instant::now() < deadline, "read back only {} of {MESSAGES} messages", out.len());
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let payload = m.payload().expect("payload");
            out.push(serde_json::from_slice(payload).expect("json"));
        }
    }
    out
}

type Expected = (BTreeMap<String, Agg>, BTreeMap<i64, Agg>);

/// Whether the view `fragile` fails on this message (and so no view has it).
fn fails_fragile(m: &serde_json::Value) -> bool {
    m["service"].as_str() == Some("cart") && m["user_id"].as_i64() == Some(FRAGILE_USER)
}

fn expected(messages: &[serde_json::Value], landed: &[Vec<i64>]) -> Expected {
    let (mut by_service, mut by_user) = (BTreeMap::<String, Agg>::new(), BTreeMap::<i64, Agg>::new());
    let mut add = |(service, user, ts, seq): Row| {
        by_service.entry(service).or_default().add(user, user, seq);
        by_user.entry(user).or_default().add(user, ts, seq);
    };
    for m in messages.iter().filter(|m| !fails_fragile(m)) {
        let service = m["service"].as_str().expect("service").to_string();
        add((service, m["user_id"].as_i64().expect("user_id"), m["ts"].as_i64().expect("ts"), None));
    }
    for (c, seqs) in landed.iter().enumerate() {
        for &s in seqs {
            insert_rows(c, s).into_iter().for_each(&mut add);
        }
    }
    (by_service, by_user)
}

/// A `numeric` sum read as text.
fn whole(text: &str) -> i64 {
    text.parse().unwrap_or_else(|e| panic!("{text:?} is not a whole number: {e}"))
}

/// A `numeric` average read as text.
fn decimal(text: &str) -> f64 {
    text.parse().unwrap_or_else(|e| panic!("{text:?} is not a number: {e}"))
}

async fn check_views(port: u16, (by_service, by_user): &Expected) {
    let db = connect(port).await.expect("connect for the final check");
    let rows = db
        .query("SELECT service, n, total::text, average::text, max_seq FROM per_service ORDER BY service", &[])
        .await
        .expect("per_service");
    let got: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(got, by_service.keys().cloned().collect::<Vec<_>>(), "per_service keys");
    for r in &rows {
        let e = &by_service[&r.get::<_, String>(0)];
        let key = r.get::<_, String>(0);
        assert_eq!(r.get::<_, i64>(1), e.count, "count(*) of service {key}");
        assert_eq!(whole(r.get(2)), e.sum, "sum of service {key}");
        let avg = e.sum as f64 / e.count as f64;
        assert!((decimal(r.get(3)) - avg).abs() < 1e-9 * avg.abs().max(1.0), "avg of service {key}");
        assert_eq!(r.get::<_, Option<i64>>(4), e.max_seq, "max(seq) of service {key}");
    }
    let rows = db
        .query("SELECT user_id, n, total::text, average::text FROM per_user ORDER BY user_id", &[])
        .await
        .expect("per_user");
    assert_eq!(rows.len(), by_user.len(), "per_user groups");
    for r in &rows {
        let user = r.get::<_, i32>(0) as i64;
        let e = &by_user[&user];
        assert_eq!((r.get::<_, i64>(1), whole(r.get(2))), (e.count, e.sum), "count and sum of user {user}");
        let avg = e.sum as f64 / e.count as f64;
        assert!((decimal(r.get(3)) - avg).abs() < 1e-9 * avg.abs().max(1.0), "avg of user {user}");
    }
    let rows = db.query("SELECT service, n FROM fragile ORDER BY service", &[]).await.expect("fragile");
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(String, i64)> = by_service.iter().map(|(s, a)| (s.clone(), a.count)).collect();
    assert_eq!(got, want, "fragile: every row but those it fails on");
    let rows = db.query("SELECT service, users FROM distinct_users ORDER BY service", &[]).await.expect("distinct");
    assert_eq!(rows.len(), by_service.len(), "distinct_users groups");
    for r in &rows {
        let key = r.get::<_, String>(0);
        assert_eq!(r.get::<_, i64>(1), by_service[&key].distinct.len() as i64, "count(DISTINCT user_id) of {key}");
    }
}

/// The DDL client's views exist exactly as acknowledged (the one in doubt
/// either way).
async fn check_ddl(port: u16, expected: &BTreeSet<String>, in_doubt: Option<&str>) {
    let db = connect(port).await.expect("connect for the DDL check");
    let rows = db.query("SELECT name FROM pipelinedb.views WHERE name LIKE 'ddl_%'", &[]).await.expect("views");
    let mut found: BTreeSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    if let Some(name) = in_doubt {
        found.remove(name);
    }
    let mut expected = expected.clone();
    if let Some(name) = in_doubt {
        expected.remove(name);
    }
    assert_eq!(found, expected, "views created and dropped under load, as acknowledged");
}

/// The customers table holds the last value of each key, and its views agree.
async fn check_customers(port: u16) {
    let mut model = BTreeMap::<String, Option<(String, i32)>>::new();
    for seq in 0..CUSTOMER_MESSAGES {
        let (key, _, value) = eddy::generate::customers_message(seq, CUSTOMER_KEYS);
        let row = value.map(|v| {
            let v: serde_json::Value = serde_json::from_str(&v).expect("json");
            (v["plan"].as_str().expect("plan").to_string(), v["seats"].as_i64().expect("seats") as i32)
        });
        model.insert(key, row);
    }
    let model: BTreeMap<String, (String, i32)> = model.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    let db = connect(port).await.expect("connect for the customers check");
    let rows = db.query("SELECT id, plan, seats FROM customers ORDER BY id", &[]).await.expect("customers");
    let got: BTreeMap<String, (String, i32)> = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    assert_eq!(got.len(), model.len(), "customers held");
    assert!(got == model, "the customers table holds the last value of every key");
    let mut by_plan = BTreeMap::<String, (i64, i64)>::new();
    for (plan, seats) in model.values() {
        let e = by_plan.entry(plan.clone()).or_default();
        e.0 += 1;
        e.1 += *seats as i64;
    }
    let rows = db.query("SELECT plan, n, seats FROM customers_by_plan ORDER BY plan", &[]).await.expect("by plan");
    let got: BTreeMap<String, (i64, i64)> = rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
    assert_eq!(got, by_plan, "customers_by_plan");
    let rows = db.query("SELECT plan, n FROM big_plans ORDER BY plan", &[]).await.expect("big plans");
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let big: Vec<(String, i64)> =
        by_plan.into_iter().filter(|(_, (n, _))| *n >= BIG_PLAN).map(|(p, (n, _))| (p, n)).collect();
    assert_eq!(got, big, "big_plans, over customers_by_plan");
}

/// Messages of the customers topic the table has applied.
async fn customer_offsets(port: u16) -> Option<i64> {
    let db = connect(port).await?;
    let sql = format!("SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets WHERE topic = '{CUSTOMERS_TOPIC}'");
    db.query_one(sql.as_str(), &[]).await.ok()?.get::<_, Option<i64>>(0)
}

async fn kafka_rows(port: u16) -> Option<i64> {
    let db = connect(port).await?;
    let row =
        db.query_one("SELECT sum(n)::bigint FROM per_service WHERE service NOT LIKE 'client-%'", &[]).await.ok()?;
    row.get::<_, Option<i64>>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_exact_after_repeated_kill_9() {
    let broker_port = free_port();
    let _tansu = start_tansu("127.0.0.1", broker_port);
    let brokers = format!("127.0.0.1:{broker_port}");
    generate(&brokers, TOPIC, 0, 0); // creates the topic
    generate(&brokers, CUSTOMERS_TOPIC, 0, 0);
    let mut server = EddyProcess::start_with("crash", &["--checkpoint-interval-ms", "100"]);
    let port = server.port;
    let setup = [
        format!(
            "CREATE STREAM events (ts bigint, service text, user_id int, seq bigint) WITH (kafka_topic = '{TOPIC}', value_format = 'json', kafka_brokers = '{brokers}', start_offset = 'earliest', batchsize = 2000)"
        ),
        "CREATE VIEW per_service AS SELECT service, count(*) AS n, sum(user_id) AS total, avg(user_id) AS average, max(seq) AS max_seq FROM events GROUP BY service".into(),
        "CREATE VIEW per_user AS SELECT user_id, count(*) AS n, sum(ts) AS total, avg(ts) AS average FROM events GROUP BY user_id".into(),
        "CREATE VIEW distinct_users AS SELECT service, count(DISTINCT user_id) AS users FROM events GROUP BY service".into(),
        format!("CREATE VIEW busy_services AS SELECT service, n FROM per_service WHERE n >= {BUSY}"),
        format!(
            "CREATE VIEW fragile AS SELECT service, count(*) AS n, sum(100 / CASE WHEN service = 'cart' AND user_id = {FRAGILE_USER} THEN 0 ELSE 1 END) AS s FROM events GROUP BY service"
        ),
        "CREATE TABLE counters (client int PRIMARY KEY, n bigint NOT NULL)".into(),
        "INSERT INTO counters VALUES (0, 0), (1, 0)".into(),
        "CREATE VIEW counter_total AS SELECT sum(n) AS total, count(*) AS clients FROM counters".into(),
        "CREATE VIEW counter_big AS SELECT total FROM counter_total WHERE total > 0".into(),
        format!(
            "CREATE TABLE customers (id text PRIMARY KEY, plan text NOT NULL, seats int, name text) WITH (kafka_topic = '{CUSTOMERS_TOPIC}', value_format = 'json', kafka_brokers = '{brokers}', batchsize = 500)"
        ),
        "CREATE VIEW customers_by_plan AS SELECT plan, count(*) AS n, sum(seats) AS seats FROM customers GROUP BY plan".into(),
        format!("CREATE VIEW big_plans AS SELECT plan, n FROM customers_by_plan WHERE n >= {BIG_PLAN}"),
        "CREATE TABLE teams (service text PRIMARY KEY, team text NOT NULL)".into(),
        format!("INSERT INTO teams VALUES {}", TEAMS.iter().map(|(s, t)| format!("('{s}', '{t}')")).collect::<Vec<_>>().join(", ")),
        "CREATE VIEW per_team AS SELECT t.team, count(*) AS n, sum(e.user_id) AS total FROM events e JOIN teams t ON e.service = t.service GROUP BY t.team".into(),
        "CREATE TABLE client_groups (client int PRIMARY KEY, grp text NOT NULL)".into(),
        "INSERT INTO client_groups VALUES (0, 'even'), (1, 'odd')".into(),
        "CREATE VIEW counters_by_group AS SELECT g.grp, sum(c.n) AS total FROM counters c JOIN client_groups g ON g.client = c.client GROUP BY g.grp".into(),
    ];
    let db = connect(port).await.expect("connect");
    for sql in &setup {
        db.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    drop(db);

    let mut producer =
        generate_command(&brokers, TOPIC, MESSAGES, 0).args(["--rate", "8000"]).spawn().expect("generate");
    let mut customers = generate_command(&brokers, CUSTOMERS_TOPIC, CUSTOMER_MESSAGES, 0)
        .args(["--schema", "customers", "--keys", &CUSTOMER_KEYS.to_string(), "--rate", "2000"])
        .spawn()
        .expect("generate customers");
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS).map(|c| tokio::spawn(client(c, port, stop.clone(), acked.clone()))).collect();
    let table_clients: Vec<_> = (0..TABLE_CLIENTS).map(|c| tokio::spawn(table_client(c, port, stop.clone()))).collect();
    let ddl = tokio::spawn(ddl_client(port, stop.clone()));

    let (mut crashes, mut terms) = (0, 0);
    for i in 0..CRASHES {
        let pause = rand::rng().random_range(200..900);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if i % 3 == 2 {
            tokio::task::block_in_place(|| server.terminate());
            terms += 1;
        } else {
            server.kill9();
            crashes += 1;
        }
        tokio::task::block_in_place(|| server.restart());
    }
    stop.store(true, Ordering::Relaxed);
    let mut landed = Vec::new();
    for c in clients {
        landed.push(c.await.expect("client task"));
    }
    let mut counters = Vec::new();
    for c in table_clients {
        counters.push(c.await.expect("table client task"));
    }
    assert!(counters.iter().all(|&n| n > 0), "the table clients made progress: {counters:?}");
    let (ddl_views, ddl_in_doubt, ddl_statements) = ddl.await.expect("ddl client");
    assert!(ddl_statements >= 20, "only {ddl_statements} DDL statements ran under the load");
    let status = tokio::task::block_in_place(|| producer.wait()).expect("generate ends");
    assert!(status.success(), "eddy generate failed");
    let status = tokio::task::block_in_place(|| customers.wait()).expect("generate customers ends");
    assert!(status.success(), "eddy generate --schema customers failed");

    let messages = tokio::task::block_in_place(|| topic_messages(&brokers));
    let failing = messages.iter().filter(|m| fails_fragile(m)).count() as i64;
    assert!(failing > 0, "no message makes the view fragile fail");
    let good = MESSAGES as i64 - failing;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = kafka_rows(port).await;
        if n == Some(good) {
            break;
        }
        assert!(n.unwrap_or(0) <= good, "Kafka rows counted twice: {n:?} > {good}");
        assert!(Instant::now() < deadline, "Kafka rows stuck at {n:?} of {good}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let n = customer_offsets(port).await;
        if n == Some(CUSTOMER_MESSAGES as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "the customers table stuck at offset {n:?} of {CUSTOMER_MESSAGES}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_customers(port).await;
    let expected = expected(&messages, &landed);
    check_views(port, &expected).await;
    check_ddl(port, &ddl_views, ddl_in_doubt.as_deref()).await;
    check_chains(port, &counters, &expected.0).await;
    // And once more after a last crash, with nothing in flight.
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    check_views(port, &expected).await;
    check_ddl(port, &ddl_views, ddl_in_doubt.as_deref()).await;
    check_chains(port, &counters, &expected.0).await;
    check_customers(port).await;
    let statements: usize = landed.iter().map(Vec::len).sum();
    println!(
        "survived {crashes} kill -9s and {terms} SIGTERMs: {MESSAGES} Kafka messages ({failing} that a view fails on, in no view) and {statements} INSERT statements ({} acknowledged before a crash) counted exactly once; {ddl_statements} CREATE/DROP VIEWs as acknowledged; table updates {counters:?} in the table and its view chain; {CUSTOMER_MESSAGES} keyed messages with tombstones in the customers table and its chain",
        acked.load(Ordering::Relaxed)
    );
    assert!(crashes >= 16 && terms >= 8);
}
