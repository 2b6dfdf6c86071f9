//! A client that disconnects while its query runs has the query cancelled:
//! the server does not go on burning a core for nobody. (Its own test
//! binary, so that no other test's work shows in the CPU it measures.)

mod common;

use std::time::Duration;

/// CPU time this process has used (user and system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_clients_query_stops() {
    let server = common::start_server().await;
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port());
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connects");
    let driver = tokio::spawn(connection);
    let query = tokio::spawn(async move {
        let _ = client.simple_query("SELECT count(*) FROM generate_series(1, 100000000000)").await;
        client
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let busy = cpu_time().saturating_sub(before);
    assert!(busy >= Duration::from_millis(500), "the query was not running: {busy:?} of CPU in 1 s");
    // The client goes away mid-query.
    driver.abort();
    query.abort();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = cpu_time().saturating_sub(before);
    assert!(
        after < Duration::from_millis(500),
        "the query kept running: {after:?} of CPU in 1.5 s after the disconnect"
    );
    let other = common::connect(&server).await;
    assert!(!other.simple_query("SELECT 1").await.expect("serves").is_empty());
    server.shutdown().await;
}
