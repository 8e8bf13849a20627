//! The coordinator's Prometheus endpoint: `GET /metrics` over plain HTTP
//! (axum), the text exposition format of the coordinator's counters.
//! Every other path is 404. Bind it to a loopback or monitoring address:
//! the counters are operational, not secret, but not for the world.

use crate::error::{FedError, Result};
use crate::transport::grpc::ServerHandle;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// The router of the metrics endpoint for `server`.
pub fn router(server: ServerHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = server.metrics_text();
            async move { ([(CONTENT_TYPE, TEXT_FORMAT)], text) }
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
