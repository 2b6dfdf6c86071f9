//! Shared test helpers: an in-process Eddy server on an ephemeral port, and
//! a tokio-postgres client for it.

#![allow(dead_code)]

pub mod raw;

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
