//! An in-process server and tokio-postgres clients of it, for the benches
//! that drive Eddy over pgwire (`tables`, `joins`).

use std::net::SocketAddr;

use bytes::Bytes;
use eddy::{Config, Server};
use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

use super::BenchResult;

/// An ephemeral server (no data directory) on a free port, and a client.
pub async fn start() -> BenchResult<(Server, Client)> {
    let config = Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() };
    let server = Server::start(config).await?;
    let client = connect(&server).await?;
    Ok((server, client))
}

/// A new client connection to `server`.
pub async fn connect(server: &Server) -> BenchResult<Client> {
    let conn = format!("host=127.0.0.1 port={} user=eddy dbname=eddy", server.local_addr().port());
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// COPYs `rows` lines made by `line` into `target`, in chunks.
pub async fn copy(client: &Client, target: &str, rows: usize, line: impl Fn(usize) -> String) -> BenchResult<()> {
    let sink = client.copy_in(&format!("COPY {target} FROM STDIN")).await?;
    futures::pin_mut!(sink);
    let mut chunk = String::new();
    for i in 0..rows {
        chunk.push_str(&line(i));
        if chunk.len() > 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut chunk))).await?;
        }
    }
    sink.send(Bytes::from(chunk)).await?;
    sink.finish().await?;
    Ok(())
}
