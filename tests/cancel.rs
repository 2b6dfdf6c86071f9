//! Stopping runaway statements: `statement_timeout` (set by the session or
//! by the server) and a CancelRequest both end a running query with 57014,
//! and the session goes on serving.

mod common;

use std::time::{Duration, Instant};

use eddy::Config;

/// A query that would run for hours.
const ENDLESS: &str = "SELECT count(*) FROM generate_series(1, 100000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cancels_a_long_query() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("SET statement_timeout = '300ms'").await.expect("set");
    let started = Instant::now();
    let err = client.simple_query(ENDLESS).await.expect_err("timed out");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(message, "canceling statement due to statement timeout");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped only after {:?}", started.elapsed());
    // The extended protocol too, and the session still serves.
    let err = client.query(ENDLESS, &[]).await.expect_err("timed out");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    client.batch_execute("SET statement_timeout = 0").await.expect("reset");
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 10)", &[]).await.expect("runs").get(0);
    assert_eq!(n, 10);
    let err = client.batch_execute("SET statement_timeout = 'soon'").await.expect_err("bad value");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{err:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_default_timeout_applies_to_every_session() {
    let config = Config { statement_timeout: Some(Duration::from_millis(300)), ..Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    let shown = client.simple_query("SHOW statement_timeout").await.expect("show");
    assert!(format!("{shown:?}").contains("300"), "{shown:?}");
    let err = client.simple_query(ENDLESS).await.expect_err("timed out");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_the_running_query() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client.simple_query(ENDLESS).await.expect_err("cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(message, "canceling statement due to user request");
    canceller.await.expect("task").expect("the cancel request was sent");
    assert!(!client.simple_query("SELECT 1").await.expect("still serving").is_empty());
    server.shutdown().await;
}

/// A query that would hold more than --max-query-memory (array_agg over
/// millions of rows) fails with 53200 instead of growing the process.
/// (Grouped aggregates and sorts spill to disk instead of failing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_memory_limit_fails_with_53200() {
    let config = Config { max_query_memory: 8 * 1024 * 1024, ..Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    // One group, so nothing to spill: 4M values are 32 MB.
    let sql = "SELECT cardinality(array_agg(value)) FROM generate_series(1, 4000000)";
    let err = client.simple_query(sql).await.expect_err("over the limit");
    assert_eq!(err.code().map(|c| c.code()), Some("53200"), "{err:?}");
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 1000)", &[]).await.expect("runs").get(0);
    assert_eq!(n, 1000);
    server.shutdown().await;
}
