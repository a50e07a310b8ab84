//! The API router against a real PostgreSQL (the local stack), requests sent through the router
//! as API Gateway would hand them to the Lambda.

use std::path::Path;

use api_function::{ApiState, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use highlights_adapters::postgres::Database;
use highlights_adapters::stack_env::StackEnv;
use serde_json::Value;
use tower::ServiceExt as _;

const BASE_S: i64 = 1_733_000_000;

async fn database(name: &str) -> Database {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap();
    let database = Database::from_url(&format!("{server}/api_{name}_{}", std::process::id())).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let client = database.connect().await.unwrap();
    client.batch_execute("TRUNCATE clips, streamers").await.unwrap();
    client
        .batch_execute(
            "INSERT INTO streamers (broadcaster_id, login, display_name) VALUES \
             ('1', 'alpha', 'Alpha'), ('2', 'beta', 'Beta'), ('3', 'gamma', 'Gamma')",
        )
        .await
        .unwrap();
    database
}

/// Clip `n` (0-based): broadcaster 1 + n % 3, detected at BASE + 60 n, intensity 3 + n % 7.
async fn insert_clips(database: &Database, range: std::ops::Range<i64>) {
    let client = database.connect().await.unwrap();
    for n in range {
        client
            .execute(
                "INSERT INTO clips (clip_id, broadcaster_id, url, embed_url, detected_at, fired_at, intensity, \
                     message_count, baseline_mean, baseline_std, confirmed) \
                 VALUES ($1, $2, 'u', 'e', to_timestamp($3::bigint), to_timestamp($3::bigint + 5), $4, 50, 1, 1, TRUE)",
                &[&format!("Clip{n}"), &(1 + n % 3).to_string(), &(BASE_S + 60 * n), &(3.0 + (n % 7) as f64)],
            )
            .await
            .unwrap();
    }
}

/// Unix seconds as an RFC 3339 query value.
fn rfc3339(seconds: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap();
    time.format(&time::format_description::well_known::Rfc3339).unwrap().replace(':', "%3A")
}

async fn get(database: &Database, uri: &str) -> (StatusCode, Value) {
    let app = router(ApiState::new(database.pool(2).unwrap()));
    let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn ids(body: &Value) -> Vec<String> {
    body["clips"].as_array().unwrap().iter().map(|c| c["clip_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_default_page_is_the_newest_24_with_the_seed_fields() {
    let db = database("default").await;
    insert_clips(&db, 0..60).await;
    let (status, body) = get(&db, "/v1.0/clip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["count"].as_u64(), body["total_count"].as_u64(), body["has_more"].as_bool()),
        (Some(24), Some(60), Some(true))
    );
    assert_eq!(ids(&body)[0], "Clip59");
    assert_eq!(
        (body["clips"][0]["streamer_login"].as_str(), body["clips"][0]["streamer_name"].as_str()),
        (Some("gamma"), Some("Gamma"))
    );
    assert_eq!(ids(&body)[23], "Clip36");
    let clip = &body["clips"][0];
    for field in [
        "id",
        "broadcaster_id",
        "clip_id",
        "embed_url",
        "thumbnail_url",
        "detected_at",
        "created_at",
        "streamer_login",
        "intensity",
    ] {
        assert!(clip.get(field).is_some(), "{field} missing: {clip}");
    }
    assert_eq!(clip["streamer_login"], "gamma");
    assert_eq!(body["query"]["limit"], 24);
}

#[tokio::test]
async fn walking_the_cursor_yields_every_clip_once_while_clips_arrive() {
    let db = database("cursor").await;
    insert_clips(&db, 0..50).await;
    let mut seen = Vec::new();
    let mut uri = "/v1.0/clip?limit=7".to_owned();
    let mut arrivals = 100;
    loop {
        let (status, body) = get(&db, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(ids(&body));
        // Newer clips arrive between pages; they must not shift or repeat older ones.
        insert_clips(&db, arrivals..arrivals + 2).await;
        arrivals += 2;
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1.0/clip?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..50).rev().map(|n| format!("Clip{n}")).collect();
    assert_eq!(seen, expected);
    expected.sort();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50);
}

#[tokio::test]
async fn offset_paging_matches_the_seed_contract() {
    let db = database("offset").await;
    insert_clips(&db, 0..30).await;
    let (_, first) = get(&db, "/v1.0/clip?limit=10").await;
    let (_, second) = get(&db, "/v1.0/clip?limit=10&offset=10").await;
    let (_, by_cursor) =
        get(&db, &format!("/v1.0/clip?limit=10&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    assert_eq!(ids(&second), ids(&by_cursor));
    assert_eq!(second["query"]["offset"], 10);
    // The seed's clients: out-of-range values are clamped and the values used echoed.
    for (uri, limit, offset, count) in [
        ("/v1.0/clip?limit=500", 100, 0, 30),
        ("/v1.0/clip?limit=0", 1, 0, 1),
        ("/v1.0/clip?limit=5&offset=-20", 5, 0, 5),
    ] {
        let (status, body) = get(&db, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(
            (body["query"]["limit"].as_i64(), body["query"]["offset"].as_i64()),
            (Some(limit), Some(offset))
        );
        assert_eq!(body["clips"].as_array().unwrap().len(), count, "{uri}");
    }
    let (status, body) = get(&db, "/v1.0/clip?offset=10001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let db = database("filters").await;
    insert_clips(&db, 0..42).await;
    let (_, by_id) = get(&db, "/v1.0/clip?broadcaster_id=2&limit=100").await;
    assert_eq!(by_id["total_count"], 14);
    assert!(by_id["clips"].as_array().unwrap().iter().all(|c| c["broadcaster_id"] == "2"));
    let (_, by_login) = get(&db, "/v1.0/clip?streamer=Beta&limit=100").await;
    assert_eq!(ids(&by_login), ids(&by_id));
    let (_, intense) = get(&db, "/v1.0/clip?min_intensity=8.5&limit=100").await;
    assert!(intense["clips"].as_array().unwrap().iter().all(|c| c["intensity"].as_f64().unwrap() >= 8.5));
    assert_eq!(intense["total_count"], 6);
    let (_, window) = get(
        &db,
        &format!("/v1.0/clip?since={}&until={}&limit=100", rfc3339(BASE_S + 600), rfc3339(BASE_S + 1200)),
    )
    .await;
    assert_eq!(ids(&window), (10..=20).rev().map(|n| format!("Clip{n}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let db = database("bad").await;
    for (uri, parameter) in [
        ("/v1.0/clip?limit=many", "limit"),
        ("/v1.0/clip?min_intensity=-2", "min_intensity"),
        ("/v1.0/clip?offset=1%27%3B%20DROP%20TABLE%20clips%3B--", "offset"),
        ("/v1.0/clip?streamer=x%27%20OR%201%3D1", "streamer"),
        ("/v1.0/clip?colour=red", "colour"),
        ("/v1.0/clip/Bad%20Id", "clip_id"),
    ] {
        let (status, body) = get(&db, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }
    // The seed's texts for the seed's parameters.
    for (uri, text) in [
        ("/v1.0/clip?limit=many", "Invalid limit parameter"),
        ("/v1.0/clip?offset=x", "Invalid offset parameter"),
        ("/v1.0/clip?min_intensity=x", "Invalid min_intensity parameter"),
        ("/v1.0/clip?min_intensity=-2", "min_intensity must be non-negative"),
    ] {
        let (_, body) = get(&db, uri).await;
        assert_eq!(body["error"], text, "{uri}");
    }
    let (status, body) = get(&db, "/v1.0/nothing/here").await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, serde_json::json!({ "error": "Not found" })));
    let (status, _) = get(&db, "/v1.0/clip").await;
    assert_eq!(status, StatusCode::OK, "the table survived");
}

#[tokio::test]
async fn only_the_site_origin_is_allowed_by_cors() {
    let db = database("cors").await;
    let app =
        api_function::router_with_cors(ApiState::new(db.pool(2).unwrap()), Some("https://clips.example.com"));
    let request =
        |origin: &str| Request::get("/v1.0/clip").header("origin", origin).body(Body::empty()).unwrap();
    let allowed = app.clone().oneshot(request("https://clips.example.com")).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://clips.example.com");
    assert!(allowed.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    // Another origin is never echoed back, so browsers refuse it.
    let other = app.oneshot(request("https://evil.example")).await.unwrap();
    let header = other.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
    assert_ne!(header.as_deref(), Some("https://evil.example"));
    assert_ne!(header.as_deref(), Some("*"));
}

#[tokio::test]
async fn single_clips_streamers_and_health() {
    let db = database("single").await;
    insert_clips(&db, 0..3).await;
    let (status, clip) = get(&db, "/v1.0/clip/Clip1").await;
    assert_eq!((status, clip["broadcaster_id"].as_str()), (StatusCode::OK, Some("2")));
    let (status, _) = get(&db, "/v1.0/clip/Nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, streamers) = get(&db, "/v1.0/streamers").await;
    assert_eq!(streamers["streamers"].as_array().unwrap().len(), 3);
    assert_eq!(streamers["streamers"][0]["clip_count"], 1);
    let (status, health) = get(&db, "/health").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("healthy")), "the seed's word");
    assert_eq!(health["database"], "ok");
    let down = Database::from_url("postgres://highlights@127.0.0.1:9/highlights").unwrap();
    let (status, health) = get(&down, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "unhealthy");
    let (status, body) = get(&down, "/v1.0/clip").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.to_string().contains("127.0.0.1"), "no internals leak: {body}");
}

#[tokio::test]
async fn total_count_is_capped_and_says_so() {
    let db = database("capped").await;
    db.connect()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO clips (clip_id, broadcaster_id, detected_at, fired_at, intensity, message_count, \
                 baseline_mean, baseline_std) \
             SELECT 'Many' || g, '1', to_timestamp(1700000000 + g), to_timestamp(1700000000 + g), 5, 1, 1, 1 \
             FROM generate_series(1, 10050) AS g",
        )
        .await
        .unwrap();
    let (status, body) = get(&db, "/v1.0/clip?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["total_count"].as_i64(), body["total_count_capped"].as_bool()),
        (Some(10_000), Some(true))
    );
    let (_, few) = get(&db, "/v1.0/clip?min_intensity=6").await;
    assert_eq!((few["total_count"].as_i64(), few["total_count_capped"].as_bool()), (Some(0), Some(false)));
}

#[tokio::test]
async fn clips_twitch_never_published_are_not_listed() {
    let database = database("unpublished").await;
    insert_clips(&database, 0..5).await;
    let client = database.connect().await.unwrap();
    client
        .execute("UPDATE clips SET unpublished = TRUE WHERE clip_id IN ('Clip1', 'Clip3')", &[])
        .await
        .unwrap();
    let (status, page) = get(&database, "/v1.0/clip").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> =
        page["clips"].as_array().unwrap().iter().map(|c| c["clip_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["Clip4", "Clip2", "Clip0"]);
    assert_eq!(page["total_count"], 3);
}
