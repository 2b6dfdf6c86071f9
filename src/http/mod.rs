//! The HTTP side of the server, for operators who want figures without SQL:
//!
//! - `GET /metrics`: Prometheus' text format ([`metrics`]);
//! - `GET /api/status`: the same figures as a small JSON document ([`status`]);
//! - `GET /`: a status page (`page.html`, embedded in the binary) that
//!   polls `/api/status` about once a second and draws rows per second.
//!
//! It runs on the server's tokio runtime as a tracked task, and stops with
//! the server. With a token configured (`[http] token` in `--config`),
//! every request must carry it, as `Authorization: Bearer <token>` or as
//! `?token=<token>` (what a browser can open); the page passes it on.

pub mod history;
pub mod metrics;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::server::Engine;

/// The status page.
const PAGE: &str = include_str!("page.html");

/// The content type of Prometheus' text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What can go wrong starting the HTTP side.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error(
        "could not listen for HTTP on {addr} ({source}); choose another address with --http HOST:PORT, or --http off"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every request handler shares.
#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    token: Option<String>,
    /// Bound to a loopback address.
    loopback: bool,
    history: Arc<history::History>,
}

/// Binds `addr`, before the engine starts, so that a taken port fails fast;
/// returns the listener and the address bound (useful with port 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HttpError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Serves on `listener` until `shutdown`, as a task on `tasks`.
pub fn serve(
    (listener, bound): (TcpListener, SocketAddr),
    token: Option<String>,
    engine: Arc<Engine>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    let history = Arc::new(history::History::default());
    let sampler = history.clone().run(engine.clone(), shutdown.clone());
    tasks.spawn(sampler.instrument(info_span!("http-history")));
    let loopback = bound.ip().is_loopback();
    let shared = Arc::new(Shared { engine, token, loopback, history });
    let router = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics_text))
        .route("/api/status", get(status_json))
        .layer(middleware::from_fn_with_state(shared.clone(), require_token))
        .with_state(shared);
    info!(addr = %bound, "eddy http listening: /metrics, /api/status and the status page at /");
    tasks.spawn(
        async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
            if let Err(e) = serving.await {
                warn!(error = %e, "the HTTP server stopped");
            }
        }
        .instrument(info_span!("http")),
    );
}

/// Refuses a request without the token, when there is one. Without one, on
/// loopback, refuses a request that names another host: a web page that
/// rebinds its own name to 127.0.0.1 must not read the figures.
async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(token) = &shared.token else {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if shared.loopback && !is_loopback_host(host) {
            return (StatusCode::FORBIDDEN, "this address serves loopback clients only: use 127.0.0.1 or localhost\n")
                .into_response();
        }
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let in_query = request.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    match bearer.or(in_query) {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a token is required: send Authorization: Bearer <token>, or add ?token=<token> to the address\n",
        )
            .into_response(),
    }
}

/// Whether a `Host` header names this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time that does not depend on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let engine = shared.engine.clone();
    match tokio::task::spawn_blocking(move || metrics::render(engine)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response(),
        Ok(Err(_)) | Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be encoded\n").into_response()
        }
    }
}

async fn status_json(State(shared): State<Arc<Shared>>) -> Response {
    let (engine, history) = (shared.engine.clone(), shared.history.clone());
    match tokio::task::spawn_blocking(move || status::status(&engine, &history)).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the status could not be read\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, same};

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST:8432", "127.0.0.1", "127.0.0.1:8432", "[::1]:8432", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["", "evil.example", "evil.example:8432", "10.0.0.1:8432", "localhost.evil.example"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
