//! Tables beyond the `.slt` suite: parameters through the extended
//! protocol, concurrent writers (no lost update), and durability: a table
//! and the views over it come back exactly after a restart and after
//! `kill -9`, from the checkpoint plus the insert log.

mod common;

use common::process::EddyProcess;
use tokio_postgres::{Client, NoTls};

const SETUP: &str = "
    CREATE TABLE customers (id bigint PRIMARY KEY, plan text NOT NULL, seats int);
    CREATE TABLE tags (tag text);
    CREATE VIEW by_plan AS SELECT plan, count(*) AS n, sum(seats) AS seats, max(seats) AS biggest,
        string_agg(CAST(id AS text), ',' ORDER BY id) AS ids FROM customers GROUP BY plan;
    CREATE VIEW tag_counts AS SELECT tag, count(*) AS n FROM tags GROUP BY tag;
    CREATE VIEW busy_plans AS SELECT plan, n FROM by_plan WHERE n > 12;
    CREATE VIEW plan_summary AS SELECT count(*) AS plans, sum(n) AS customers FROM busy_plans;
    CREATE STREAM visits (customer bigint);
    CREATE VIEW visit_counts AS SELECT customer, count(*) AS n FROM visits GROUP BY customer;
    CREATE VIEW regulars AS SELECT customer FROM visit_counts WHERE n >= 2;
";

/// Every answer the tests compare, as text.
async fn answers(db: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in [
        "SELECT plan, n, seats, biggest, ids FROM by_plan ORDER BY plan",
        "SELECT tag, n FROM tag_counts ORDER BY tag",
        "SELECT id, plan, seats FROM customers ORDER BY id",
        "SELECT plan, n FROM busy_plans ORDER BY plan",
        "SELECT plans, customers FROM plan_summary",
        "SELECT customer FROM regulars ORDER BY customer",
    ] {
        for row in db.simple_query(q).await.expect(q) {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = row {
                out.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
            }
        }
    }
    out
}

/// Inserts, upserts, updates and deletes, some before a checkpoint and
/// some only in the insert log.
async fn churn(db: &Client) {
    for i in 0..40i64 {
        let plan = ["free", "pro", "team"][i as usize % 3];
        db.execute("INSERT INTO customers VALUES ($1, $2, $3)", &[&i, &plan, &(i as i32)]).await.expect("insert");
    }
    db.batch_execute(
        "INSERT INTO tags VALUES ('a'), ('a'), ('b'); INSERT INTO visits VALUES (1), (1), (2); CHECKPOINT",
    )
    .await
    .expect("checkpoint");
    db.batch_execute("INSERT INTO visits VALUES (2), (3)").await.expect("visits after the checkpoint");
    let moved = db.execute("UPDATE customers SET plan = 'pro', seats = seats * 2 WHERE id < $1", &[&10i64]).await;
    assert_eq!(moved.expect("update"), 10);
    let gone = db.execute("DELETE FROM customers WHERE id IN (30, 31, 32)", &[]).await.expect("delete");
    assert_eq!(gone, 3);
    let upserted = db
        .execute(
            "INSERT INTO customers VALUES ($1, 'team', 7), (100, 'free', 1) ON CONFLICT (id) DO UPDATE SET seats = customers.seats + excluded.seats",
            &[&5i64],
        )
        .await
        .expect("upsert");
    assert_eq!(upserted, 2);
    db.batch_execute("DELETE FROM tags WHERE tag = 'a' AND tag <> 'x'; INSERT INTO tags VALUES ('c')")
        .await
        .expect("tags");
}

