//! `/healthz` (the process is alive) and `/readyz` (IRC logged in and Kinesis answering), for
//! the ECS container health check and people; `/status` shows the counters since start.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Counters;

pub fn router(counters: Arc<Counters>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .with_state(counters)
}

async fn ready(State(counters): State<Arc<Counters>>) -> (StatusCode, String) {
    let irc = counters.irc_connected.load(std::sync::atomic::Ordering::Relaxed);
    let kinesis = counters.kinesis_reachable.load(std::sync::atomic::Ordering::Relaxed);
    let status = if irc && kinesis { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, format!("irc_connected={irc} kinesis_reachable={kinesis}\n"))
}

async fn status(State(counters): State<Arc<Counters>>) -> String {
    format!("{:#?}\n", counters.totals())
}

/// Binds the health server; returns the bound address (port 0 picks one).
pub async fn serve(address: SocketAddr, counters: Arc<Counters>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(counters)).await {
            tracing::error!(%error, "the health server stopped");
        }
    });
    Ok(bound)
}

/// One `GET /healthz` to `address` with a 2-second limit: true when it answers 200.
pub async fn check(address: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(std::time::Duration::from_secs(2), attempt).await, Ok(Some(true)))
}
