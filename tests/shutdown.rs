//! The `eddy` binary starts with its flags and stops cleanly on SIGTERM and
//! SIGINT, with open client connections.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start(port: u16, data_dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--http", "127.0.0.1:0", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eddy starts")
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "eddy did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status;
        }
        assert!(Instant::now() < deadline, "eddy did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn stops_on(signal: &str) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("eddy-shutdown-{}-{port}", std::process::id()));
    let mut child = start(port, &dir);
    wait_for_port(port).await;
    let conn = format!("host=127.0.0.1 port={port} user=eddy dbname=eddy");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("connects");
    let driver = tokio::spawn(connection);
    client.batch_execute("CREATE STREAM s (k int); CREATE VIEW v AS SELECT count(*) FROM s").await.expect("ddl");
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exit = wait_for_exit(&mut child);
    assert!(exit.success(), "eddy exited with {exit:?} after {signal}");
    // The open connection was closed by the server, not left hanging.
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await.expect("connection closed");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    stops_on("-TERM").await;
}

#[tokio::test]
async fn stops_cleanly_on_sigint() {
    stops_on("-INT").await;
}
