//! Transaction blocks across sessions and crashes (the single-session rules
//! are in sql/transactions.slt): nobody sees a block's writes before its
//! COMMIT, a second writer of the same table waits for the block to end
//! and loses nothing, two blocks that wait for each other's tables end in
//! a deadlock error for one of them, COPY in a block waits for COMMIT, and
//! after `kill -9` a committed block is all there and an open one is not.

mod common;

use std::time::Duration;

use common::process::EddyProcess;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn connect(port: u16) -> Client {
    let conn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let (db, connection) = tokio_postgres::connect(&conn, NoTls).await.expect("connect");
    tokio::spawn(connection);
    db
}

/// The rows of `sql`, each as `a|b|c`.
async fn rows(db: &Client, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for message in db.simple_query(sql).await.expect(sql) {
        if let SimpleQueryMessage::Row(r) = message {
            out.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out
}

const SETUP: &str = "
    CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL);
    CREATE TABLE audit (what text);
    CREATE STREAM orders (sku text, qty int);
    CREATE VIEW ordered AS SELECT sku, sum(qty) AS qty FROM orders GROUP BY sku;
    CREATE VIEW on_hand AS SELECT sum(qty) AS qty, count(*) AS skus FROM stock;
    INSERT INTO stock VALUES ('apple', 10), ('pear', 5);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_invisible_until_commit_and_a_second_writer_waits_for_it() {
    let server = common::start_server().await;
    let port = server.local_addr().port();
    let (a, b) = (connect(port).await, connect(port).await);
    a.batch_execute(SETUP).await.expect("setup");
    a.batch_execute(
        "BEGIN; UPDATE stock SET qty = qty - 3 WHERE sku = 'apple'; INSERT INTO orders VALUES ('apple', 3); \
         INSERT INTO audit VALUES ('sold 3')",
    )
    .await
    .expect("the block's writes");
    assert_eq!(rows(&a, "SELECT qty FROM stock WHERE sku = 'apple'").await, ["7"], "the block reads its writes");
    assert_eq!(rows(&b, "SELECT qty FROM stock WHERE sku = 'apple'").await, ["10"], "others do not");
    assert_eq!(rows(&b, "SELECT count(*) FROM audit").await, ["0"]);
    assert_eq!(rows(&b, "SELECT count(*) FROM ordered").await, ["0"]);

    // b's update of the same table waits for a's block, then applies on top
    // of it: no update is lost.
    let waiting = tokio::spawn(async move {
        b.execute("UPDATE stock SET qty = qty - 1 WHERE sku = 'apple'", &[]).await.expect("b's update");
        b
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "b waits while a's block holds the table");
    a.batch_execute("COMMIT").await.expect("commit");
    let b = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("b goes on").expect("b");
    assert_eq!(rows(&b, "SELECT sku, qty FROM stock ORDER BY sku").await, ["apple|6", "pear|5"]);
    assert_eq!(rows(&b, "SELECT sku, qty FROM ordered").await, ["apple|3"]);
    assert_eq!(rows(&b, "SELECT qty, skus FROM on_hand").await, ["11|2"]);
    assert_eq!(rows(&b, "SELECT what FROM audit").await, ["sold 3"]);

    // A dropped connection rolls its block back and lets the next writer in.
    a.batch_execute("BEGIN; UPDATE stock SET qty = 0").await.expect("a second block");
    drop(a);
    tokio::time::timeout(Duration::from_secs(10), b.execute("UPDATE stock SET qty = qty + 1", &[]))
        .await
        .expect("the claim went with the connection")
        .expect("update");
    assert_eq!(rows(&b, "SELECT sku, qty FROM stock ORDER BY sku").await, ["apple|7", "pear|6"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_that_wait_for_each_other_end_in_a_deadlock_error_for_one() {
    let server = common::start_server().await;
    let port = server.local_addr().port();
    let (a, b) = (connect(port).await, connect(port).await);
    a.batch_execute(SETUP).await.expect("setup");
    a.batch_execute("BEGIN; UPDATE stock SET qty = 1 WHERE sku = 'apple'").await.expect("a holds stock");
    b.batch_execute("BEGIN; INSERT INTO audit VALUES ('b')").await.expect("b holds audit");
    let a_waits = tokio::spawn(async move {
        let outcome = a.batch_execute("INSERT INTO audit VALUES ('a')").await;
        (a, outcome)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_outcome = b.batch_execute("UPDATE stock SET qty = 2 WHERE sku = 'pear'").await;
    // b closed the cycle, so b finds it; a goes on once b's block ends.
    let e = b_outcome.expect_err("b closes the cycle");
    assert_eq!(e.code().map(|c| c.code()), Some("40P01"), "{e}");
    b.batch_execute("ROLLBACK").await.expect("b rolls back");
    let (a, a_outcome) = tokio::time::timeout(Duration::from_secs(10), a_waits).await.expect("a goes on").expect("a");
    a_outcome.expect("a's insert");
    a.batch_execute("COMMIT").await.expect("a commits");
    assert_eq!(rows(&b, "SELECT sku, qty FROM stock ORDER BY sku").await, ["apple|1", "pear|5"]);
    assert_eq!(rows(&b, "SELECT what FROM audit").await, ["a"]);
    server.shutdown().await;
}

async fn copy(db: &Client, sql: &str, data: &'static [u8]) -> u64 {
    let sink = db.copy_in(sql).await.expect("copy starts");
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from_static(data)).await.expect("copy data");
    sink.finish().await.expect("copy ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_block_survives_kill_9_whole_and_an_open_one_leaves_nothing() {
    let mut server = EddyProcess::start_with("transactions-kill9", &["--checkpoint-interval-ms", "3600000"]);
    let db = connect(server.port).await;
    db.batch_execute(SETUP).await.expect("setup");
    db.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(copy(&db, "COPY orders FROM STDIN", b"pear\t2\napple\t1\n").await, 2);
    assert_eq!(copy(&db, "COPY audit FROM STDIN", b"copied\n").await, 1);
    db.batch_execute("UPDATE stock SET qty = qty - 2 WHERE sku = 'pear'; DELETE FROM stock WHERE sku = 'apple'")
        .await
        .expect("block writes");
    assert_eq!(rows(&db, "SELECT count(*) FROM ordered").await, ["0"], "COPY in a block waits for COMMIT");
    db.batch_execute("COMMIT").await.expect("commit");
    let committed = vec![
        rows(&db, "SELECT sku, qty FROM stock ORDER BY sku").await,
        rows(&db, "SELECT sku, qty FROM ordered ORDER BY sku").await,
        rows(&db, "SELECT qty, skus FROM on_hand").await,
        rows(&db, "SELECT what FROM audit").await,
    ];
    assert_eq!(committed[0], ["pear|3"]);
    assert_eq!(committed[1], ["apple|1", "pear|2"]);
    // An open block at the crash: none of it comes back.
    db.batch_execute("BEGIN; INSERT INTO orders VALUES ('plum', 9); INSERT INTO stock VALUES ('plum', 9)")
        .await
        .expect("open block");
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let db = connect(server.port).await;
    let recovered = vec![
        rows(&db, "SELECT sku, qty FROM stock ORDER BY sku").await,
        rows(&db, "SELECT sku, qty FROM ordered ORDER BY sku").await,
        rows(&db, "SELECT qty, skus FROM on_hand").await,
        rows(&db, "SELECT what FROM audit").await,
    ];
    assert_eq!(recovered, committed, "after kill -9");
}
