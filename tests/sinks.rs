//! Kafka sinks against a broker whose transactions are real (noida-db):
//! what each envelope writes, exactly once across `kill -9`, and retrying
//! while the broker cannot be reached.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::noida::start_noida;
use common::process::{EddyProcess, free_port};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

type Record = (Option<String>, Option<String>);

/// Each committed message of `topic` (partition 0), in order, as a
/// `read_committed` consumer sees it, handed to `each`.
fn each_committed(brokers: &str, topic: &str, mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>)) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sink-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).expect("assign");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => each(&m),
            Some(Err(KafkaError::PartitionEOF(_))) => return,
            // The topic may not exist yet.
            Some(Err(_)) | None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Every committed message of `topic` (one partition), in order, as a
/// `read_committed` consumer sees it.
fn read_committed(brokers: &str, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    each_committed(brokers, topic, |m| {
        out.push((
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
        ))
    });
    out
}

/// The last value of each key (tombstones remove the key).
fn last_per_key(records: &[Record]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in records {
        let key = key.clone().expect("an upsert message has a key");
        match value {
            Some(v) => out.insert(key, v.clone()),
            None => out.remove(&key),
        };
    }
    out
}

/// An append topic's rows with their summed diffs (zero sums left out).
fn appended(records: &[Record]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (_, value) in records {
        let value: serde_json::Value = serde_json::from_str(value.as_deref().expect("a value")).expect("json");
        let mut row = value.as_object().expect("object").clone();
        let diff = row.remove("diff").and_then(|d| d.as_i64()).expect("diff");
        *out.entry(serde_json::Value::Object(row).to_string()).or_insert(0) += diff;
    }
    out.retain(|_, n| *n != 0);
    out
}

