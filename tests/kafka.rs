//! Kafka consumption against librdkafka's in-process mock broker
//! (`rdkafka::mocking::MockCluster`): every format, several partitions,
//! every kind of start offset, consume_end and consume_begin again, bad
//! messages, the ksqlDB binding, and a broker that goes away and comes back.

mod common;

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use tokio_postgres::Client;

use common::{connect, connect_with_notices, start_server};

/// How long consumption may take to catch up before a test fails.
const CATCH_UP: Duration = Duration::from_secs(30);

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    MockCluster::new(1).expect("mock cluster")
}

fn produce(brokers: &str, topic: &str, messages: &[(i32, String)]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    for (partition, payload) in messages {
        producer.send(BaseRecord::<(), String>::to(topic).partition(*partition).payload(payload)).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// `n` JSON messages starting at `from`, round-robin over `partitions`.
fn json_messages(from: u64, n: u64, partitions: i32) -> Vec<(i32, String)> {
    (from..from + n).map(|i| ((i % partitions as u64) as i32, format!("{{\"k\": {}, \"v\": {i}}}", i % 7))).collect()
}

/// The one value `sql` returns, as a whole number: read as text, so that a
/// `bigint` and a `numeric` (a `sum` of bigints) read alike. `None` for NULL.
async fn integer(client: &Client, sql: &str) -> Result<Option<i64>, tokio_postgres::Error> {
    let rows = client.simple_query(sql).await?;
    let text = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    });
    Ok(text.flatten().map(|t| t.parse().unwrap_or_else(|e| panic!("{sql}: {t:?} is not a whole number: {e}"))))
}

async fn scalar(client: &Client, sql: &str) -> i64 {
    integer(client, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).unwrap_or_else(|| panic!("{sql}: NULL"))
}

