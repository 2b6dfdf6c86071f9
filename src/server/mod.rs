//! Startup, the accept loop, and shutdown.
//!
//! Order matters: the engine comes first, then the listener. On shutdown
//! the listener stops, connections are closed, the server waits for the
//! tracked tasks to end, a last checkpoint is taken (its barrier waits for
//! every write already admitted to reach every view), and only then do the
//! views' operators stop. Each connection's limits live in `connection`.

pub mod cancel;
pub mod config;
mod connection;
mod ddl;
pub mod engine;
pub mod recovery;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use connection::Connections;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

pub use config::Config;
pub use engine::Engine;
pub use session::Session;

use crate::auth::{Users, tls_acceptor};

/// How long shutdown waits for tasks before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    accept: JoinHandle<()>,
    engine: Arc<Engine>,
    http: Option<SocketAddr>,
}

impl Server {
    /// Binds `config.listen` and starts serving.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        config.validate().map_err(std::io::Error::other)?;
        let http_listener = match config.http {
            Some(at) => Some(crate::http::bind(at).await.map_err(std::io::Error::other)?),
            None => None,
        };
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let engine = Engine::new(config.clone(), tasks.clone(), shutdown.clone())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let users = Users::new(&config.auth);
        let tls = config.auth.tls.as_ref().map(tls_acceptor).transpose().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let data_dir =
            config.data_dir.as_ref().map_or_else(|| "(none: in memory)".to_string(), |d| d.display().to_string());
        let auth = format!("{:?}", users.method());
        info!(%addr, %data_dir, %auth, tls = tls.is_some(), "eddy listening");
        let http = http_listener.map(|listener| {
            let bound = listener.1;
            let token = config.auth.http_token.clone();
            crate::http::serve(listener, token, engine.clone(), &tasks, shutdown.clone());
            bound
        });
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let connections = Connections { engine: engine.clone(), users, tls, permits };
        let accept = tokio::spawn(
            accept_loop(listener, connections, tasks.clone(), shutdown.clone()).instrument(info_span!("accept")),
        );
        Ok(Self { addr, shutdown, tasks, accept, engine, http })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` and the status page are served on, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The shared engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stops accepting, closes connections, stops views, and waits for tasks.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.accept).await;
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait()).await.is_err() {
            warn!(remaining = self.tasks.len(), "tasks still running after the shutdown grace period");
        }
        // Nothing new is admitted, and the checkpoint's barrier waits for
        // the writes already admitted to reach every view (the views still
        // run): the last checkpoint holds every acknowledged row exactly
        // once, and makes the next start quick.
        if let Err(e) = self.engine.checkpoint().await {
            warn!("the shutdown checkpoint failed; the next start replays the insert log instead: {e}");
        }
        self.engine.stop_views(SHUTDOWN_GRACE).await;
        info!("eddy stopped");
    }
}

async fn accept_loop(listener: TcpListener, connections: Connections, tasks: TaskTracker, shutdown: CancellationToken) {
    let connections = Arc::new(connections);
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let (connections, stop) = (connections.clone(), shutdown.clone());
        tasks.spawn(
            async move { connections.serve(socket, peer, stop).await }.instrument(info_span!("connection", %peer)),
        );
    }
}

/// A server dropped without [`Server::shutdown`] (a test that failed, say)
/// still tells its tasks and Kafka reader threads to stop, so that the
/// runtime holding them can end.
impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.engine.abandon_views();
    }
}
