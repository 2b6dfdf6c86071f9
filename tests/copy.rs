//! COPY FROM STDIN into streams, in text and CSV, through tokio-postgres.

mod common;

use bytes::Bytes;
use futures::SinkExt;

async fn copy(client: &tokio_postgres::Client, sql: &str, data: &str) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data.to_string())).await?;
    sink.finish().await
}

#[tokio::test]
async fn copy_text_and_csv_reach_the_views() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM s (k int, name text, v float8);
             CREATE VIEW v AS SELECT k, count(*) AS n, sum(v) AS total, max(name) AS name FROM s GROUP BY k",
        )
        .await
        .expect("ddl");
    let n =
        copy(&client, "COPY s (k, name, v) FROM STDIN", "1\ta\t1.5\n1\tb\t2.5\n2\t\\N\t10\n").await.expect("text copy");
    assert_eq!(n, 3);
    let n =
        copy(&client, "COPY s (k, name, v) FROM STDIN WITH (FORMAT csv, HEADER true)", "k,name,v\n2,\"x,y\",1\n3,,\n")
            .await
            .expect("csv copy");
    assert_eq!(n, 2);
    let rows = client.query("SELECT k, n, total, name FROM v ORDER BY k", &[]).await.expect("reads");
    let got: Vec<(i32, i64, Option<f64>, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        got,
        vec![(1, 2, Some(4.0), Some("b".to_string())), (2, 2, Some(11.0), Some("x,y".to_string())), (3, 1, None, None),]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_copy_data_names_the_line_and_applies_nothing() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute("CREATE STREAM s (k int); CREATE VIEW v AS SELECT count(*) AS n FROM s").await.expect("ddl");
    let err = copy(&client, "COPY s FROM STDIN", "1\n2\nabc\n4\n").await.expect_err("bad int");
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"));
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("\"abc\"") && message.contains("line 3"), "{message}");
    let err = copy(&client, "COPY s FROM STDIN", "1\t2\n").await.expect_err("extra column");
    assert_eq!(err.code().map(|c| c.code()), Some("22P04"));
    let n: i64 = client.query_one("SELECT n FROM v", &[]).await.expect("reads").get(0);
    assert_eq!(n, 0, "a failed COPY applies none of its rows");
    server.shutdown().await;
}

/// A record without its end (no newline, or an unterminated CSV quote)
/// fails the COPY with 54000 once it passes --max-record-bytes, and the
/// server goes on serving.
#[tokio::test]
async fn a_record_past_the_limit_fails_with_54000() {
    let config = eddy::Config { max_record_bytes: 64 * 1024, ..eddy::Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    client.batch_execute("CREATE STREAM s (t text); CREATE VIEW v AS SELECT count(*) AS n FROM s").await.expect("ddl");
    let long = "x".repeat(100 * 1024);
    for (sql, data) in [
        ("COPY s FROM STDIN", format!("a\n{long}")),
        ("COPY s FROM STDIN (FORMAT csv)", format!("a\n\"{long}\n{long}")),
    ] {
        let err = copy(&client, sql, &data).await.expect_err(sql);
        assert_eq!(err.code().map(|c| c.code()), Some("54000"), "{sql}: {err:?}");
    }
    let n = copy(&client, "COPY s FROM STDIN", &format!("{}\n", "y".repeat(60 * 1024))).await.expect("under the limit");
    assert_eq!(n, 1);
    let n: i64 = client.query_one("SELECT n FROM v", &[]).await.expect("reads").get(0);
    assert_eq!(n, 1);
    server.shutdown().await;
}

/// A full read of a view with more groups than one read chunk (16,384)
/// sees every group once: it is evaluated a chunk at a time, off the async
/// workers, so that writers are not held up for the whole read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_of_many_groups_sees_each_group_once() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute("CREATE STREAM g (k int); CREATE VIEW per_k AS SELECT k, count(*) AS n FROM g GROUP BY k")
        .await
        .expect("ddl");
    let data: String = (0..40_000).map(|k| format!("{k}\n{k}\n")).collect();
    assert_eq!(copy(&client, "COPY g FROM STDIN", &data).await.expect("copy"), 80_000);
    let row = client
        .query_one("SELECT count(*), count(DISTINCT k), sum(n)::bigint, min(k), max(k) FROM per_k", &[])
        .await
        .expect("reads");
    let got: (i64, i64, i64, i32, i32) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(got, (40_000, 40_000, 80_000, 0, 39_999));
    server.shutdown().await;
}