/// Polls `sql` until it returns `expected`; fails after [`CATCH_UP`].
async fn wait_for(client: &Client, sql: &str, expected: i64) {
    let start = Instant::now();
    loop {
        let got = integer(client, sql).await.ok().flatten().unwrap_or(-1);
        if got == expected {
            return;
        }
        assert!(start.elapsed() < CATCH_UP, "{sql}: still {got}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup(client: &Client, brokers: &str) {
    client
        .batch_execute(&format!(
            "CREATE EXTENSION pipeline_kafka; CREATE EXTENSION IF NOT EXISTS pipeline_kafka; \
             SELECT pipeline_kafka.add_broker('{brokers}');"
        ))
        .await
        .expect("setup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_kafka_script_counts_and_follows_the_topic() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("logs", 4, 1).unwrap();
    produce(&brokers, "logs", &json_messages(0, 1000, 4));
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM logs_stream (payload json);
             CREATE CONTINUOUS VIEW message_count AS SELECT COUNT(*) FROM logs_stream;
             CREATE VIEW per_key AS SELECT payload->>'k' AS k, count(*) AS n FROM logs_stream GROUP BY 1;
             SELECT pipeline_kafka.consume_begin('logs', 'logs_stream', format := 'json');",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT count FROM message_count", 1000).await;
    produce(&brokers, "logs", &json_messages(1000, 500, 4));
    wait_for(&client, "SELECT count FROM message_count", 1500).await;
    assert_eq!(scalar(&client, "SELECT sum(n)::bigint FROM per_key").await, 1500);
    assert_eq!(scalar(&client, "SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets").await, 1500);
    assert_eq!(scalar(&client, "SELECT count(*) FROM pipeline_kafka.offsets WHERE topic = 'logs'").await, 4);
    assert_eq!(scalar(&client, "SELECT max(lag) FROM pipeline_kafka.lag").await, 0);
    let row =
        client.query_one("SELECT status, format, messages, errors FROM pipeline_kafka.consumers", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "running");
    assert_eq!(row.get::<_, String>(1), "json");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (1500, 0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_recorded_and_the_rest_applied() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("events", 2, 1).unwrap();
    let messages: Vec<(i32, String)> = vec![
        (0, r#"{"k": "a", "v": 1}"#.into()),
        (0, r#"{"k": "a", "v": "not a number"}"#.into()),
        (1, r#"{"k": "b", "v": 2"#.into()),
        (1, r#"{"k": "b", "v": 3, "ignored": [1, 2]}"#.into()),
        (0, r#"{"v": 4}"#.into()),
        (1, r#""just a string""#.into()),
        (0, r#"{"k": "c", "v": 5}"#.into()),
    ];
    produce(&brokers, "events", &messages);
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM events (k text NOT NULL, v int);
             CREATE VIEW totals AS SELECT k, count(*) AS n, sum(v) AS total FROM events GROUP BY k;
             SELECT pipeline_kafka.consume_begin('events', 'events', format := 'json', start_offset := -2);",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets", 7).await;
    assert_eq!(scalar(&client, "SELECT sum(n)::bigint FROM totals").await, 3);
    assert_eq!(scalar(&client, "SELECT sum(total)::bigint FROM totals").await, 9);
    let errors = client
        .query(
            "SELECT partition, \"offset\", error, message FROM pipeline_kafka.errors ORDER BY partition, \"offset\"",
            &[],
        )
        .await
        .unwrap();
    let found: Vec<(i32, i64)> = errors.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(found, vec![(0, 1), (0, 2), (1, 0), (1, 2)]);
    let error: String = errors[0].get(2);
    assert!(error.contains("integer") && error.contains("not a number"), "{error}");
    let missing: String = errors[1].get(2);
    assert!(missing.contains("missing required field \"k\""), "{missing}");
    let prefix: String = errors[2].get(3);
    assert_eq!(prefix, r#"{"k": "b", "v": 2"#);
    assert_eq!(scalar(&client, "SELECT errors FROM pipeline_kafka.consumers").await, 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_csv_formats_with_options() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("csv_topic", 3, 1).unwrap();
    mock.create_topic("text_topic", 1, 1).unwrap();
    produce(
        &brokers,
        "csv_topic",
        &[(0, "x|1\ny|2".into()), (1, "'z|z'|3\n".into()), (2, "w|oops".into()), (2, "x|4".into())],
    );
    produce(&brokers, "text_topic", &[(0, "x\t10".into()), (0, "y\t\\N\n".into())]);
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM s (name text, n int);
             CREATE STREAM t (name text, n int);
             CREATE VIEW s_sum AS SELECT count(*) AS c, sum(n) AS total FROM s;
             CREATE VIEW t_sum AS SELECT count(*) AS c, sum(n) AS total FROM t;
             SELECT pipeline_kafka.consume_begin('csv_topic', 's', format := 'csv', delimiter := '|', quote := '''', parallelism := 3);
             SELECT pipeline_kafka.consume_begin('text_topic', 't', format := 'text');",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT c FROM s_sum", 4).await;
    assert_eq!(scalar(&client, "SELECT total FROM s_sum").await, 10);
    wait_for(&client, "SELECT c FROM t_sum", 2).await;
    assert_eq!(scalar(&client, "SELECT total FROM t_sum").await, 10);
    assert_eq!(scalar(&client, "SELECT count(*) FROM pipeline_kafka.errors WHERE topic = 'csv_topic'").await, 1);
    let parallelism = scalar(&client, "SELECT parallelism FROM pipeline_kafka.consumers WHERE topic = 'csv_topic'");
    assert_eq!(parallelism.await, 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_offsets_and_resuming_after_consume_end() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    produce(&brokers, "t", &json_messages(0, 10, 1));
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM latest (k int, v int); CREATE VIEW latest_v AS SELECT count(*) AS c, sum(v) AS s FROM latest;
             CREATE STREAM exact (k int, v int); CREATE VIEW exact_v AS SELECT count(*) AS c, sum(v) AS s FROM exact;
             CREATE STREAM resumed (k int, v int); CREATE VIEW resumed_v AS SELECT count(*) AS c, sum(v) AS s FROM resumed;
             SELECT pipeline_kafka.consume_begin('t', 'latest', format := 'json', start_offset := -1);
             SELECT pipeline_kafka.consume_begin('t', 'exact', format := 'json', start_offset := 7);
             SELECT pipeline_kafka.consume_begin('t', 'resumed', format := 'json');",
        )
        .await
        .unwrap();
    // exact: offsets 7, 8, 9; resumed (NULL, nothing stored): everything.
    wait_for(&client, "SELECT s FROM exact_v", 7 + 8 + 9).await;
    wait_for(&client, "SELECT c FROM resumed_v", 10).await;
    wait_for(&client, "SELECT \"offset\" FROM pipeline_kafka.offsets WHERE relation = 'latest'", 10).await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM latest_v WHERE c > 0").await, 0);
    // Stop, produce more, and resume from the stored offset: nothing twice.
    client.batch_execute("SELECT pipeline_kafka.consume_end('t', 'resumed')").await.unwrap();
    let status: String = client
        .query_one("SELECT status FROM pipeline_kafka.consumers WHERE relation = 'resumed'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "stopped");
    produce(&brokers, "t", &json_messages(10, 5, 1));
    wait_for(&client, "SELECT c FROM latest_v", 5).await;
    assert_eq!(scalar(&client, "SELECT c FROM resumed_v").await, 10);
    client.batch_execute("SELECT pipeline_kafka.consume_begin('t', 'resumed', format := 'json')").await.unwrap();
    wait_for(&client, "SELECT c FROM resumed_v", 15).await;
    assert_eq!(scalar(&client, "SELECT s FROM resumed_v").await, (0..15).sum::<i64>());
    // The no-argument forms stop and restart every consumer.
    client.batch_execute("SELECT pipeline_kafka.consume_end()").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM pipeline_kafka.consumers WHERE status = 'stopped'").await, 3);
    produce(&brokers, "t", &json_messages(15, 5, 1));
    client.batch_execute("SELECT pipeline_kafka.consume_begin()").await.unwrap();
    wait_for(&client, "SELECT c FROM resumed_v", 20).await;
    wait_for(&client, "SELECT c FROM exact_v", 13).await;
    wait_for(&client, "SELECT c FROM latest_v", 10).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ksqldb_binding_consumes_on_create_and_stops_on_drop() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("pageviews", 2, 1).unwrap();
    let views: Vec<(i32, String)> = (0..100)
        .map(|i| (i % 2, format!("{{\"viewtime\": {i}, \"userid\": \"u{}\", \"pageid\": \"p{}\"}}", i % 3, i % 5)))
        .collect();
    produce(&brokers, "pageviews", &views);
    let server = start_server().await;
    let client = connect(&server).await;
    client
        .batch_execute(&format!(
            "CREATE STREAM pageviews (viewtime bigint, userid text, pageid text)
               WITH (kafka_topic='pageviews', value_format='json', kafka_brokers='{brokers}', start_offset='earliest');
             CREATE VIEW per_user AS SELECT userid, count(*) AS n FROM pageviews GROUP BY userid;"
        ))
        .await
        .unwrap();
    wait_for(&client, "SELECT sum(n)::bigint FROM per_user", 100).await;
    assert_eq!(scalar(&client, "SELECT n FROM per_user WHERE userid = 'u0'").await, 34);
    client.batch_execute("DROP STREAM pageviews CASCADE").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM pipeline_kafka.consumers").await, 0);
    // A missing topic is an error, and leaves no stream behind.
    let err = client
        .batch_execute(&format!(
            "CREATE STREAM nope (x int) WITH (kafka_topic='missing_topic', kafka_brokers='{brokers}')"
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42704"), "{err:?}");
    client.batch_execute("CREATE STREAM nope (x int)").await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("t", 1, 1).unwrap();
    let server = start_server().await;
    let client = connect(&server).await;
    client.batch_execute("CREATE STREAM s (x int)").await.unwrap();
    let code = |sql: &'static str| {
        let client = &client;
        async move {
            let err = client.batch_execute(sql).await.expect_err(sql);
            err.code().map(|c| c.code().to_string()).unwrap_or_default()
        }
    };
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('t', 's')").await, "55000");
    client.batch_execute(&format!("SELECT pipeline_kafka.add_broker('{brokers}')")).await.unwrap();
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('t', 'no_such_stream')").await, "42P01");
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('no_such_topic', 's')").await, "42704");
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('t', 's', format := 'avro')").await, "22023");
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('t', 's', colour := 'red')").await, "22023");
    assert_eq!(code("SELECT pipeline_kafka.consume_end('t', 's')").await, "42704");
    assert_eq!(code("SELECT pipeline_kafka.remove_broker('elsewhere:9092')").await, "42704");
    client.batch_execute("SELECT pipeline_kafka.consume_begin('t', 's')").await.unwrap();
    assert_eq!(code("SELECT pipeline_kafka.consume_begin('t', 's')").await, "42710");
    let rows = client.query("SELECT pipeline_kafka.consume_end('t', 's')", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "success");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_reported_and_retried() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let server = start_server().await;
    let (client, notices) = connect_with_notices(&server).await;
    client
        .batch_execute(&format!(
            "CREATE STREAM s (x int); CREATE VIEW c AS SELECT count(*) FROM s;
             SELECT pipeline_kafka.add_broker('{dead_addr}');"
        ))
        .await
        .unwrap();
    client.batch_execute("SELECT pipeline_kafka.consume_begin('t', 's')").await.unwrap();
    let warned = notices.lock().iter().any(|n| n.contains("not reachable") && n.contains("retrying"));
    assert!(warned, "{:?}", notices.lock());
    let status: String = client.query_one("SELECT status FROM pipeline_kafka.consumers", &[]).await.unwrap().get(0);
    assert!(status == "retrying" || status == "starting", "{status}");
    // Everything else keeps being served.
    client.batch_execute("INSERT INTO s VALUES (1)").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count FROM c").await, 1);
    let error: Option<String> =
        client.query_one("SELECT last_error FROM pipeline_kafka.consumers", &[]).await.unwrap().get(0);
    assert!(error.is_some());
    client.batch_execute("SELECT pipeline_kafka.consume_end('t', 's')").await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_that_goes_away_and_comes_back() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("t", 2, 1).unwrap();
    produce(&brokers, "t", &json_messages(0, 100, 2));
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM s (k int, v int); CREATE VIEW c AS SELECT count(*) AS n FROM s;
             SELECT pipeline_kafka.consume_begin('t', 's', format := 'json');",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT n FROM c", 100).await;
    mock.broker_down(1).unwrap();
    let start = Instant::now();
    loop {
        let status: String = client.query_one("SELECT status FROM pipeline_kafka.consumers", &[]).await.unwrap().get(0);
        if status == "retrying" {
            break;
        }
        assert!(start.elapsed() < CATCH_UP, "status stayed {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scalar(&client, "SELECT n FROM c").await, 100);
    mock.broker_up(1).unwrap();
    produce(&brokers, "t", &json_messages(100, 50, 2));
    wait_for(&client, "SELECT n FROM c", 150).await;
    let status: String = client.query_one("SELECT status FROM pipeline_kafka.consumers", &[]).await.unwrap().get(0);
    assert_eq!(status, "running");
    server.shutdown().await;
}

/// A message that one view cannot apply (10 / v with v = 0) changes no
/// view: it is reported in pipeline_kafka.errors with its offset, every
/// other message reaches every view, and the offsets move past the batch
/// only after that. Before, the batch was lost for the failing view and the
/// offsets moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_a_view_cannot_apply_is_reported_and_the_rest_applied_everywhere() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("ratios", 1, 1).unwrap();
    let messages: Vec<(i32, String)> =
        (0..100).map(|i| (0, format!("{{\"v\": {}}}", if i == 50 { 0 } else { i % 9 + 1 }))).collect();
    produce(&brokers, "ratios", &messages);
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM r (v int);
             CREATE VIEW plain AS SELECT count(*) AS n FROM r;
             CREATE VIEW divided AS SELECT count(*) AS n, sum(10 / v) AS total FROM r;
             SELECT pipeline_kafka.consume_begin('ratios', 'r', format := 'json', batchsize := 1000, timeout := 500);",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets", 100).await;
    assert_eq!(scalar(&client, "SELECT n FROM plain").await, 99);
    assert_eq!(scalar(&client, "SELECT n FROM divided").await, 99);
    let errors = client.query("SELECT \"offset\", error FROM pipeline_kafka.errors", &[]).await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].get::<_, i64>(0), 50);
    let error: String = errors[0].get(1);
    assert!(error.contains("divided") && error.to_lowercase().contains("divide by zero"), "{error}");
    assert_eq!(scalar(&client, "SELECT sum(rows_in)::bigint FROM pipelinedb.streams").await, 99);
    server.shutdown().await;
}

/// A text or CSV message that is exactly `\.` is a bad row, not the end of
/// its micro-batch: the 98 other rows all count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_of_copy_marker_in_a_message_drops_nothing() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("marked", 1, 1).unwrap();
    let messages: Vec<(i32, String)> =
        (0..99).map(|i| (0, if i == 49 { "\\.".to_string() } else { format!("k{i},{i}") })).collect();
    produce(&brokers, "marked", &messages);
    let server = start_server().await;
    let client = connect(&server).await;
    setup(&client, &brokers).await;
    client
        .batch_execute(
            "CREATE STREAM m (k text, v int);
             CREATE VIEW c AS SELECT count(*) AS n FROM m;
             SELECT pipeline_kafka.consume_begin('marked', 'm', format := 'csv', batchsize := 1000, timeout := 500);",
        )
        .await
        .unwrap();
    wait_for(&client, "SELECT sum(\"offset\")::bigint FROM pipeline_kafka.offsets", 99).await;
    assert_eq!(scalar(&client, "SELECT n FROM c").await, 98);
    assert_eq!(scalar(&client, "SELECT \"offset\" FROM pipeline_kafka.errors").await, 49);
    server.shutdown().await;
}

/// A keyed message: partition, key (empty: none), and value (`None`: a tombstone).
type Keyed = (i32, Vec<u8>, Option<String>);

fn produce_keyed(brokers: &str, topic: &str, messages: &[Keyed]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    for (partition, key, value) in messages {
        let mut record = BaseRecord::<[u8], str>::to(topic).partition(*partition);
        if !key.is_empty() {
            record = record.key(key.as_slice());
        }
        if let Some(value) = value {
            record = record.payload(value.as_str());
        }
        producer.send(record).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// Customers `c0`..`c39` over several rounds of plan changes and
/// tombstones; each key stays in one partition, so its messages keep their
/// order. Returns the messages and, per customer still there, its plan.
fn customer_messages(round: u64, model: &mut std::collections::BTreeMap<String, String>) -> Vec<Keyed> {
    let plans = ["free", "pro", "team", "enterprise"];
    let mut messages = Vec::new();
    for step in 0..200u64 {
        let c = (step * 7 + round * 13) % 40;
        let key = format!("c{c}");
        let value = if (step + round) % 9 == 4 {
            model.remove(&key);
            None
        } else {
            let plan = plans[((step * 3 + round + c) % 4) as usize].to_string();
            model.insert(key.clone(), plan.clone());
            Some(format!("{{\"plan\": \"{plan}\", \"seats\": {step}}}"))
        };
        messages.push(((c % 3) as i32, key.into_bytes(), value));
    }
    messages
}

async fn plans_by_count(client: &Client, sql: &str) -> Vec<(String, i64)> {
    client.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn expected_counts(model: &std::collections::BTreeMap<String, String>) -> Vec<(String, i64)> {
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for plan in model.values() {
        *counts.entry(plan.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_table_keeps_the_last_value_per_key_and_tombstones_delete() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("accounts", 3, 1).unwrap();
    let mut model = std::collections::BTreeMap::new();
    produce_keyed(&brokers, "accounts", &customer_messages(0, &mut model));
    // A message without a key, and one whose value breaks NOT NULL: both reported, neither applied.
    produce_keyed(&brokers, "accounts", &[(0, Vec::new(), Some("{\"plan\": \"x\"}".into()))]);
    produce_keyed(&brokers, "accounts", &[(1, b"zz".to_vec(), Some("{\"seats\": 1}".into()))]);
    let server = start_server().await;
    let client = connect(&server).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id text PRIMARY KEY, plan text NOT NULL, seats int)
               WITH (kafka_topic = 'accounts', value_format = 'json', kafka_brokers = '{brokers}');
             CREATE VIEW by_plan AS SELECT plan, count(*) AS n FROM customers GROUP BY plan;
             CREATE VIEW top_plans AS SELECT plan, n FROM by_plan WHERE n >= 5;"
        ))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let count = "SELECT count(*) FROM customers";
    wait_for(&client, count, model.len() as i64).await;
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.errors", 2).await;
    let rows = client.query("SELECT id, plan FROM customers ORDER BY id", &[]).await.unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, model.clone().into_iter().collect::<Vec<_>>());
    // The table follows the topic after the views exist, through a view over a view.
    for round in 1..4 {
        produce_keyed(&brokers, "accounts", &customer_messages(round, &mut model));
        let expected = expected_counts(&model);
        let total: i64 = expected.iter().map(|(_, n)| n).sum();
        wait_for(&client, "SELECT sum(n)::bigint FROM by_plan", total).await;
        wait_for(&client, count, model.len() as i64).await;
        assert_eq!(plans_by_count(&client, "SELECT plan, n FROM by_plan WHERE n > 0 ORDER BY plan").await, expected);
        let top: Vec<_> = expected.into_iter().filter(|(_, n)| *n >= 5).collect();
        assert_eq!(plans_by_count(&client, "SELECT plan, n FROM top_plans ORDER BY plan").await, top);
    }
    // SQL may not write to it: the topic is its only writer.
    for sql in
        ["INSERT INTO customers VALUES ('c999', 'free', 1)", "DELETE FROM customers", "UPDATE customers SET seats = 0"]
    {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{sql}: {err:?}");
        assert!(format!("{err:?}").contains("produce to the topic"), "{err:?}");
    }
    client.batch_execute("DROP TABLE customers CASCADE").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM pipeline_kafka.consumers").await, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_tables_take_binary_text_and_json_keys() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    for topic in ["binary", "text", "json"] {
        mock.create_topic(topic, 1, 1).unwrap();
    }
    let value = |v: &str| Some(format!("{{\"v\": \"{v}\"}}"));
    produce_keyed(&brokers, "binary", &[(0, 7i64.to_be_bytes().to_vec(), value("a")), (0, b"7".to_vec(), value("b"))]);
    produce_keyed(&brokers, "text", &[(0, b"7".to_vec(), value("a")), (0, b"8".to_vec(), None)]);
    let json = [(0, br#"{"region": "eu", "id": 7}"#.to_vec(), value("a")), (0, br#"{"id": 7}"#.to_vec(), value("b"))];
    produce_keyed(&brokers, "json", &json);
    let server = start_server().await;
    let client = connect(&server).await;
    client
        .batch_execute(&format!(
            "SELECT pipeline_kafka.add_broker('{brokers}');
             CREATE TABLE b (id bigint PRIMARY KEY, v text) WITH (kafka_topic = 'binary');
             CREATE TABLE t (id bigint PRIMARY KEY, v text) WITH (kafka_topic = 'text', key_format = 'delimited');
             CREATE TABLE j (region text, id int, v text, PRIMARY KEY (region, id))
               WITH (kafka_topic = 'json', key_format = 'json');"
        ))
        .await
        .unwrap();
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.errors", 2).await;
    wait_for(&client, "SELECT sum(id) FROM b", 7).await;
    wait_for(&client, "SELECT sum(id) FROM t", 7).await;
    wait_for(&client, "SELECT sum(id)::bigint FROM j WHERE region = 'eu'", 7).await;
    let errors = client.query("SELECT topic, error FROM pipeline_kafka.errors ORDER BY topic", &[]).await.unwrap();
    let errors: Vec<(String, String)> = errors.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(errors[0].0, "binary");
    assert!(errors[0].1.contains("key_format = 'delimited'"), "{errors:?}");
    assert_eq!(errors[1].0, "json");
    assert!(errors[1].1.contains("\"region\""), "{errors:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_a_view_over_a_kafka_table_cannot_apply_is_reported_and_the_rest_applied() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("seats", 1, 1).unwrap();
    let messages: Vec<Keyed> = (0..200)
        .map(|i| {
            (0, format!("k{i}").into_bytes(), Some(format!("{{\"seats\": {}}}", if i == 77 { 0 } else { 1 + i % 3 })))
        })
        .collect();
    produce_keyed(&brokers, "seats", &messages);
    let server = start_server().await;
    let client = connect(&server).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE holders (id text PRIMARY KEY, seats int)
               WITH (kafka_topic = 'seats', kafka_brokers = '{brokers}', start_offset = 'latest');
             CREATE VIEW per_seat AS SELECT sum(600 / seats) AS shares, count(*) AS n FROM holders;
             SELECT pipeline_kafka.consume_end('seats', 'holders');
             SELECT pipeline_kafka.consume_begin('seats', 'holders', format := 'json', start_offset := -2);"
        ))
        .await
        .unwrap();
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.errors", 1).await;
    wait_for(&client, "SELECT count(*) FROM holders", 199).await;
    let expected: i64 = (0..200).filter(|&i| i != 77).map(|i| 600 / (1 + i % 3)).sum();
    assert_eq!(scalar(&client, "SELECT shares FROM per_seat").await, expected);
    let offset: i64 = scalar(&client, "SELECT \"offset\" FROM pipeline_kafka.errors").await;
    assert_eq!(offset, 77, "the message the view failed on is the one reported");
    server.shutdown().await;
}

/// `pipeline_kafka.produce_message` writes messages that a consumer reads
/// back: with a partition and a key, and with neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_message_round_trips_through_a_topic() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    mock.create_topic("produced", 2, 1).unwrap();
    let server = start_server().await;
    let client = connect(&server).await;
    let e = client
        .batch_execute("SELECT pipeline_kafka.produce_message('produced', '{}')")
        .await
        .expect_err("no broker yet");
    assert_eq!(e.code().map(|c| c.code()), Some("55000"));
    setup(&client, &brokers).await;
    let row = client
        .query_one("SELECT pipeline_kafka.produce_message('produced', '{\"k\": \"a\", \"v\": 1}')", &[])
        .await
        .expect("produce");
    assert_eq!(row.get::<_, String>(0), "success");
    client
        .batch_execute(
            "SELECT pipeline_kafka.produce_message('produced', '{\"k\": \"b\", \"v\": 2}', 1, 'b');
             SELECT pipeline_kafka.produce_message(topic := 'produced', message := '{\"k\": \"a\", \"v\": 4}', key := 'a');
             CREATE STREAM produced_stream (k text, v bigint);
             CREATE VIEW produced_totals AS SELECT k, sum(v) AS v FROM produced_stream GROUP BY k;
             SELECT pipeline_kafka.consume_begin('produced', 'produced_stream', format := 'json');",
        )
        .await
        .expect("produce and consume");
    wait_for(&client, "SELECT sum(v)::bigint FROM produced_totals", 7).await;
    assert_eq!(scalar(&client, "SELECT v FROM produced_totals WHERE k = 'a'").await, 5);
    // The message sent to partition 1 is there.
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.offsets WHERE partition = 1 AND \"offset\" >= 1", 1).await;
    let e = client
        .batch_execute("SELECT pipeline_kafka.produce_message('produced', 'x', -3)")
        .await
        .expect_err("bad partition");
    assert_eq!(e.code().map(|c| c.code()), Some("22023"));
}
