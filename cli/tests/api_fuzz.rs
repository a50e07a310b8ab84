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
use common::{repository, seeded_database, serve};

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = repository().join(".venv-test/bin/schemathesis");
    assert!(
        Path::new(&schemathesis).is_file(),
        "{} is missing: scripts/test installs it (pip install schemathesis into .venv-test)",
        schemathesis.display()
    );
    let database_url = seeded_database("fuzz").await;
    let server = serve(&database_url, &repository().join("web"));
    let output = tokio::process::Command::new(&schemathesis)
        .args(["run", &format!("{}v1.0/openapi.json", server.url), "--url"])
        .arg(server.url.trim_end_matches('/'))
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
