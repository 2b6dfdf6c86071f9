//! `--max-state-memory-mb`: past it, INSERT, COPY and UPDATE fail with
//! 53200 and Kafka consumers pause with their offsets kept; reads, DELETE
//! and DDL still work, and once there is room again writes go on and the
//! paused messages arrive, none lost.

mod common;

use std::time::{Duration, Instant};

use eddy::Config;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use tokio_postgres::Client;

/// A limit 40,000 groups of a count per key are well past.
const LIMIT: u64 = 1024 * 1024;

/// How long the server may take to measure its state and act on it.
const MEASURED: Duration = Duration::from_secs(20);

fn limited() -> Config {
    Config { max_state_memory: Some(LIMIT), ..Config::default() }
}

async fn scalar(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// Inserts one row into `probe` until it is refused for memory, and
/// returns the refusal.
async fn refused_for_memory(client: &Client) -> tokio_postgres::Error {
    let start = Instant::now();
    loop {
        match client.execute("INSERT INTO probe VALUES (1)", &[]).await {
            Err(e) => return e,
            Ok(_) => assert!(start.elapsed() < MEASURED, "writes still accepted past the state limit"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts one row into `probe` until it is accepted.
async fn accepted_again(client: &Client) {
    let start = Instant::now();
    while let Err(e) = client.execute("INSERT INTO probe VALUES (1)", &[]).await {
        assert_eq!(e.code().map(|c| c.code()), Some("53200"), "{e:?}");
        assert!(start.elapsed() < MEASURED, "writes still refused once there is room: {e:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_state_limit_fail_with_53200_until_there_is_room() {
    let server = common::start_server_with(limited()).await;
    let client = common::connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM probe (k bigint);
             CREATE STREAM s (k bigint);
             CREATE VIEW per_key AS SELECT k, count(*) AS n FROM s GROUP BY k;
             CREATE TABLE t (id bigint PRIMARY KEY, v text);
             INSERT INTO t VALUES (1, 'a'), (2, 'b');
             INSERT INTO s SELECT value FROM generate_series(1, 40000);",
        )
        .await
        .expect("setup");
    let err = refused_for_memory(&client).await;
    assert_eq!(err.code().map(|c| c.code()), Some("53200"), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("over --max-state-memory-mb (1 MiB)"), "{message}");

    // COPY, an INSERT into a table and an UPDATE are refused too.
    let copy = client.copy_in::<_, bytes::Bytes>("COPY s FROM STDIN").await;
    let copied = match copy {
        Ok(sink) => {
            use futures::SinkExt;
            let mut sink = Box::pin(sink);
            let _ = sink.send(bytes::Bytes::from_static(b"7\n")).await;
            sink.as_mut().finish().await
        }
        Err(e) => Err(e),
    };
    let err = copied.expect_err("COPY refused");
    assert_eq!(err.code().map(|c| c.code()), Some("53200"), "{err:?}");
    for write in ["INSERT INTO t VALUES (3, 'c')", "UPDATE t SET v = 'z' WHERE id = 1"] {
        let err = client.execute(write, &[]).await.expect_err(write);
        assert_eq!(err.code().map(|c| c.code()), Some("53200"), "{write}: {err:?}");
    }

    // Reads, DELETE and DDL still work, and nothing refused was applied.
    assert_eq!(scalar(&client, "SELECT sum(n)::bigint FROM per_key").await, 40000);
    assert_eq!(client.execute("DELETE FROM t WHERE id = 2", &[]).await.expect("delete"), 1);
    assert_eq!(scalar(&client, "SELECT count(*) FROM t WHERE v = 'a'").await, 1);

    // Dropping the view makes room.
    client.batch_execute("DROP VIEW per_key").await.expect("drop");
    accepted_again(&client).await;
    client.execute("INSERT INTO t VALUES (3, 'c')", &[]).await.expect("insert");
    assert_eq!(scalar(&client, "SELECT count(*) FROM t").await, 2);
    server.shutdown().await;
}

fn produce(brokers: &str, topic: &str, keys: std::ops::Range<u64>) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("producer");
    for k in keys {
        let payload = format!("{{\"k\": {k}}}");
        producer.send(BaseRecord::<(), String>::to(topic).payload(&payload)).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// Polls `sql` until it returns `expected`.
async fn wait_for(client: &Client, sql: &str, expected: i64) {
    let start = Instant::now();
    loop {
        let got = client.query_one(sql, &[]).await.ok().and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(-1);
        if got == expected {
            return;
        }
        assert!(start.elapsed() < MEASURED, "{sql}: still {got}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_consumer_pauses_past_the_state_limit_and_loses_nothing() {
    let mock = MockCluster::<DefaultProducerContext>::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    mock.create_topic("events", 1, 1).expect("topic");
    produce(&brokers, "events", 0..40000);
    let server = common::start_server_with(limited()).await;
    let client = common::connect(&server).await;
    client
        .batch_execute(&format!(
            "CREATE STREAM probe (k bigint);
             CREATE STREAM events (k bigint)
               WITH (kafka_topic = 'events', value_format = 'json', kafka_brokers = '{brokers}', start_offset = 'earliest');
             CREATE VIEW per_key AS SELECT k, count(*) AS n FROM events GROUP BY k;
             CREATE VIEW total AS SELECT count(*) AS n FROM events;"
        ))
        .await
        .expect("setup");
    wait_for(&client, "SELECT n FROM total", 40000).await;
    refused_for_memory(&client).await;

    // Past the limit, new messages wait in the topic.
    produce(&brokers, "events", 40000..45000);
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.consumers WHERE status = 'paused'", 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(scalar(&client, "SELECT n FROM total").await, 40000, "a paused consumer applied messages");

    // Room again: every message arrives, once.
    client.batch_execute("DROP VIEW per_key").await.expect("drop");
    wait_for(&client, "SELECT n FROM total", 45000).await;
    wait_for(&client, "SELECT count(*) FROM pipeline_kafka.consumers WHERE status = 'running'", 1).await;
    server.shutdown().await;
}
