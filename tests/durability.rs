//! The data directory: restarts, damaged files, a full disk, dropped
//! relations, `synchronous_commit`, and the lock. Servers run in process on
//! a temporary directory, with checkpoints only when a test asks (`CHECKPOINT`,
//! DDL, shutdown), so each test knows what is in the log and what is in a
//! checkpoint. `kill -9` is in `tests/crash.rs` and below with the binary.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::EddyProcess;
use eddy::{Config, Server};
use tokio_postgres::Client;

const SETUP: &str = "
    CREATE STREAM s (k text NOT NULL, v bigint, doc json);
    CREATE VIEW by_k AS SELECT k, count(*) AS n, sum(v) AS total, avg(v) AS mean, min(v) AS lo, max(v) AS hi,
        count(DISTINCT v) AS distinct_v, string_agg(CAST(v AS text), ',') AS vs FROM s GROUP BY k;
    CREATE VIEW everything AS SELECT count(*) AS n, sum(v) AS total FROM s;
";
const READ_BY_K: &str = "SELECT k, n, total, mean, lo, hi, distinct_v, length(vs) FROM by_k ORDER BY k";

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("durability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(dir: &Path) -> Config {
    Config { data_dir: Some(dir.to_path_buf()), checkpoint_interval: Duration::from_secs(3600), ..Config::default() }
}

async fn start(dir: &Path) -> Server {
    common::start_server_with(config(dir)).await
}

async fn try_start(dir: &Path) -> std::io::Result<Server> {
    let mut c = config(dir);
    c.listen = "127.0.0.1:0".parse().expect("addr");
    Server::start(c).await
}

/// Every answer the tests compare, as text.
async fn answers(db: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in [READ_BY_K, "SELECT n, total FROM everything"] {
        for row in db.simple_query(q).await.expect(q) {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = row {
                out.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
            }
        }
    }
    out
}

async fn insert(db: &Client, from: i64, to: i64) {
    let values: Vec<String> = (from..to).map(|i| format!("('k{}', {i}, '{{\"i\": {i}}}')", i % 7)).collect();
    db.batch_execute(&format!("INSERT INTO s VALUES {}", values.join(","))).await.expect("insert");
}

/// Loads a checkpoint, then writes more rows that only the insert log holds.
async fn populate(server: &Server) -> Vec<String> {
    let db = common::connect(server).await;
    db.batch_execute(SETUP).await.expect("setup");
    insert(&db, 0, 500).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    insert(&db, 500, 700).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    insert(&db, 700, 800).await;
    answers(&db).await
}

