//! Connection limits: sockets that never speak cannot hold the slots (the
//! startup timeout closes them), a client past `--max-connections` is
//! refused at once with 53300, an idle session can be timed out, and
//! DEALLOCATE frees the statements a connection prepared by Parse.

mod common;

use common::raw::{Raw, cstr, error_code};

use std::time::{Duration, Instant};

use eddy::Config;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Waits until the server closes `socket`; fails after 10 s.
async fn closed_by_server(socket: &mut TcpStream) {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the server kept a silent socket open: {read:?}");
}

#[tokio::test]
async fn silent_sockets_time_out_and_a_client_past_the_limit_is_refused_at_once() {
    let config = Config { max_connections: 5, startup_timeout: Duration::from_millis(300), ..Config::default() };
    let server = common::start_server_with(config).await;
    let addr = server.local_addr();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let the server take all five
    // Every slot is held: the next client hears 53300 at once (not after
    // its own timeout, which is a minute here).
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy connect_timeout=60", addr.port());
    let started = Instant::now();
    let err = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.err().expect("refused");
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("too many clients"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(30), "refused only after {:?}", started.elapsed());
    // The silent sockets are closed by the startup timeout, freeing the slots.
    for socket in &mut silent {
        closed_by_server(socket).await;
    }
    let client = common::connect(&server).await;
    let one: i64 = client.query_one("SELECT 1", &[]).await.expect("served").get(0);
    assert_eq!(one, 1);
    // An authenticated session is not subject to the startup timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(client.query_one("SELECT 1", &[]).await.is_ok(), "a started session stays open");
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_session_is_closed_after_the_idle_timeout() {
    let config = Config { idle_session_timeout: Some(Duration::from_millis(300)), ..Config::default() };
    let server = common::start_server_with(config).await;
    let client = common::connect(&server).await;
    client.batch_execute("SELECT 1").await.expect("a first statement");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_closed() {
        assert!(Instant::now() < deadline, "the idle session was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let other = common::connect(&server).await;
    assert!(other.batch_execute("SELECT 1").await.is_ok(), "the server keeps serving");
    server.shutdown().await;
}

/// Runs statement `name` (Bind, Execute, Sync); the error code, if any.
async fn run_statement(raw: &mut Raw, name: &str) -> Option<String> {
    raw.send(b'B', &[cstr(""), cstr(name), vec![0; 6]].concat()).await;
    raw.send(b'E', &[cstr(""), 0i32.to_be_bytes().to_vec()].concat()).await;
    raw.send(b'S', &[]).await;
    error_code(&raw.until_ready().await)
}

/// `DEALLOCATE` and `DISCARD ALL` reach the statements Parse messages
/// prepared, as in PostgreSQL (pdo_pgsql frees its statements that way).
#[tokio::test]
async fn deallocate_reaches_statements_prepared_by_parse() {
    let server = common::start_server().await;
    let mut raw = Raw::connect(server.local_addr()).await;
    for name in ["first", "second"] {
        raw.send(b'P', &[cstr(name), cstr("SELECT 1::bigint"), 0i16.to_be_bytes().to_vec()].concat()).await;
    }
    raw.send(b'S', &[]).await;
    assert_eq!(error_code(&raw.until_ready().await), None, "both prepared");
    raw.query("DEALLOCATE first").await;
    assert_eq!(error_code(&raw.until_ready().await), None, "DEALLOCATE of a Parse-prepared statement");
    assert_eq!(run_statement(&mut raw, "first").await.as_deref(), Some("26000"), "a deallocated statement cannot run");
    raw.query("DEALLOCATE first").await;
    assert_eq!(error_code(&raw.until_ready().await).as_deref(), Some("26000"), "freed twice");
    assert_eq!(run_statement(&mut raw, "second").await, None, "the other still runs");
    raw.query("DISCARD ALL").await;
    assert_eq!(error_code(&raw.until_ready().await), None);
    assert_eq!(run_statement(&mut raw, "second").await.as_deref(), Some("26000"), "DISCARD ALL freed it");
}
