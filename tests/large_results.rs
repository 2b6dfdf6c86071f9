//! Large results stream to the client instead of being collected whole:
//! the first rows of an endless query arrive at once, over the simple and
//! the extended protocol; a portal's Execute with a row limit gets that
//! many rows and can be resumed; and the statement's cancel and timeout
//! still stop a result that is being sent.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio_postgres::SimpleQueryMessage;

/// A result far too large to collect: 10^11 rows.
const ENDLESS: &str = "SELECT value FROM generate_series(1, 100000000000)";

/// Collecting a result this size would take hours and terabytes, so rows
/// arriving within this time means they were streamed.
const SOON: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_rows_of_an_endless_query_arrive_at_once() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;

    // The simple protocol.
    let rows = client.simple_query_raw(ENDLESS).await.expect("started");
    let rows = rows.try_filter_map(|m| async move {
        Ok(match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
    });
    let first: Vec<String> = tokio::time::timeout(SOON, rows.take(3).try_collect::<Vec<_>>())
        .await
        .expect("rows arrive while the query runs")
        .expect("rows");
    assert_eq!(first, ["1", "2", "3"]);
    cancel(&client).await;

    // The extended protocol.
    let rows = client.query_raw(ENDLESS, std::iter::empty::<i64>()).await.expect("started");
    let first: Vec<i64> = tokio::time::timeout(SOON, rows.take(3).try_collect::<Vec<_>>())
        .await
        .expect("rows arrive while the query runs")
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(first, [1, 2, 3]);
    cancel(&client).await;

    // COPY ... TO STDOUT, with its header line first.
    let copy = format!("COPY ({ENDLESS}) TO STDOUT WITH (FORMAT csv, HEADER)");
    let data = client.copy_out(copy.as_str()).await.expect("started");
    let first: Vec<bytes::Bytes> = tokio::time::timeout(SOON, data.take(3).try_collect::<Vec<_>>())
        .await
        .expect("lines arrive while the query runs")
        .expect("lines");
    assert_eq!(first, ["value\n1\n", "2\n", "3\n"]);
    cancel(&client).await;

    // A finite COPY counts its rows, not its header.
    let data = client.copy_out("COPY (SELECT 1 AS a) TO STDOUT WITH (FORMAT csv, HEADER)").await.expect("copy");
    let lines: Vec<bytes::Bytes> = data.try_collect().await.expect("lines");
    assert_eq!(lines, ["a\n1\n"]);
    let data =
        client.copy_out("COPY (SELECT 1 AS a WHERE false) TO STDOUT WITH (FORMAT csv, HEADER)").await.expect("copy");
    let lines: Vec<bytes::Bytes> = data.try_collect().await.expect("lines");
    assert_eq!(lines, ["a\n"]);
    server.shutdown().await;
}

/// Cancels what the connection is still receiving, and checks that it
/// serves again.
async fn cancel(client: &tokio_postgres::Client) {
    client.cancel_token().cancel_query(tokio_postgres::NoTls).await.expect("cancel sent");
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 10)", &[]).await.expect("serves").get(0);
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_returns_the_rows_asked_for_and_resumes() {
    let server = common::start_server().await;
    let mut client = common::connect(&server).await;
    let tx = client.transaction().await.expect("begin");
    let portal = tx.bind(ENDLESS, &[]).await.expect("bound");
    let page = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>();
    let first = tokio::time::timeout(SOON, tx.query_portal(&portal, 3)).await.expect("in time").expect("rows");
    assert_eq!(page(first), [1, 2, 3]);
    let next = tx.query_portal(&portal, 2).await.expect("resumed");
    assert_eq!(page(next), [4, 5]);
    // Another statement between two Executes of the portal.
    let n: i64 = tx.query_one("SELECT count(*) FROM generate_series(1, 7)", &[]).await.expect("runs").get(0);
    assert_eq!(n, 7);
    let next = tx.query_portal(&portal, 1).await.expect("resumed");
    assert_eq!(page(next), [6]);
    tx.commit().await.expect("commit");

    // A finite portal ends with its last row.
    let tx = client.transaction().await.expect("begin");
    let portal = tx.bind("SELECT value FROM generate_series(1, 5)", &[]).await.expect("bound");
    assert_eq!(page(tx.query_portal(&portal, 4).await.expect("rows")), [1, 2, 3, 4]);
    assert_eq!(page(tx.query_portal(&portal, 4).await.expect("rows")), [5]);
    assert!(tx.query_portal(&portal, 4).await.expect("done").is_empty());
    tx.commit().await.expect("commit");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_result_is_still_stopped_by_its_timeout() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("SET statement_timeout = '1s'").await.expect("set");
    // An endless result, read as fast as it comes, is stopped by the
    // timeout between two of its batches.
    let mut rows = Box::pin(client.query_raw(ENDLESS, std::iter::empty::<i64>()).await.expect("started"));
    let mut seen = 0u64;
    let err = loop {
        match rows.next().await {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => break e,
            None => panic!("an endless result ended after {seen} rows"),
        }
    };
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?} after {seen} rows");
    assert!(seen > 0, "rows streamed before the timeout");
    client.batch_execute("SET statement_timeout = 0").await.expect("reset");
    let n: i64 = client.query_one("SELECT count(*) FROM generate_series(1, 10)", &[]).await.expect("serves").get(0);
    assert_eq!(n, 10);
    server.shutdown().await;
}