fn newest(dir: &Path, sub: &str, suffix: &str) -> PathBuf {
    let mut files: Vec<PathBuf> =
        walk(&dir.join(sub)).into_iter().filter(|p| p.to_string_lossy().ends_with(suffix)).collect();
    files.sort();
    files.pop().unwrap_or_else(|| panic!("no {suffix} file under {}", dir.join(sub).display()))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

fn flip_byte(path: &Path, at_from_end: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = bytes.len() - at_from_end;
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test]
async fn views_catalog_and_settings_survive_a_restart() {
    let dir = temp_dir("restart");
    let server = start(&dir).await;
    let before = populate(&server).await;
    let db = common::connect(&server).await;
    db.batch_execute("SELECT pipeline_kafka.add_broker('127.0.0.1:1')").await.expect("broker");
    server.shutdown().await;

    let server = start(&dir).await;
    let db = common::connect(&server).await;
    assert_eq!(answers(&db).await, before);
    let brokers = db.query_one("SELECT count(*) FROM pipeline_kafka.brokers", &[]).await.expect("brokers");
    assert_eq!(brokers.get::<_, i64>(0), 1);
    // The stream keeps its NOT NULL column and json check.
    let e = db.batch_execute("INSERT INTO s (v) VALUES (1)").await.expect_err("NOT NULL");
    assert_eq!(e.code().map(|c| c.code()), Some("23502"));
    let e = db.batch_execute("INSERT INTO s VALUES ('a', 1, '{')").await.expect_err("json");
    assert_eq!(e.code().map(|c| c.code()), Some("22P02"));
    // And the views go on counting.
    insert(&db, 800, 801).await;
    let n = db.query_one("SELECT n FROM everything", &[]).await.expect("n");
    assert_eq!(n.get::<_, i64>(0), 801);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_insert() {
    let mut server = EddyProcess::start_with("kill9", &["--checkpoint-interval-ms", "3600000"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(SETUP).await.expect("setup");
    insert(&db, 0, 300).await;
    let sink = db.copy_in("COPY s FROM STDIN").await.expect("copy");
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from_static(b"k1\t5\t{}\nk9\t6\t\\N\n")).await.expect("send");
    sink.finish().await.expect("finish");
    let before = answers(&db).await;
    assert!(before.iter().any(|r| r.starts_with("k9|1|6")), "{before:?}");
    drop(db);
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    assert_eq!(answers(&db).await, before);
    assert!(server.log().contains("replayed=2"), "the rows came back from the insert log:\n{}", server.log());
}

#[tokio::test]
async fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let dir = temp_dir("fallback");
    let server = start(&dir).await;
    let before = populate(&server).await;
    drop(server); // no shutdown checkpoint: the newest is the last CHECKPOINT
    tokio::time::sleep(Duration::from_millis(200)).await;
    flip_byte(&newest(&dir, "state", ".arrow"), 100);

    let server = start(&dir).await;
    let db = common::connect(&server).await;
    assert_eq!(answers(&db).await, before, "the older checkpoint plus the log give the same answers");
    server.shutdown().await;
}

/// DDL is logged before it is visible: falling back to an older checkpoint
/// replays a view created after it from the log (before, the view was
/// silently gone), and rows written to a stream created after it find the
/// stream (before, recovery refused to start).
#[tokio::test]
async fn acknowledged_ddl_survives_a_fallback_to_an_older_checkpoint() {
    let dir = temp_dir("ddl-fallback");
    let server = start(&dir).await;
    let before = populate(&server).await;
    let db = common::connect(&server).await;
    db.batch_execute("DROP VIEW everything").await.expect("drop view");
    db.batch_execute("CREATE STREAM t (x int)").await.expect("create stream"); // the older checkpoint kept
    db.batch_execute("CREATE VIEW tv AS SELECT count(*) AS n, sum(x) AS total FROM t").await.expect("create view");
    db.batch_execute("INSERT INTO t VALUES (1), (2), (3)").await.expect("insert");
    drop(db);
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    manifests.sort();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    flip_byte(&manifests[1], 10); // recovery falls back to the checkpoint taken before tv existed

    let server = start(&dir).await;
    let db = common::connect(&server).await;
    let row = db.query_one("SELECT n, total FROM tv", &[]).await.expect("tv came back from the log");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (3, 6));
    let err = db.query_one("SELECT n FROM everything", &[]).await.expect_err("still dropped");
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
    let rows = db.query("SELECT k, n, total FROM by_k ORDER BY k", &[]).await.expect("by_k");
    assert_eq!(rows.len(), before.len() - 1, "by_k's groups (before also held everything's one row)");
    // And once more from the checkpoint recovery just took.
    server.shutdown().await;
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    assert_eq!(db.query_one("SELECT n FROM tv", &[]).await.expect("tv").get::<_, i64>(0), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn no_good_checkpoint_refuses_to_start_and_says_what_to_do() {
    let dir = temp_dir("refuse");
    let server = start(&dir).await;
    populate(&server).await;
    server.shutdown().await;
    for (_, manifest) in std::fs::read_dir(&dir).expect("dir").flatten().map(|e| ((), e.path())) {
        if manifest.to_string_lossy().ends_with(".json") {
            let len = std::fs::metadata(&manifest).expect("meta").len();
            let file = std::fs::OpenOptions::new().write(true).open(&manifest).expect("open");
            file.set_len(len / 2).expect("truncate");
        }
    }
    let err = try_start(&dir).await.expect_err("must refuse").to_string();
    assert!(err.contains("checkpoint-") && err.contains("damaged"), "names the file: {err}");
    assert!(err.contains("move the data directory aside"), "says what to do: {err}");
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_a_damaged_log_refuses() {
    let dir = temp_dir("torn");
    let server = start(&dir).await;
    let before = populate(&server).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let segment = newest(&dir, "wal", ".log");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 2, 3]); // a record cut short by a crash
    std::fs::write(&segment, &bytes).expect("write");

    let server = start(&dir).await;
    let db = common::connect(&server).await;
    assert_eq!(answers(&db).await, before, "the torn record is dropped, the rest replayed");
    insert(&db, 800, 850).await;
    insert(&db, 850, 900).await;
    drop(db);
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Damage inside a record that has another after it: not a torn tail.
    let segment = newest(&dir, "wal", ".log");
    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[20] ^= 0x5a; // inside the first record's payload
    std::fs::write(&segment, bytes).expect("write");
    let err = try_start(&dir).await.expect_err("a damaged log must not be replayed").to_string();
    assert!(err.contains("damaged") && err.contains(".log"), "names the segment: {err}");
}

/// Where each record of an insert log segment starts (after the 8-byte
/// magic; a record is a 20-byte header, its length first, then the payload).
fn record_starts(segment: &[u8]) -> Vec<usize> {
    let (mut at, mut out) = (8, Vec::new());
    while at + 20 <= segment.len() {
        out.push(at);
        at += 20 + u32::from_le_bytes(segment[at..at + 4].try_into().expect("4 bytes")) as usize;
    }
    out
}

/// Damage at the end of the log is not a torn write: a flipped high byte in
/// a middle record's length, a flipped byte in the last record, and a
/// deleted last segment each lost acknowledged rows silently before; now
/// each refuses to start, naming the file.
#[tokio::test]
async fn damage_at_the_end_of_the_log_refuses_to_start() {
    let dir = temp_dir("log-end");
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    db.batch_execute(SETUP).await.expect("setup");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    for i in 0..100 {
        insert(&db, i, i + 1).await; // 100 acknowledged statements, only in the log
    }
    drop(db);
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let segment = newest(&dir, "wal", ".log");
    let good = std::fs::read(&segment).expect("read");
    let starts = record_starts(&good);
    assert_eq!(starts.len(), 100);

    let mut length_flipped = good.clone();
    length_flipped[starts[50] + 3] ^= 0x01;
    let mut last_flipped = good.clone();
    let last = good.len() - 3;
    last_flipped[last] ^= 0x10;
    for (what, bytes) in [
        ("a middle record's length", Some(length_flipped)),
        ("the last record", Some(last_flipped)),
        ("a deleted last segment", None),
    ] {
        match &bytes {
            Some(b) => std::fs::write(&segment, b).expect("write"),
            None => std::fs::remove_file(&segment).expect("remove"),
        }
        let err = try_start(&dir).await.expect_err(what).to_string();
        let name = segment.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        assert!(err.contains("damaged") && err.contains(&name), "{what}: {err}");
        std::fs::write(&segment, &good).expect("restore the segment");
    }
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    let n: i64 = db.query_one("SELECT n FROM everything", &[]).await.expect("read").get(0);
    assert_eq!(n, 100, "the intact log replays every acknowledged row");
}

#[tokio::test]
async fn dropping_a_view_or_stream_frees_its_state_on_disk() {
    let dir = temp_dir("drop");
    let server = start(&dir).await;
    populate(&server).await;
    let db = common::connect(&server).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let views = |dir: &Path| std::fs::read_dir(dir.join("state")).expect("state").count();
    assert_eq!(views(&dir), 2);
    db.batch_execute("DROP VIEW everything").await.expect("drop view");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    insert(&db, 0, 1).await;
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    assert_eq!(views(&dir), 1, "the dropped view's state is gone once no kept checkpoint needs it");
    db.batch_execute("DROP STREAM s CASCADE").await.expect("drop stream");
    db.batch_execute("CREATE STREAM t (x int)").await.expect("another DDL checkpoint");
    assert_eq!(views(&dir), 0);
    server.shutdown().await;
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    let e = db.batch_execute("SELECT * FROM by_k").await.expect_err("dropped");
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
    server.shutdown().await;
}

#[tokio::test]
async fn synchronous_commit_off_still_logs_and_bad_values_are_refused() {
    let dir = temp_dir("async");
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    db.batch_execute(SETUP).await.expect("setup");
    let e = db.batch_execute("SET synchronous_commit = maybe").await.expect_err("bad value");
    assert_eq!(e.code().map(|c| c.code()), Some("22023"));
    db.batch_execute("SET synchronous_commit = off").await.expect("set");
    insert(&db, 0, 100).await;
    let before = answers(&db).await;
    drop(db);
    drop(server);
    // Unsynced appends reach the disk within the log's idle sync (200 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    assert_eq!(answers(&db).await, before);
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let dir = temp_dir("lock");
    let server = start(&dir).await;
    let err = try_start(&dir).await.expect_err("locked").to_string();
    assert!(err.contains("in use by another eddy process"), "{err}");
    server.shutdown().await;
}

/// A small tmpfs fills up: inserts fail with 53100, nothing acknowledged is
/// lost, nothing is damaged, and inserts work again once there is room.
/// Mounting needs root, which the test machines have.
#[tokio::test]
async fn a_full_disk_refuses_inserts_and_recovers_when_space_returns() {
    let dir = temp_dir("full");
    let mount = |size: &str, remount: bool| {
        let options = if remount { format!("remount,size={size}") } else { format!("size={size}") };
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs failed: this test needs root (mount -t tmpfs)");
    };
    mount("3m", false);
    let _unmount = Unmount(dir.clone());
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    db.batch_execute(
        "CREATE STREAM s (k text, v bigint); CREATE VIEW c AS SELECT count(*) AS n, sum(v) AS total FROM s",
    )
    .await
    .expect("setup");
    let big = "x".repeat(100_000);
    let mut acknowledged = 0i64;
    let mut full = None;
    for i in 0..200 {
        match db.execute(&format!("INSERT INTO s VALUES ('{big}', {i})"), &[]).await {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the disk filled up");
    assert_eq!(e.code().map(|c| c.code()), Some("53100"), "{e:?}");
    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(message.contains("no space left on device") && message.contains("free disk space"), "{message}");
    let row = db.query_one("SELECT n FROM c", &[]).await.expect("reads still work");
    assert_eq!(row.get::<_, i64>(0), acknowledged, "the refused insert was not applied");
    mount("64m", true);
    db.execute("INSERT INTO s VALUES ('after', 1000)", &[]).await.expect("space is back");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint with space");
    server.shutdown().await;
    let server = start(&dir).await;
    let db = common::connect(&server).await;
    let row = db.query_one("SELECT n FROM c", &[]).await.expect("count");
    assert_eq!(row.get::<_, i64>(0), acknowledged + 1);
    server.shutdown().await;
}

/// Unmounts the test's tmpfs, also when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A derived stream keeps nothing, and the views over it are exact after a
/// `kill -9`: what the checkpoint holds, plus the log's rows replayed
/// through the transform, its lookup join included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_over_a_derived_stream_are_exact_after_kill_9() {
    let mut server = EddyProcess::start_with("derived-kill9", &["--checkpoint-interval-ms", "3600000"]);
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.port);
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE STREAM clicks (url text, user_id bigint, ms bigint);
         CREATE TABLE users (id bigint PRIMARY KEY, tier text);
         INSERT INTO users VALUES (1, 'gold'), (2, 'free');
         CREATE STREAM slow AS SELECT c.url, u.tier, c.ms FROM clicks c JOIN users u ON c.user_id = u.id WHERE c.ms > 100;
         CREATE VIEW slow_by_tier AS SELECT tier, count(*) AS n, sum(ms) AS ms FROM slow GROUP BY tier;
         CREATE VIEW recent WITH (sw = '1 hour') AS SELECT count(*) AS n FROM slow;
         CREATE VIEW tier_changes AS SELECT (new).tier AS tier, count(*) AS changes, max((new).n) AS n
             FROM output_of('slow_by_tier') GROUP BY (new).tier;",
    )
    .await
    .expect("setup");
    let clicks = |from: i64, to: i64| {
        let values: Vec<String> =
            (from..to).map(|i| format!("('/p{}', {}, {})", i % 5, 1 + i % 3, i * 7 % 300)).collect();
        format!("INSERT INTO clicks VALUES {}", values.join(","))
    };
    db.batch_execute(&clicks(0, 400)).await.expect("insert");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    db.batch_execute(&clicks(400, 700)).await.expect("insert");
    db.batch_execute("UPDATE users SET tier = 'pro' WHERE id = 2").await.expect("update");
    db.batch_execute(&clicks(700, 900)).await.expect("insert");
    let read = "SELECT tier || ':' || n || ':' || ms FROM slow_by_tier ORDER BY tier";
    let rows = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
    let before = rows(db.query(read, &[]).await.expect("read"));
    let recent: i64 = db.query_one("SELECT n FROM recent", &[]).await.expect("recent").get(0);
    // Computed here: user 3 has no row in users, so its clicks never pass.
    let slow: Vec<i64> = (0..900).filter(|i| i * 7 % 300 > 100 && 1 + i % 3 != 3).collect();
    assert_eq!(recent, slow.len() as i64);
    // Each click joined with the table as it was when it arrived.
    let tier = |i: i64| match (1 + i % 3, i < 700) {
        (1, _) => "gold",
        (_, true) => "free",
        _ => "pro",
    };
    let mut expected = std::collections::BTreeMap::<&str, (i64, i64)>::new();
    for &i in &slow {
        let e = expected.entry(tier(i)).or_default();
        e.0 += 1;
        e.1 += i * 7 % 300;
    }
    let expected: Vec<String> = expected.iter().map(|(t, (n, ms))| format!("{t}:{n}:{ms}")).collect();
    assert_eq!(before, expected);
    let changes = "SELECT tier || ':' || changes || ':' || n FROM tier_changes ORDER BY tier";
    let changes_before = rows(db.query(changes, &[]).await.expect("changes"));
    // Each of the three INSERTs changed gold's row; free's only before the UPDATE, pro's after.
    assert_eq!(
        changes_before.iter().map(|r| r.split(':').nth(1).unwrap_or_default()).collect::<Vec<_>>(),
        ["2", "3", "1"]
    );
    drop(db);
    server.kill9();
    tokio::task::block_in_place(|| server.restart());
    let (db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(connection);
    assert_eq!(rows(db.query(read, &[]).await.expect("read")), before);
    let again: i64 = db.query_one("SELECT n FROM recent", &[]).await.expect("recent").get(0);
    assert_eq!(again, recent);
    assert_eq!(rows(db.query(changes, &[]).await.expect("changes")), changes_before);
    let e = db.batch_execute("SELECT * FROM slow").await.expect_err("a derived stream is not readable");
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"));
}
