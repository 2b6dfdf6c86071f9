//! Every column type the wire layer must get right: the type OID, the text
//! encoding (simple protocol) and the binary encoding (extended protocol,
//! decoded by tokio-postgres), through a continuous view.

mod common;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

const DDL: &str = "
CREATE STREAM t (
    i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(10,2), s text, vc varchar(20),
    b bool, d date, ts timestamp, tz timestamptz, iv interval, j json, jb jsonb
);
CREATE VIEW all_types AS
    SELECT i2, i4, i8, f4, f8, n, s, vc, b, d, ts, tz, iv, j, jb, count(*) AS c
    FROM t GROUP BY i2, i4, i8, f4, f8, n, s, vc, b, d, ts, tz, iv, j, jb;
INSERT INTO t VALUES (
    -2, 40000, 9000000000, 1.5, 2.25, 12.34, 'héllo', 'vc',
    true, '2024-02-29', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15+00', '1 day 2 hours',
    '{\"a\": 1}', '{\"b\": [1, 2]}'
);
INSERT INTO t (i4) VALUES (NULL);
";

#[tokio::test]
async fn types_have_the_right_oids_and_encodings() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client.batch_execute(DDL).await.expect("ddl and inserts");

    let stmt = client.prepare("SELECT * FROM all_types WHERE i4 = 40000").await.expect("prepares");
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::INTERVAL,
            Type::JSON,
            Type::JSONB,
            Type::INT8,
        ]
    );

    // Binary, decoded by tokio-postgres.
    let row = client.query_one(&stmt, &[]).await.expect("one row");
    assert_eq!(row.get::<_, i16>(0), -2);
    assert_eq!(row.get::<_, i32>(1), 40000);
    assert_eq!(row.get::<_, i64>(2), 9_000_000_000);
    assert_eq!(row.get::<_, f32>(3), 1.5);
    assert_eq!(row.get::<_, f64>(4), 2.25);
    assert_eq!(row.get::<_, String>(6), "héllo");
    assert_eq!(row.get::<_, String>(7), "vc");
    assert!(row.get::<_, bool>(8));
    assert_eq!(row.get::<_, chrono::NaiveDate>(9), chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    assert_eq!(row.get::<_, chrono::NaiveDateTime>(10).to_string(), "2024-02-29 13:14:15.500");
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(11).to_rfc3339(), "2024-02-29T13:14:15+00:00");
    assert_eq!(row.get::<_, serde_json::Value>(13), serde_json::json!({"a": 1}));
    assert_eq!(row.get::<_, serde_json::Value>(14), serde_json::json!({"b": [1, 2]}));
    assert_eq!(row.get::<_, i64>(15), 1);

    // Text, as the simple protocol sends it.
    let messages = client.simple_query("SELECT * FROM all_types WHERE i4 = 40000").await.expect("reads");
    let SimpleQueryMessage::Row(text) =
        messages.iter().find(|m| matches!(m, SimpleQueryMessage::Row(_))).expect("a row")
    else {
        unreachable!()
    };
    let cells: Vec<&str> = (0..text.len()).map(|i| text.get(i).unwrap_or("NULL")).collect();
    assert_eq!(&cells[..3], &["-2", "40000", "9000000000"]);
    assert_eq!(cells[5], "12.34");
    assert_eq!(cells[8], "t");
    assert_eq!(cells[9], "2024-02-29");
    assert!(cells[10].starts_with("2024-02-29 13:14:15.5"), "{}", cells[10]);
    assert!(cells[11].starts_with("2024-02-29 13:14:15"), "{}", cells[11]);
    assert!(cells[12].contains("1 day") && cells[12].contains("02:00:00"), "{}", cells[12]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(cells[13]).unwrap(), serde_json::json!({"a": 1}));

    // NULLs survive both protocols.
    let row = client.query_one("SELECT i2, s, tz, c FROM all_types WHERE i4 IS NULL", &[]).await.expect("null row");
    assert_eq!(row.get::<_, Option<i16>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2), None);
    assert_eq!(row.get::<_, i64>(3), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn prepared_inserts_take_typed_parameters() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    client
        .batch_execute("CREATE STREAM p (k int, name text, v float8, at timestamptz); CREATE VIEW pv AS SELECT k, name, sum(v) AS total, max(at) AS last FROM p GROUP BY k, name")
        .await
        .expect("ddl");
    let insert = client.prepare("INSERT INTO p (k, name, v, at) VALUES ($1, $2, $3, $4)").await.expect("prepares");
    assert_eq!(insert.params(), &[Type::INT4, Type::TEXT, Type::FLOAT8, Type::TIMESTAMPTZ]);
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&chrono::Utc);
    for v in [1.5f64, 2.5] {
        let n = client.execute(&insert, &[&7i32, &"seven", &v, &at]).await.expect("inserts");
        assert_eq!(n, 1);
    }
    let lookup = client.prepare("SELECT total, last FROM pv WHERE k = $1 AND name = $2").await.expect("prepares");
    assert_eq!(lookup.params(), &[Type::INT4, Type::TEXT]);
    let row = client.query_one(&lookup, &[&7i32, &"seven"]).await.expect("finds");
    assert_eq!(row.get::<_, f64>(0), 4.0);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(1), at);
    server.shutdown().await;
}