/// `totals`' rows as the sinks write them, keyed by customer.
async fn totals(db: &tokio_postgres::Client) -> BTreeMap<String, String> {
    let rows = db.query("SELECT customer, total::bigint, n FROM totals", &[]).await.expect("read totals");
    rows.iter()
        .map(|r| {
            let (c, t, n): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            (format!(r#"{{"customer":"{c}"}}"#), format!(r#"{{"customer":"{c}","total":{t},"n":{n}}}"#))
        })
        .collect()
}

/// An append topic of a view whose `n` only grows per key: each row is
/// added once and removed at most once after, so a duplicate or a lost
/// change breaks the alternation.
fn each_change_once(changes: &[Record]) {
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for (_, value) in changes {
        let value: serde_json::Value = serde_json::from_str(value.as_deref().expect("value")).expect("json");
        let mut row = value.as_object().expect("object").clone();
        let diff = row.remove("diff").and_then(|d| d.as_i64()).expect("diff");
        seen.entry(serde_json::Value::Object(row).to_string()).or_default().push(diff);
    }
    for (row, diffs) in &seen {
        assert!(diffs == &[1] || diffs == &[1, -1], "row {row} was written {diffs:?}");
    }
}

/// Waits until `check` holds for the topic's messages.
async fn until_topic(brokers: &str, topic: &str, what: &str, check: impl Fn(&[Record]) -> bool) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (b, t) = (brokers.to_string(), topic.to_string());
        let records = tokio::task::spawn_blocking(move || read_committed(&b, &t)).await.expect("read");
        if check(&records) {
            return records;
        }
        assert!(Instant::now() < deadline, "topic {topic} never reached {what}; it holds {records:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_envelope_writes_a_views_changes_and_a_removed_group_is_a_tombstone() {
    let broker = start_noida(free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    let server = common::start_server().await;
    let db = common::connect(&server).await;
    db.batch_execute(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount bigint);
         CREATE VIEW totals AS SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer;
         SELECT pipeline_kafka.add_broker('{brokers}');
         CREATE SINK up FROM totals WITH (kafka_topic = 'totals_up');
         CREATE SINK app FROM totals WITH (kafka_topic = 'totals_app', envelope = 'append');
         CREATE SINK dbz FROM totals WITH (kafka_topic = 'totals_dbz', envelope = 'debezium', exactly_once = false);"
    ))
    .await
    .expect("setup");
    let running = "SELECT count(*) FROM pipelinedb.sinks WHERE status = 'running'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query_one(running, &[]).await.expect("sinks").get::<_, i64>(0) < 3 {
        assert!(Instant::now() < deadline, "the sinks never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.batch_execute("INSERT INTO orders VALUES (1, 'ann', 10), (2, 'bob', 5), (3, 'ann', 7)").await.expect("insert");
    db.batch_execute("UPDATE orders SET amount = 20 WHERE id = 2").await.expect("update");
    db.batch_execute("DELETE FROM orders WHERE customer = 'ann'").await.expect("delete");
    let view = totals(&db).await;
    assert_eq!(view.len(), 1, "only bob is left: {view:?}");

    let upserts = until_topic(&brokers, "totals_up", "the view", |r| last_per_key(r) == view).await;
    assert!(
        upserts.contains(&(Some(r#"{"customer":"ann"}"#.into()), None)),
        "ann's removal is a tombstone: {upserts:?}"
    );

    let changes = until_topic(&brokers, "totals_app", "five changes", |r| r.len() >= 5).await;
    let mut values: Vec<&str> = changes.iter().filter_map(|(_, v)| v.as_deref()).collect();
    values.sort();
    assert_eq!(
        values,
        [
            r#"{"diff":-1,"customer":"ann","total":17,"n":2}"#,
            r#"{"diff":-1,"customer":"bob","total":5,"n":1}"#,
            r#"{"diff":1,"customer":"ann","total":17,"n":2}"#,
            r#"{"diff":1,"customer":"bob","total":20,"n":1}"#,
            r#"{"diff":1,"customer":"bob","total":5,"n":1}"#,
        ],
        "each change exactly once"
    );
    let debezium = until_topic(&brokers, "totals_dbz", "four changes", |r| r.len() >= 4).await;
    let ops: Vec<String> = debezium
        .iter()
        .map(|(_, v)| {
            serde_json::from_str::<serde_json::Value>(v.as_deref().unwrap_or("null")).expect("json")["op"].to_string()
        })
        .collect();
    assert_eq!(ops.iter().filter(|o| *o == "\"u\"").count(), 1, "bob's update is one message: {debezium:?}");
    assert_eq!(ops.iter().filter(|o| *o == "\"d\"").count(), 1, "{debezium:?}");

    let shown = db.query("SHOW SINKS", &[]).await.expect("show sinks");
    assert_eq!(shown.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["app", "dbz", "up"]);
    db.batch_execute("DROP SINK up").await.expect("drop sink");
    let e = db.batch_execute("DROP VIEW totals").await.expect_err("sinks read it");
    assert_eq!(e.code().map(|c| c.code()), Some("2BP01"));
    db.batch_execute("DROP VIEW totals CASCADE").await.expect("drop cascade");
    let left: i64 = db.query_one("SELECT count(*) FROM pipelinedb.sinks", &[]).await.expect("sinks").get(0);
    assert_eq!(left, 0, "CASCADE dropped the view's sinks");
}

/// Writes single-row INSERTs (one epoch each) until the server goes away.
async fn write_until_killed(port: u16, from: i64) -> i64 {
    let conn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let Ok((db, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await else { return from };
    tokio::spawn(connection);
    let mut i = from;
    while db.execute("INSERT INTO ev VALUES ($1, $2)", &[&(i % 7), &i]).await.is_ok() {
        i += 1;
    }
    i
}

/// kill -9 while a sink writes, again and again: the `read_committed` topic
/// holds each change exactly once, and ends equal to the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_writes_each_change_exactly_once_across_kill_9() {
    let broker = start_noida(free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    let mut server = EddyProcess::start_with("sink-kill9", &["--checkpoint-interval-ms", "300"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "CREATE STREAM ev (k bigint, v bigint);
         CREATE VIEW agg AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
         CREATE SINK app FROM agg WITH (kafka_topic = 'agg_app', envelope = 'append', kafka_brokers = '{brokers}');
         CREATE SINK up FROM agg WITH (kafka_topic = 'agg_up', kafka_brokers = '{brokers}');"
    ))
    .await
    .expect("setup");
    drop(db);
    let mut next = 0;
    for round in 0..4 {
        let writer = tokio::spawn(write_until_killed(server.port, next));
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        server.kill9();
        next = writer.await.expect("writer") + 1000;
        tokio::task::block_in_place(|| server.restart());
    }
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    let rows = db.query("SELECT k, n, s::bigint FROM agg", &[]).await.expect("read agg");
    assert!(!rows.is_empty());
    let view: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| {
            let (k, n, s): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            (format!(r#"{{"k":{k},"n":{n},"s":{s}}}"#), 1)
        })
        .collect();
    let changes = until_topic(&brokers, "agg_app", "the view", |r| appended(r) == view).await;
    assert!(changes.len() > 40, "the writers made too few changes to test anything: {}", changes.len());
    each_change_once(&changes);
    let keys: BTreeMap<String, String> = view
        .keys()
        .map(|row| {
            let v: serde_json::Value = serde_json::from_str(row).expect("json");
            (format!(r#"{{"k":{}}}"#, v["k"]), row.clone())
        })
        .collect();
    until_topic(&brokers, "agg_up", "the view", |r| last_per_key(r) == keys).await;
    let status: String =
        db.query_one("SELECT status FROM pipelinedb.sinks WHERE name = 'app'", &[]).await.expect("status").get(0);
    assert_eq!(status, "running", "the sink was restored after each restart");
}

/// An unreachable broker: the sink shows `retrying` with the error, and
/// writes and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_retries_while_its_broker_is_unreachable() {
    let server = common::start_server().await;
    let db = common::connect(&server).await;
    let nowhere = free_port();
    db.batch_execute(&format!(
        "CREATE STREAM clicks (url text);
         CREATE VIEW hits AS SELECT url, count(*) AS n FROM clicks GROUP BY url;
         CREATE SINK out FROM hits WITH (kafka_topic = 'hits', kafka_brokers = '127.0.0.1:{nowhere}');"
    ))
    .await
    .expect("setup");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = db.query_one("SELECT status, last_error FROM pipelinedb.sinks", &[]).await.expect("status");
        let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
        if status == "retrying" {
            assert!(error.is_some_and(|e| !e.is_empty()), "a retrying sink shows why");
            break;
        }
        assert!(Instant::now() < deadline, "the sink never showed retrying (status {status})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.batch_execute("INSERT INTO clicks VALUES ('/a'), ('/a')").await.expect("writes go on");
    let n: i64 = db.query_one("SELECT n FROM hits WHERE url = '/a'", &[]).await.expect("read").get(0);
    assert_eq!(n, 2);
}

/// ksqlDB's CSAS with a topic: the derived stream's events, each once, as
/// another consumer reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_stream_with_a_topic_writes_its_events() {
    let broker = start_noida(free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    let server = common::start_server().await;
    let db = common::connect(&server).await;
    db.batch_execute(&format!(
        "CREATE STREAM clicks (url text, ms bigint);
         CREATE STREAM slow WITH (kafka_topic = 'slow', kafka_brokers = '{brokers}') AS
             SELECT url, ms FROM clicks WHERE ms > 100;"
    ))
    .await
    .expect("setup");
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query_one("SELECT status FROM pipelinedb.sinks", &[]).await.expect("sinks").get::<_, String>(0)
        != "running"
    {
        assert!(Instant::now() < deadline, "the sink never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.batch_execute("INSERT INTO clicks VALUES ('/a', 50), ('/b', 500)").await.expect("insert");
    db.batch_execute("INSERT INTO clicks VALUES ('/c', 700)").await.expect("insert");
    let events = until_topic(&brokers, "slow", "two events", |r| r.len() >= 2).await;
    let values: Vec<&str> = events.iter().filter_map(|(_, v)| v.as_deref()).collect();
    assert_eq!(values, [r#"{"url":"/b","ms":500}"#, r#"{"url":"/c","ms":700}"#]);
}

/// Produces `{"k": i % 7, "v": i}` for each i in `range` to `topic`.
fn produce(brokers: &str, topic: &str, range: std::ops::Range<i64>) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    for i in range {
        let payload = format!(r#"{{"k":{},"v":{i}}}"#, i % 7);
        producer.send(BaseRecord::<(), str>::to(topic).payload(&payload)).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Waits until the view `agg` has taken in `messages` messages.
async fn until_view_has(db: &tokio_postgres::Client, messages: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sum = "SELECT sum(n)::bigint FROM agg";
    while db.query_one(sum, &[]).await.expect("read").get::<_, Option<i64>>(0) < Some(messages) {
        assert!(Instant::now() < deadline, "the view never took in {messages} messages");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the one sink runs.
async fn until_running(db: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query_one("SELECT status FROM pipelinedb.sinks", &[]).await.expect("sinks").get::<_, String>(0)
        != "running"
    {
        assert!(Instant::now() < deadline, "the sink never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sink_messages(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT messages FROM pipelinedb.sinks", &[]).await.expect("sinks").get(0)
}

/// A view fed by Kafka: a crash undoes its changes since the last
/// checkpoint (the consumer reads them again), so a sink must not write
/// them before a checkpoint holds them. Then kill -9 with changes not yet
/// checkpointed: the topic still holds each change once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_of_a_kafka_fed_view_writes_only_checkpointed_changes() {
    let broker = start_noida(free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    tokio::task::block_in_place(|| produce(&brokers, "src", 0..1));
    let mut server = EddyProcess::start_with("sink-kafka-kill9", &["--checkpoint-interval-ms", "3600000"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "SELECT pipeline_kafka.add_broker('{brokers}');
         CREATE STREAM ev (k bigint, v bigint);
         CREATE VIEW agg AS SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k;
         CREATE SINK app FROM agg WITH (kafka_topic = 'agg_from_kafka', envelope = 'append');
         SELECT pipeline_kafka.consume_begin('src', 'ev', format := 'json');"
    ))
    .await
    .expect("setup");
    // The sink's first write, the view's contents, waits for a checkpoint too.
    until_view_has(&db, 1).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    until_running(&db).await;
    let written = sink_messages(&db).await;
    tokio::task::block_in_place(|| produce(&brokers, "src", 1..301));
    until_view_has(&db, 301).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = sink_messages(&db).await;
    assert_eq!(held, written, "no checkpoint holds the changes yet, so the sink must not write them");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink_messages(&db).await == written {
        assert!(Instant::now() < deadline, "the sink never wrote the checkpointed changes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // More changes, then a crash before a checkpoint holds them.
    tokio::task::block_in_place(|| produce(&brokers, "src", 301..601));
    until_view_has(&db, 601).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    until_view_has(&db, 601).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let mut expected = BTreeMap::new();
    for i in 0..601i64 {
        let e = expected.entry(i % 7).or_insert((0i64, 0i64));
        e.0 += 1;
        e.1 += i;
    }
    let view: BTreeMap<String, i64> =
        expected.iter().map(|(k, (n, s))| (format!(r#"{{"k":{k},"n":{n},"s":{s}}}"#), 1)).collect();
    let changes = until_topic(&brokers, "agg_from_kafka", "the view", |r| appended(r) == view).await;
    each_change_once(&changes);
}

/// The `v` of each event in a stream sink's topic, with how often it is there.
fn event_counts(records: &[Record]) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for (_, value) in records {
        let value: serde_json::Value = serde_json::from_str(value.as_deref().expect("a value")).expect("json");
        *out.entry(value["v"].as_i64().expect("v")).or_insert(0) += 1;
    }
    out
}

/// Checks a stream sink's topic against the INSERTs: every acknowledged
/// event (`acked`) once, an event whose INSERT was cut off (`maybe`) at most
/// once, nothing else.
fn each_event_once(records: &[Record], acked: &[i64], maybe: &[i64], keep: impl Fn(i64) -> bool) {
    let counts = event_counts(records);
    for v in acked.iter().filter(|&&v| keep(v)) {
        assert_eq!(counts.get(v), Some(&1), "event {v} was acknowledged, so the topic holds it once");
    }
    for (v, n) in &counts {
        assert!(keep(*v), "event {v} does not belong in the topic");
        assert!(acked.contains(v) || (maybe.contains(v) && *n == 1), "event {v} is in the topic {n} times");
    }
}

/// kill -9 while a stream's sink and a derived stream's topic are written:
/// each event reaches the topic once, though a stream keeps no rows to
/// compare the topic with (its sink's outbox is saved with the checkpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sink_writes_each_event_exactly_once_across_kill_9() {
    let broker = start_noida(free_port());
    let brokers = format!("127.0.0.1:{}", broker.port);
    let mut server = EddyProcess::start_with("stream-sink-kill9", &["--checkpoint-interval-ms", "300"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "CREATE STREAM ev (k bigint, v bigint);
         CREATE SINK raw FROM ev WITH (kafka_topic = 'ev_raw', kafka_brokers = '{brokers}');
         CREATE STREAM odd WITH (kafka_topic = 'ev_odd', kafka_brokers = '{brokers}') AS
             SELECT k, v FROM ev WHERE v % 2 = 1;"
    ))
    .await
    .expect("setup");
    drop(db);
    let (mut acked, mut maybe) = (Vec::new(), Vec::new());
    let mut next = 0;
    for round in 0..4 {
        let writer = tokio::spawn(write_until_killed(server.port, next));
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        server.kill9();
        let cut = writer.await.expect("writer");
        acked.extend(next..cut);
        maybe.push(cut);
        next = cut + 1000;
        tokio::task::block_in_place(|| server.restart());
    }
    assert!(acked.len() > 40, "the writers made too few events to test anything: {}", acked.len());
    let done = |records: &[Record]| {
        let counts = event_counts(records);
        acked.iter().all(|v| counts.contains_key(v))
    };
    let raw = until_topic(&brokers, "ev_raw", "every acknowledged event", done).await;
    each_event_once(&raw, &acked, &maybe, |_| true);
    let b = brokers.clone();
    let numbers = tokio::task::spawn_blocking(move || seq_headers(&b, "ev_raw")).await.expect("read");
    assert_eq!(numbers, (0..raw.len() as u64).collect::<Vec<_>>(), "each message carries the next number");
    let odd_done = |records: &[Record]| {
        let counts = event_counts(records);
        acked.iter().filter(|v| *v % 2 == 1).all(|v| counts.contains_key(v))
    };
    let odd = until_topic(&brokers, "ev_odd", "every acknowledged odd event", odd_done).await;
    each_event_once(&odd, &acked, &maybe, |v| v % 2 == 1);
}

/// A stream's events made while its sink's broker is down are kept (across
/// a kill -9 too) and written once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sink_keeps_events_while_its_broker_is_down() {
    let port = free_port();
    let broker = start_noida(port);
    let brokers = format!("127.0.0.1:{port}");
    let mut server = EddyProcess::start_with("stream-sink-down", &["--checkpoint-interval-ms", "200"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "CREATE STREAM ev (k bigint, v bigint);
         CREATE SINK raw FROM ev WITH (kafka_topic = 'ev_raw', kafka_brokers = '{brokers}');"
    ))
    .await
    .expect("setup");
    until_running(&db).await;
    db.batch_execute("INSERT INTO ev VALUES (0, 1), (0, 2)").await.expect("insert");
    until_topic(&brokers, "ev_raw", "two events", |r| r.len() == 2).await;
    until_lag(&db, 0).await;
    drop(broker);
    db.batch_execute("INSERT INTO ev VALUES (0, 3), (0, 4)").await.expect("insert while the broker is down");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    drop(db);
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    db.batch_execute("INSERT INTO ev VALUES (0, 5)").await.expect("insert after the restart");
    let lag: i64 = db.query_one("SELECT lag FROM pipelinedb.sinks", &[]).await.expect("lag").get(0);
    assert_eq!(lag, 3, "the sink holds the events it could not write");
    // A new broker on the same port: its topic starts empty, and gets what
    // the sink held, once.
    let _broker = start_noida(port);
    let records = until_topic(&brokers, "ev_raw", "three events", |r| r.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = until_topic(&brokers, "ev_raw", "no more", |r| r.len() == records.len()).await;
    each_event_once(&records, &[3, 4, 5], &[], |_| true);
}

async fn until_lag(db: &tokio_postgres::Client, lag: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query_one("SELECT lag FROM pipelinedb.sinks", &[]).await.expect("lag").get::<_, i64>(0) != lag {
        assert!(Instant::now() < deadline, "the sink's lag never came to {lag}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `eddy-seq` header of each committed message of `topic` (partition 0).
fn seq_headers(brokers: &str, topic: &str) -> Vec<u64> {
    let mut out = Vec::new();
    each_committed(brokers, topic, |m| {
        let header = m.headers().and_then(|h| h.iter().find(|h| h.key == "eddy-seq")).expect("a number");
        let text = std::str::from_utf8(header.value.expect("a value")).expect("utf-8");
        out.push(text.parse().expect("a number"));
    });
    out
}

/// A sink made while its broker is down numbers its events once it reaches
/// the topic, and a kill -9 right after it wrote them does not write them
/// again: renumbered events wait for a checkpoint to save their numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sink_made_while_its_broker_is_down_writes_each_event_once() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut server = EddyProcess::start_with("stream-sink-late-broker", &["--checkpoint-interval-ms", "250"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(&format!(
        "CREATE STREAM ev (k bigint, v bigint);
         CREATE SINK raw FROM ev WITH (kafka_topic = 'ev_raw', kafka_brokers = '{brokers}');
         INSERT INTO ev VALUES (0, 1), (0, 2), (0, 3);
         CHECKPOINT;"
    ))
    .await
    .expect("setup");
    drop(db);
    let _broker = start_noida(port);
    until_topic(&brokers, "ev_raw", "three events", |r| r.len() >= 3).await;
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    db.batch_execute("INSERT INTO ev VALUES (0, 4)").await.expect("insert after the restart");
    let records = until_topic(&brokers, "ev_raw", "the fourth event", |r| event_counts(r).contains_key(&4)).await;
    until_lag(&db, 0).await;
    let records = until_topic(&brokers, "ev_raw", "no more", |r| r.len() >= records.len()).await;
    each_event_once(&records, &[1, 2, 3, 4], &[], |_| true);
}
