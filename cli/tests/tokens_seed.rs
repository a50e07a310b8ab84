//! `highlights tokens seed` against a fake Twitch OAuth server: the authorization code flow
//! end to end, the `state` check, and a token file only its owner can read.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;

use highlights_test_support::FakeTwitch;
use tokio::io::{AsyncBufReadExt as _, BufReader};

struct Seeding {
    child: tokio::process::Child,
    authorize_url: String,
    stderr: Vec<String>,
}

async fn start_seed(fake: &FakeTwitch, out: &std::path::Path) -> Seeding {
    start_seed_with(fake, out, &[]).await
}

async fn start_seed_with(fake: &FakeTwitch, out: &std::path::Path, extra: &[&str]) -> Seeding {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["tokens", "seed", "--client-id", "cid", "--port", "0", "--timeout-s", "60", "--out"])
        .arg(out)
        .args(extra)
        .args(["--oauth-url", &fake.oauth_url()])
        .env("TWITCH_CLIENT_SECRET", "client-secret-seed")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = Vec::new();
    let authorize_url = loop {
        let line = lines.next_line().await.unwrap().expect("the authorize URL is printed");
        stderr.push(line.clone());
        if line.contains("/authorize?") {
            break line;
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe; shown when a test fails.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("highlights tokens seed: {line}");
        }
    });
    Seeding { child, authorize_url, stderr }
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("highlights-seed-{name}-{}.json", std::process::id()))
}

#[tokio::test]
async fn the_code_flow_stores_tokens_in_a_private_file() {
    let fake = FakeTwitch::start().await;
    fake.allow_code("fake-code", "seed-access", "seed-refresh");
    let out = temp("ok");
    let mut seeding = start_seed(&fake, &out).await;
    assert!(seeding.authorize_url.contains("scope=clips%3Aedit"), "{}", seeding.authorize_url);
    // The "browser": the fake authorizes and redirects to the CLI's localhost listener.
    let page = highlights_adapters::tls::http_client().get(&seeding.authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Authorized"));
    assert!(seeding.child.wait().await.unwrap().success());

    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        (stored["access_token"].as_str(), stored["refresh_token"].as_str()),
        (Some("seed-access"), Some("seed-refresh"))
    );
    assert_eq!(stored["user_id"], highlights_test_support::OUR_USER_ID, "the token's user is kept");
    assert!(seeding.stderr.iter().all(|l| !l.contains("seed-access") && !l.contains("client-secret-seed")));
    std::fs::remove_file(&out).unwrap();
}

#[tokio::test]
async fn with_vod_the_token_may_also_cut_clips_from_vods() {
    let fake = FakeTwitch::start().await;
    fake.allow_code("fake-code", "vod-access", "vod-refresh");
    let out = temp("vod");
    let mut seeding = start_seed_with(&fake, &out, &["--vod"]).await;
    assert!(
        seeding.authorize_url.contains("scope=clips%3Aedit+editor%3Amanage%3Aclips"),
        "{}",
        seeding.authorize_url
    );
    assert_eq!(
        highlights_adapters::tls::http_client().get(&seeding.authorize_url).send().await.unwrap().status(),
        200
    );
    assert!(seeding.child.wait().await.unwrap().success());
    let stored: highlights_adapters::twitch::UserToken =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(stored.can_clip_vods(), "{:?}", stored.scopes);
    std::fs::remove_file(&out).unwrap();
}

/// Where the CLI waits for Twitch's redirect, read from the authorize URL it printed.
fn callback_of(authorize_url: &str) -> String {
    let url = url::Url::parse(authorize_url).unwrap();
    url.query_pairs().find(|(key, _)| key == "redirect_uri").unwrap().1.into_owned()
}

/// A redirect that is not Twitch's answer to this run: answered 400, nothing stored.
async fn a_forged_redirect_stores_nothing(name: &str, query: &str) {
    let fake = FakeTwitch::start().await;
    let out = temp(name);
    let mut seeding = start_seed(&fake, &out).await;
    let forged = highlights_adapters::tls::http_client()
        .get(format!("{}?{query}", callback_of(&seeding.authorize_url)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let status = seeding.child.wait().await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!out.exists());
}

#[tokio::test]
async fn a_redirect_with_the_wrong_state_stores_nothing() {
    a_forged_redirect_stores_nothing("wrong-state", "code=stolen&state=not-the-state").await;
}

#[tokio::test]
async fn a_redirect_without_a_state_stores_nothing() {
    a_forged_redirect_stores_nothing("no-state", "code=stolen").await;
}
