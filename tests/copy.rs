//! COPY FROM STDIN into streams, in text and CSV, through tokio-postgres.

mod common;

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};

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

/// Binary COPY, as asyncpg's `copy_records_to_table` and psycopg send it:
/// tokio-postgres's own encoder writes each value in its type's binary form.
#[tokio::test]
async fn binary_copy_reaches_tables_and_views() {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};

    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute(
            "CREATE STREAM b (k text, n int, big bigint, f float8, ok boolean, at timestamptz, meta jsonb, code varchar(3));
             CREATE VIEW bv AS SELECT k, count(*) AS c, sum(n) AS sn, sum(big)::text AS sb, sum(f) AS sf, bool_and(ok) AS ok, \
               max(at) AS last, max(meta->>'x') AS x, max(code) AS code FROM b GROUP BY k;
             CREATE TABLE bt (id bigint PRIMARY KEY, owner text)",
        )
        .await
        .expect("ddl");
    let types =
        [Type::TEXT, Type::INT4, Type::INT8, Type::FLOAT8, Type::BOOL, Type::TIMESTAMPTZ, Type::JSONB, Type::VARCHAR];
    let at = chrono::DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678901Z").expect("time").to_utc();
    let meta = serde_json::json!({"x": "y"});
    let sink =
        client.copy_in("COPY b (k, n, big, f, ok, at, meta, code) FROM STDIN (FORMAT binary)").await.expect("copy");
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    for i in 0..1000i64 {
        let row: [&(dyn ToSql + Sync); 8] = [&"a", &(i as i32), &(i64::MAX - i), &0.5f64, &true, &at, &meta, &"abc"];
        writer.as_mut().write(&row).await.expect("row");
    }
    let nulls: [&(dyn ToSql + Sync); 8] = [
        &"b",
        &None::<i32>,
        &None::<i64>,
        &None::<f64>,
        &None::<bool>,
        &None::<chrono::DateTime<chrono::Utc>>,
        &None::<serde_json::Value>,
        &None::<&str>,
    ];
    writer.as_mut().write(&nulls).await.expect("row of NULLs");
    assert_eq!(writer.finish().await.expect("finish"), 1001);

    let row = client.query_one("SELECT c, sn, sb, sf, ok, last, x, code FROM bv WHERE k = 'a'", &[]).await.expect("a");
    let sum_big = (0..1000i128).map(|i| i128::from(i64::MAX) - i).sum::<i128>().to_string();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, String>(2),
            row.get::<_, f64>(3),
            row.get::<_, bool>(4)
        ),
        (1000, 499_500, sum_big, 500.0, true)
    );
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(5), at);
    assert_eq!((row.get::<_, String>(6), row.get::<_, String>(7)), ("y".to_string(), "abc".to_string()));
    let row = client.query_one("SELECT c, sn, ok, last FROM bv WHERE k = 'b'", &[]).await.expect("b");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, Option<i64>>(1), row.get::<_, Option<bool>>(2)), (1, None, None));

    let sink = client.copy_in("COPY bt FROM STDIN WITH BINARY").await.expect("copy into a table");
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT]);
    futures::pin_mut!(writer);
    writer.as_mut().write(&[&1i64, &"ann"]).await.expect("row");
    writer.as_mut().write(&[&2i64, &"bob"]).await.expect("row");
    assert_eq!(writer.finish().await.expect("finish"), 2);
    let owners: Vec<String> =
        client.query("SELECT owner FROM bt ORDER BY id", &[]).await.expect("bt").iter().map(|r| r.get(0)).collect();
    assert_eq!(owners, ["ann", "bob"]);

    // And out again: tokio-postgres's decoder reads each binary value.
    let stream = client
        .copy_out("COPY (SELECT c, sb::numeric AS sb, last, x, code FROM bv ORDER BY k) TO STDOUT (FORMAT binary)")
        .await
        .expect("binary copy out");
    let types = [Type::INT8, Type::NUMERIC, Type::TIMESTAMPTZ, Type::TEXT, Type::TEXT];
    let rows: Vec<_> =
        tokio_postgres::binary_copy::BinaryCopyOutStream::new(stream, &types).try_collect().await.expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].get::<i64>(0), rows[0].get::<chrono::DateTime<chrono::Utc>>(2)), (1000, at));
    assert_eq!((rows[0].get::<&str>(3), rows[0].get::<&str>(4)), ("y", "abc"));
    assert_eq!((rows[1].get::<i64>(0), rows[1].get::<Option<&str>>(3)), (1, None));
    // Byte for byte what PostgreSQL 15 sends: header, one row, and one
    // two-byte trailer (a second trailer left psycopg 3's connection busy).
    let stream = client.copy_out("COPY (SELECT 1::int8 AS a) TO STDOUT (FORMAT binary)").await.expect("copy out");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("bytes");
    let want: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x08\0\0\0\0\0\0\0\x01\xff\xff";
    assert_eq!(chunks.concat(), want);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_binary_copy_data_is_an_error_and_applies_nothing() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute("CREATE STREAM s (k int, code varchar(2)); CREATE VIEW v AS SELECT count(*) AS n FROM s")
        .await
        .expect("ddl");
    let header = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    // One good row: 2 fields, int4 7 and 'ab'.
    let mut good = vec![0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 2];
    good.extend_from_slice(b"ab");
    let cases: [(Vec<u8>, &str, &str); 5] = [
        (b"PGCOPY\n\xff\r\n\x01".to_vec(), "22P04", "signature not recognized"),
        (
            [&header[..], &good, &[0, 1, 0, 0, 0, 4, 0, 0, 0, 1][..]].concat(),
            "22P04",
            "row field count is 1, expected 2",
        ),
        ([&header[..], &good, &good[..9]].concat(), "22P04", "unexpected EOF"),
        ([&header[..], &[0, 2, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 1, b'x'][..]].concat(), "22P04", "not a binary integer"),
        (
            [&header[..], &good[..10], &[0, 0, 0, 3][..], b"abc", &[0xff, 0xff][..]].concat(),
            "22001",
            "character varying(2)",
        ),
    ];
    for (data, state, words) in cases {
        let sink = client.copy_in("COPY s FROM STDIN (FORMAT binary)").await.expect("copy");
        futures::pin_mut!(sink);
        sink.send(Bytes::from(data)).await.expect("send");
        let err = sink.finish().await.expect_err(words);
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert_eq!(err.code().map(|c| c.code()), Some(state), "{message}");
        assert!(message.contains(words), "{message}");
    }
    let err = client.batch_execute("COPY s FROM STDIN (FORMAT binary, DELIMITER ',')").await.expect_err("option");
    assert_eq!(err.code().map(|c| c.code()), Some("42601"));
    // A good COPY still works, and nothing from the bad ones landed.
    let sink = client.copy_in("COPY s FROM STDIN (FORMAT binary)").await.expect("copy");
    futures::pin_mut!(sink);
    sink.send(Bytes::from([&header[..], &good, &[0xff, 0xff][..]].concat())).await.expect("send");
    assert_eq!(sink.finish().await.expect("good binary copy"), 1);
    let n: i64 = client.query_one("SELECT n FROM v", &[]).await.expect("reads").get(0);
    assert_eq!(n, 1, "a failed COPY applies none of its rows");
    server.shutdown().await;
}
