//! Shared test helpers: an in-process Eddy server on an ephemeral port, and
//! a tokio-postgres client for it.

#![allow(dead_code)]

pub mod noida;
pub mod process;
pub mod raw;
pub mod tansu;

use std::net::SocketAddr;

use eddy::{Config, Server};
use tokio_postgres::{Client, NoTls};

/// Starts a server on 127.0.0.1:0 with default limits.
pub async fn start_server() -> Server {
    start_server_with(Config::default()).await
}

/// Starts a server with `config`, listening on an ephemeral loopback port.
pub async fn start_server_with(mut config: Config) -> Server {
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    Server::start(config).await.expect("server starts")
}

/// Connects a tokio-postgres client to `server`.
pub async fn connect(server: &Server) -> Client {
    let addr = server.local_addr();
    let conn_str = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", addr.port());
    let (client, connection) = tokio_postgres::connect(&conn_str, NoTls).await.expect("connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Connects, and collects the server's notices and warnings as they
/// arrive, each as `SEVERITY CODE: message`, with `\nDETAIL: ...` if any.
pub async fn connect_with_notices(server: &Server) -> (Client, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    let addr = server.local_addr();
    let conn_str = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", addr.port());
    let (client, mut connection) = tokio_postgres::connect(&conn_str, NoTls).await.expect("connects");
    let notices = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = notices.clone();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(n) = message {
                let detail = n.detail().map(|d| format!("\nDETAIL: {d}")).unwrap_or_default();
                sink.lock().push(format!("{} {}: {}{detail}", n.severity(), n.code().code(), n.message()));
            }
        }
    });
    (client, notices)
}
