//! The OpenAPI document: generated from the handlers, served at `/v1.0/openapi.json`, and
//! committed as `docs/openapi.json`. Regenerate the committed copy with
//! `UPDATE_OPENAPI=1 cargo test -p api-function --test openapi`.

use api_function::{ApiState, openapi_json, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use highlights_adapters::postgres::Database;
use serde_json::Value;
use tower::ServiceExt as _;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p api-function --test openapi"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_describes_every_route_and_parameter() {
    let document: Value = serde_json::from_str(&openapi_json()).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1.0/clip", "/v1.0/clip/{clip_id}", "/v1.0/streamers", "/health"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} is not documented");
    }
    let parameters: Vec<&str> = document["paths"]["/v1.0/clip"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        parameters,
        [
            "min_intensity",
            "limit",
            "offset",
            "broadcaster_id",
            "streamer",
            "since",
            "until",
            "cursor",
            "after_id"
        ]
    );
    for schema in ["ClipPage", "Clip", "ErrorBody", "StreamerList", "Health"] {
        assert!(document["components"]["schemas"][schema].is_object(), "{schema} is missing");
    }
}

#[tokio::test]
async fn the_router_serves_the_document() {
    // The pool connects lazily: this route never touches the database.
    let pool = Database::from_url("postgres://highlights@127.0.0.1:1/none").unwrap().pool(1).unwrap();
    let response = router(ApiState::new(pool))
        .oneshot(Request::get("/v1.0/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), openapi_json());
}