/// Two columns PostgreSQL names alike (`count`, `count`) are allowed, and
/// a client sees both names as PostgreSQL sends them, in both protocols.
#[tokio::test]
async fn repeated_column_names_are_allowed_and_shown_as_postgresql_shows_them() {
    let server = common::start_server().await;
    let client = common::connect(&server).await;
    let sql = "SELECT count(*), count(x), stddev(x), stddev(x), 1 AS a, 2 AS a FROM (VALUES (1.0), (3.0)) AS v(x)";
    let stmt = client.prepare(sql).await.expect("prepares");
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "count", "stddev", "stddev", "a", "a"]);
    let row = client.query_one(&stmt, &[]).await.expect("runs");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(5)), (2, 2, 2));
    let messages = client.simple_query(sql).await.expect("runs");
    let Some(SimpleQueryMessage::Row(row)) = messages.iter().find(|m| matches!(m, SimpleQueryMessage::Row(_))) else {
        panic!("no row: {messages:?}");
    };
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "count", "stddev", "stddev", "a", "a"]);
    assert_eq!(row.get(2), row.get(3));
    server.shutdown().await;
}

/// DROP ... CASCADE, DROP ... IF EXISTS and CREATE TABLE IF NOT EXISTS
/// send PostgreSQL's NOTICEs, with its codes and DETAIL lines, and only
/// when the statement succeeds.
#[tokio::test]
async fn notices_as_postgres_sends_them() {
    let server = common::start_server().await;
    let (client, notices) = common::connect_with_notices(&server).await;
    let taken = || std::mem::take(&mut *notices.lock());
    client
        .batch_execute(
            "CREATE TABLE base (id int PRIMARY KEY, k text);
             CREATE VIEW v1 AS SELECT k, count(*) AS n FROM base GROUP BY k;
             CREATE VIEW v2 AS SELECT k FROM v1 WHERE n > 1;
             CREATE TABLE other (id int PRIMARY KEY);
             CREATE VIEW w1 AS SELECT count(*) FROM other",
        )
        .await
        .unwrap();
    // The connection task delivers notices beside the replies: wait for
    // the count expected (or five seconds).
    let settle = |count: usize| {
        let notices = notices.clone();
        async move {
            for _ in 0..100 {
                if notices.lock().len() >= count {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(taken(), Vec::<String>::new());
    client.batch_execute("DROP TABLE base CASCADE").await.unwrap();
    client.batch_execute("DROP TABLE other CASCADE").await.unwrap();
    client.batch_execute("DROP VIEW IF EXISTS nope").await.unwrap();
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)")
        .await
        .unwrap();
    assert!(client.batch_execute("DROP STREAM t CASCADE").await.is_err(), "t is a table");
    client.batch_execute("SELECT 1").await.unwrap();
    settle(4).await;
    assert_eq!(
        taken(),
        vec![
            "NOTICE 00000: drop cascades to 2 other objects\nDETAIL: drop cascades to view v1\ndrop cascades to view v2",
            "NOTICE 00000: drop cascades to view w1",
            "NOTICE 00000: view \"nope\" does not exist, skipping",
            "NOTICE 42P07: relation \"t\" already exists, skipping",
        ]
    );
}
