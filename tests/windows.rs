//! Windows over time, end to end: the "top pages over the last 30 minutes"
//! example (`sql/examples/top_pages.sql`) as the manual clock advances, and
//! window state, options and watermarks across a restart.

mod common;

use std::time::Duration;

use eddy::Config;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The ranking query of the example.
const TOP: &str = "SELECT page, views, visitors FROM page_views_30m ORDER BY views DESC, page LIMIT 3";

/// 2026-01-01 00:00:00+00.
const START: i64 = 1_767_225_600_000_000;

async fn rows(db: &Client, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in db.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")) {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out
}

async fn advance(db: &Client, interval: &str) {
    db.batch_execute(&format!("SELECT eddy_advance_clock(interval '{interval}')")).await.expect("advance");
}

async fn views(db: &Client, page: &str, users: std::ops::Range<i64>) {
    let values: Vec<String> = users.map(|u| format!("('{page}', {u})")).collect();
    db.batch_execute(&format!("INSERT INTO page_views VALUES {}", values.join(","))).await.expect("insert");
}

#[tokio::test]
async fn top_pages_over_the_last_30_minutes() {
    let server = common::start_server_with(Config { manual_clock: Some(START), ..Config::default() }).await;
    let db = common::connect(&server).await;
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/examples/top_pages.sql")).expect("example");
    db.batch_execute(&example).await.expect("the example runs");

    // 00:00: /home is hot.
    views(&db, "/home", 0..50).await;
    views(&db, "/pricing", 0..10).await;
    assert_eq!(rows(&db, TOP).await, ["/home|50|50", "/pricing|10|10"]);

    // 00:20: /docs takes over, with repeat visitors.
    advance(&db, "20 minutes").await;
    views(&db, "/docs", 0..40).await;
    views(&db, "/docs", 0..40).await;
    views(&db, "/pricing", 100..130).await;
    views(&db, "/blog", 0..5).await;
    assert_eq!(rows(&db, TOP).await, ["/docs|80|40", "/home|50|50", "/pricing|40|40"]);

    // 00:30: the 00:00 views leave the window, with no new event.
    advance(&db, "10 minutes").await;
    assert_eq!(rows(&db, TOP).await, ["/docs|80|40", "/pricing|30|30", "/blog|5|5"]);

    // 00:50: everything has left.
    advance(&db, "20 minutes").await;
    assert!(rows(&db, TOP).await.is_empty());
    assert_eq!(rows(&db, "SELECT groups FROM pipelinedb.views WHERE name = 'page_views_30m'").await, ["0"]);
    server.shutdown().await;
}

/// A fresh data directory named `name`, and a config on it with the manual
/// clock and checkpoints only when asked for.
fn durable(name: &str) -> (std::path::PathBuf, Config) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        data_dir: Some(dir.clone()),
        checkpoint_interval: Duration::from_secs(3600),
        manual_clock: Some(START),
        ..Config::default()
    };
    (dir, config)
}

#[tokio::test]
async fn window_state_survives_a_restart() {
    let (dir, config) = durable("windows");
    let server = common::start_server_with(config.clone()).await;
    let db = common::connect(&server).await;
    db.batch_execute(
        "CREATE STREAM ev (k text, ts timestamptz) WITH (timestamp = 'ts', lateness = '1 minute', idle_timeout = '1 hour');
         CREATE VIEW recent WITH (sw = '10 minutes') AS SELECT k, count(*) AS n FROM ev GROUP BY k;
         CREATE VIEW per_minute WITH (ttl = '1 hour', ttl_column = 'm') AS
             SELECT minute(ts) AS m, count(*) AS n FROM ev GROUP BY m;
         CREATE VIEW sessions AS SELECT k, count(*) AS n FROM session(ev, ts, interval '2 minutes') GROUP BY k;
         INSERT INTO ev VALUES ('a', '2026-01-01 00:00:00+00'), ('b', '2026-01-01 00:05:00+00');
         CHECKPOINT;
         INSERT INTO ev VALUES ('a', '2026-01-01 00:03:00+00'), ('a', '2026-01-01 00:06:00+00');",
    )
    .await
    .expect("setup");
    let reads = [
        "SELECT k, n FROM recent ORDER BY k",
        "SELECT m, n FROM per_minute ORDER BY m",
        "SELECT name, window, ttl, watermark FROM pipelinedb.views ORDER BY name",
        "SELECT watermark, late_rows FROM pipelinedb.streams",
        "SELECT * FROM sessions ORDER BY k, window_start",
    ];
    let mut before = Vec::new();
    for q in reads {
        before.push(rows(&db, q).await);
    }
    assert_eq!(before[0], ["a|3", "b|1"]);
    assert_eq!(before[3], ["2026-01-01 00:05:00+00|1"], "00:03 was behind the 00:04 watermark");
    drop(db);
    server.shutdown().await;

    let server = common::start_server_with(config).await;
    let db = common::connect(&server).await;
    let mut after = Vec::new();
    for q in reads {
        after.push(rows(&db, q).await);
    }
    assert_eq!(after, before, "window state, options and the watermark come back");
    // A late event is still late after the restart: the watermark came back.
    db.batch_execute("INSERT INTO ev VALUES ('c', '2026-01-01 00:01:00+00')").await.expect("insert");
    assert_eq!(rows(&db, "SELECT late_rows FROM pipelinedb.streams").await, ["2"]);
    // The session index is rebuilt from the state: 00:08 bridges a's
    // 00:06 session and a new 00:10 one.
    db.batch_execute("INSERT INTO ev VALUES ('a', '2026-01-01 00:10:00+00'), ('a', '2026-01-01 00:08:00+00')")
        .await
        .expect("insert");
    assert_eq!(
        rows(&db, "SELECT * FROM sessions WHERE k = 'a' ORDER BY window_start").await,
        ["2026-01-01 00:00:00+00|2026-01-01 00:00:00+00|a|1", "2026-01-01 00:06:00+00|2026-01-01 00:10:00+00|a|3"]
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reading or checkpointing a sliding window used to empty the state of
/// aggregates whose DataFusion state hands its contents over: a read gave
/// 2, the next 0, and the checkpoint persisted the 0. Now: read twice,
/// checkpoint, restart, read again, always the same.
#[tokio::test]
async fn sliding_windows_keep_their_state_across_reads_checkpoints_and_restarts() {
    let (dir, config) = durable("windows-intact");
    let server = common::start_server_with(config.clone()).await;
    let db = common::connect(&server).await;
    db.batch_execute(
        "CREATE STREAM visits (page text, visitor text, ms float8);
         CREATE VIEW recent WITH (sw = '10 minutes') AS
             SELECT page, count(DISTINCT visitor) AS visitors, median(ms) AS med,
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p90, string_agg(visitor, ',') AS who
             FROM visits GROUP BY page;
         INSERT INTO visits VALUES ('/a', 'ann', 10), ('/a', 'bob', 30), ('/a', 'ann', 20), ('/b', 'cy', 5);",
    )
    .await
    .expect("setup");
    let read = "SELECT page, visitors, med, p90, length(who) FROM recent ORDER BY page";
    let first = rows(&db, read).await;
    assert_eq!(first, ["/a|2|20|28|11", "/b|1|5|5|2"]);
    assert_eq!(rows(&db, read).await, first, "a second read");
    db.batch_execute("CHECKPOINT").await.expect("checkpoint");
    assert_eq!(rows(&db, read).await, first, "after a checkpoint");
    drop(db);
    server.shutdown().await;
    let server = common::start_server_with(config).await;
    let db = common::connect(&server).await;
    assert_eq!(rows(&db, read).await, first, "after a restart");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
