//! The coordinator's monitoring endpoint over plain HTTP (axum):
//! `GET /metrics` (the Prometheus text format of the coordinator's
//! counters, totals and per client), `GET /healthz` (liveness: the process
//! answers) and `GET /readyz` (readiness: the coordinator's state is loaded
//! and it is not recovering from a storage failure; 503 with the reason
//! otherwise). Every other path is 404. Bind it to a loopback or monitoring address:
//! the counters are operational, not secret, but not for the world.

use crate::error::{FedError, Result};
use crate::transport::grpc::ServerHandle;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// The router of the metrics endpoint for `server`.
pub fn router(server: ServerHandle) -> Router {
    let ready = server.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = server.metrics_text();
                async move { ([(CONTENT_TYPE, TEXT_FORMAT)], text) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = ready.readiness();
                async move {
                    match r {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {why}\n"),
                        ),
                    }
                }
            }),
        )
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| FedError::Transport(format!("metrics endpoint on {addr}: {e}")))
}

/// Serves the metrics of `server` on `listener` until the process ends (or
/// the listener fails).
pub async fn serve(listener: tokio::net::TcpListener, server: ServerHandle) -> Result<()> {
    axum::serve(listener, router(server))
        .await
        .map_err(|e| FedError::Transport(format!("metrics endpoint: {e}")))
}
