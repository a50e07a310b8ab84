//! A webhook receiver on 127.0.0.1:0 for announcement tests: it answers scripted statuses (then
//! 204) and keeps every request's headers and JSON body.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Default)]
struct State {
    script: VecDeque<u16>,
    seen: Vec<(HeaderMap, serde_json::Value)>,
}

/// A running receiver; its URL's last segment stands for the secret token a real webhook URL holds.
pub struct FakeWebhook {
    url: String,
    state: Arc<Mutex<State>>,
}

impl FakeWebhook {
    /// Starts a receiver answering `script` in order (429s with `Retry-After: 0`), then 204.
    pub async fn start(script: &[u16]) -> Self {
        let state =
            Arc::new(Mutex::new(State { script: script.iter().copied().collect(), seen: Vec::new() }));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/hook/{token}",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let shared = shared.clone();
                async move {
                    let mut state = shared.lock().expect("not poisoned");
                    state.seen.push((headers, serde_json::from_slice(&body).unwrap_or_default()));
                    let status = state.script.pop_front().unwrap_or(204);
                    let mut headers = HeaderMap::new();
                    if status == 429 {
                        headers.insert("retry-after", "0".parse().expect("a header value"));
                    }
                    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), headers)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}/hook/TOPSECRET", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far: headers and body.
    pub fn seen(&self) -> Vec<(HeaderMap, serde_json::Value)> {
        self.state.lock().expect("not poisoned").seen.clone()
    }

    /// Polls until `done` holds for the requests seen, or the deadline passes.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        done: impl Fn(&[(HeaderMap, serde_json::Value)]) -> bool,
    ) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if done(&self.seen()) {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
