//! The Prometheus endpoint: `GET /metrics` on the configured address, served until shutdown by
//! axum's router over hyper's HTTP/1.1 connections. An HTTP stack made for the job parses requests
//! however they arrive (split across TCP segments, pipelined, kept alive); on top of it the
//! endpoint bounds what clients can hold, since a scrape target must never starve the ingest of
//! file descriptors: at most [`MAX_CONNECTIONS`] at once, each with [`HEADER_TIMEOUT`] to send its
//! request head and [`CONNECTION_LIFETIME`] in all. The text itself is `exposition`'s (prometheus-client).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::stats::IngestStats;

/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send a request's head (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may stay open, kept alive or not.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The endpoint's routes: `/metrics`, and a 404 that says where the metrics are.
pub fn router(stats: Arc<IngestStats>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(stats)
}

/// What an HTTP endpoint lets its clients hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Whether a connection may carry more than one request. Off, an idle client cannot hold a
    /// connection slot between its requests.
    pub keep_alive: bool,
}

impl Limits {
    /// A scrape target: a few scrapers that keep their connections.
    pub const METRICS: Limits = Limits {
        max_connections: MAX_CONNECTIONS,
        keep_alive: true,
    };
}

/// Serves `stats` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, stats: Arc<IngestStats>, shutdown: CancellationToken) {
    serve_router(listener, router(stats), shutdown, Limits::METRICS).await
}

/// Serves `app` on `listener` until `shutdown` is cancelled, within `limits`, [`HEADER_TIMEOUT`]
/// and [`CONNECTION_LIFETIME`]: the one HTTP loop of the ingest's metrics and of `shiftright
/// serve`.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP endpoint cannot accept connections");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(limits.keep_alive)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                served = tokio::time::timeout(CONNECTION_LIFETIME, connection) => {
                    if let Ok(Err(e)) = served {
                        tracing::debug!(error = %e, "HTTP connection failed");
                    }
                }
            }
        });
    }
}

async fn metrics(State(stats): State<Arc<IngestStats>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::exposition::CONTENT_TYPE)],
        crate::exposition::render(&stats),
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "shiftright ingest: metrics are at /metrics\n",
    )
}
