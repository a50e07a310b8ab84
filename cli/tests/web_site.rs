//! The web site in a real browser: seeds sample clips into a fresh database of the local stack,
//! runs `highlights serve` on a free port, and runs the Playwright tests in `web/tests/` (Debian's
//! Chromium through playwright-core). `scripts/test` runs `npm ci` in `web/` and installs
//! Chromium first.
//!
//! Also checks `highlights serve` itself: the site and the API on one origin, and a clear error
//! for a missing web directory.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use highlights_adapters::postgres::Database;
use highlights_adapters::sample_clips::SampleClips;
use highlights_adapters::stack_env::StackEnv;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh database with 60 sample clips over 3 streamers, the newest an hour old.
async fn seeded_database(name: &str) -> String {
    let stack = StackEnv::discover(&repository()).unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap();
    let url = format!("{server}/{name}_{}", std::process::id());
    let database = Database::from_url(&url).unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    let client = database.connect().await.unwrap();
    client.batch_execute("TRUNCATE clips, streamers").await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sample = SampleClips { count: 60, channels: 3, first_detected_unix: now - 3600 };
    assert_eq!(sample.insert(&client).await.unwrap(), 60);
    url
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(database_url: &str, web_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["serve", "--listen", "127.0.0.1:0", "--web-dir"])
        .arg(web_dir)
        .env("DATABASE_URL", database_url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .strip_prefix("serving ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line from highlights serve: {line:?}"))
        .to_owned();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { child, url }
}

#[tokio::test]
async fn serve_puts_the_site_and_the_api_on_one_origin() {
    let database_url = seeded_database("serve").await;
    let server = serve(&database_url, &repository().join("web"));
    let client = reqwest::Client::new();
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