async fn connect(port: u16) -> Client {
    let conn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let (db, connection) = tokio_postgres::connect(&conn, NoTls).await.expect("connect");
    tokio::spawn(connection);
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_their_views_survive_a_restart_and_kill_9() {
    let mut server = EddyProcess::start_with("tables-kill9", &["--checkpoint-interval-ms", "3600000"]);
    let db = connect(server.port).await;
    db.batch_execute(SETUP).await.expect("setup");
    churn(&db).await;
    let before = answers(&db).await;
    assert!(before.iter().any(|r| r == "5|pro|17"), "{before:?}");
    assert!(before.iter().any(|r| r == "b|1") && before.iter().any(|r| r == "c|1"), "{before:?}");
    assert!(!before.iter().any(|r| r.starts_with("a|")), "{before:?}");
    // The chains: pro has 19 customers after the churn, the other plans 10 or fewer;
    // customers 1 and 2 visited twice, 3 once.
    assert!(before.iter().any(|r| r == "pro|19") && before.iter().any(|r| r == "1|19"), "{before:?}");
    assert!(before.ends_with(&["1".to_string(), "2".to_string()]), "{before:?}");
    drop(db);

    server.terminate();
    tokio::task::block_in_place(|| server.restart());
    let db = connect(server.port).await;
    assert_eq!(answers(&db).await, before, "after a clean restart");
    db.batch_execute("UPDATE customers SET seats = 0 WHERE id = 100; INSERT INTO visits VALUES (3)")
        .await
        .expect("writes after restart");
    let before = answers(&db).await;
    assert!(before.ends_with(&["1".to_string(), "2".to_string(), "3".to_string()]), "{before:?}");
    drop(db);

    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let db = connect(server.port).await;
    assert_eq!(answers(&db).await, before, "after kill -9");
    // Constraints hold after recovery too.
    let e = db.execute("INSERT INTO customers VALUES (1, 'free', 1)", &[]).await.expect_err("duplicate");
    assert_eq!(e.code().map(|c| c.code()), Some("23505"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_row_lose_nothing() {
    let server = common::start_server().await;
    let db = common::connect(&server).await;
    db.batch_execute(
        "CREATE TABLE counter (id int PRIMARY KEY, n bigint); INSERT INTO counter VALUES (1, 0);
        CREATE VIEW total AS SELECT sum(n) AS n FROM counter",
    )
    .await
    .expect("setup");
    let mut writers = Vec::new();
    for _ in 0..8 {
        let client = common::connect(&server).await;
        writers.push(tokio::spawn(async move {
            for _ in 0..25 {
                let n = client.execute("UPDATE counter SET n = n + 1 WHERE id = $1", &[&1i32]).await.expect("update");
                assert_eq!(n, 1);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let n: i64 = db.query_one("SELECT n FROM counter WHERE id = 1", &[]).await.expect("read").get(0);
    assert_eq!(n, 200, "every increment counted once");
    let total: i64 = db.query_one("SELECT n::bigint FROM total", &[]).await.expect("view").get(0);
    assert_eq!(total, 200, "the view follows every update");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_into_a_table_is_all_or_nothing_and_reaches_its_views() {
    let server = common::start_server().await;
    let db = common::connect(&server).await;
    db.batch_execute("CREATE TABLE items (id int PRIMARY KEY, kind text); CREATE VIEW kinds AS SELECT kind, count(*) AS n FROM items GROUP BY kind")
        .await
        .expect("setup");
    let copy = |data: &'static [u8]| {
        let db = &db;
        async move {
            let sink = db.copy_in("COPY items FROM STDIN WITH (FORMAT csv)").await?;
            futures::pin_mut!(sink);
            futures::SinkExt::send(&mut sink, bytes::Bytes::from_static(data)).await?;
            sink.finish().await
        }
    };
    assert_eq!(copy(b"1,a\n2,b\n3,a\n").await.expect("copy"), 3);
    let e = copy(b"4,a\n1,b\n").await.expect_err("a taken key");
    assert_eq!(e.code().map(|c| c.code()), Some("23505"));
    let rows = db.simple_query("SELECT kind, n FROM kinds ORDER BY kind").await.expect("read");
    let got: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(format!("{}={}", r.get(0)?, r.get(1)?)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec!["a=2", "b=1"], "the failed COPY changed nothing");
    server.shutdown().await;
}

/// The id a prepared `INSERT ... RETURNING id` gives a new row, as Laravel's
/// `insertGetId` asks for it.
async fn insert_get_id(db: &Client, name: &str) -> i64 {
    let row = db.query_one("INSERT INTO people (name) VALUES ($1) RETURNING id", &[&name]).await.expect("insert");
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_numbers_are_never_given_twice_across_restarts_and_kill_9() {
    let mut server = EddyProcess::start_with("tables-serial", &["--checkpoint-interval-ms", "3600000"]);
    let db = connect(server.port).await;
    db.batch_execute("CREATE TABLE people (id bigserial PRIMARY KEY, name text)").await.expect("create");
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(insert_get_id(&db, name).await, i as i64 + 1);
    }
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    // Numbers 4 and 5 are only in the insert log, and their rows are gone.
    assert_eq!(insert_get_id(&db, "d").await, 4);
    assert_eq!(insert_get_id(&db, "e").await, 5);
    db.batch_execute("DELETE FROM people WHERE id >= 4").await.expect("delete");
    drop(db);

    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let db = connect(server.port).await;
    assert_eq!(insert_get_id(&db, "f").await, 6, "recovery replays the log past 4 and 5");
    // Number 7 is drawn and deleted before a checkpoint: only the
    // checkpoint's saved sequence remembers it.
    assert_eq!(insert_get_id(&db, "g").await, 7);
    db.batch_execute("DELETE FROM people WHERE id = 7; CHECKPOINT").await.expect("delete and checkpoint");
    drop(db);

    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let db = connect(server.port).await;
    assert_eq!(insert_get_id(&db, "h").await, 8, "the checkpoint keeps the sequence");
    let rows = db.query("SELECT id, name FROM people ORDER BY id", &[]).await.expect("read");
    let rows: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [(1, "a"), (2, "b"), (3, "c"), (6, "f"), (8, "h")].map(|(i, n)| (i, n.to_string()));
    assert_eq!(rows, expected);
}
