//! Property-based testing of the clips API from its own OpenAPI document: schemathesis (installed
//! into .venv-test by scripts/test) generates valid and invalid requests against `highlights serve`
//! over a seeded database and checks that nothing answers 5xx, that every answer matches the
//! documented schema, status codes and content type, and that invalid input is rejected.
//!
//! One check is left out: `positive_data_acceptance`. The cursor is opaque (any base64url string
//! is schema-valid, few are cursors) and `since <= until` relates two parameters; neither can be
//! expressed in OpenAPI, so schema-valid requests may rightly get a 400.

use std::path::Path;

mod common;
use common::{data_dir, dev, get_json, repository, seeded_database, serve};

/// Runs schemathesis against the API at `url` and asserts it found nothing.
async fn schemathesis_finds_nothing_at(url: &str) {
    let schemathesis = repository().join(".venv-test/bin/schemathesis");
    assert!(
        Path::new(&schemathesis).is_file(),
        "{} is missing: scripts/test installs it (pip install schemathesis into .venv-test)",
        schemathesis.display()
    );
    let output = tokio::process::Command::new(&schemathesis)
        .args(["run", &format!("{url}v1.0/openapi.json"), "--url"])
        .arg(url.trim_end_matches('/'))
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "60", "--seed", "20261127", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("generated"), "{report}");
}

/// The API over PostgreSQL (`highlights serve`, as the Lambda runs it).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let database_url = seeded_database("fuzz").await;
    let server = serve(&database_url, &repository().join("web"));
    schemathesis_finds_nothing_at(&server.url).await;
}

/// The same API over the embedded store (`highlights dev`), with moments from synthetic chat.
#[tokio::test]
async fn schemathesis_finds_nothing_either_over_the_embedded_store() {
    let data = data_dir("fuzz");
    std::fs::create_dir_all(&data).unwrap();
    let chat = data.join("chat.jsonl");
    let synth = std::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["synth", "--channels", "5", "--duration", "1800", "--out"])
        .arg(&chat)
        .status()
        .unwrap();
    assert!(synth.success());
    let finished = std::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["dev", "--exit-when-done", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--web-dir")
        .arg(repository().join("web"))
        .arg("--replay")
        .arg(&chat)
        .output()
        .unwrap();
    assert!(finished.status.success(), "{}", String::from_utf8_lossy(&finished.stderr));
    let server = dev(&data, &["--replay", &chat.display().to_string()], &[]);
    let page = get_json(&format!("{}v1.0/clip", server.url)).await;
    assert!(page["count"].as_u64().unwrap() > 0, "moments to list: {page}");
    schemathesis_finds_nothing_at(&server.url).await;
    drop(server);
    std::fs::remove_dir_all(&data).unwrap();
}
