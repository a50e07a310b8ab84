//! The web site in a real browser: seeds sample clips into a fresh database of the local stack,
//! runs `highlights serve` on a free port, and runs the Playwright tests in `web/tests/` (Debian's
//! Chromium through playwright-core). `scripts/test` runs `npm ci` in `web/` and installs
//! Chromium first.
//!
//! Also checks `highlights serve` itself: the site and the API on one origin, and a clear error
//! for a missing web directory.

use std::path::Path;
use std::process::Command;

mod common;
use common::{repository, seeded_database, serve};

#[tokio::test]
async fn serve_puts_the_site_and_the_api_on_one_origin() {
    let database_url = seeded_database("serve").await;
    let server = serve(&database_url, &repository().join("web"));
    let client = highlights_adapters::tls::http_client();
    let page = client.get(&server.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>Twitch Highlights</title>"));
    let config: serde_json::Value =
        client.get(format!("{}config.json", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["apiBaseUrl"], "");
    let clips: serde_json::Value =
        client.get(format!("{}v1.0/clip?limit=2", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(clips["clips"][0]["clip_id"], "Sample60");
    let missing = client.get(format!("{}no-such-file.js", server.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn serve_refuses_a_folder_without_a_site() {
    let output = Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["serve", "--web-dir", "/nonexistent-site"])
        .env("DATABASE_URL", "postgres://highlights@127.0.0.1:9/none")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent-site has no index.html"), "{stderr}");
}

#[tokio::test]
async fn the_site_works_in_chromium() {
    let web = repository().join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (scripts/test does)"
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (scripts/test does)"
    );
    let database_url = seeded_database("site").await;
    let server = serve(&database_url, &web);
    let status = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/"])
        .current_dir(&web)
        .env("SITE_URL", &server.url)
        .env("CHROMIUM_PATH", &chromium)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "the browser tests failed (screenshots in web/test-results/)");
}
