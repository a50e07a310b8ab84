//! `highlights clips from-vod` against the fake Helix: the strongest moments of a recorded
//! VOD's chat within the budget are cut from the VOD on their moments, into the store
//! `highlights dev` serves; an answer lost after the clip was made, and a second run, make no
//! second clip; a token that may not cut VODs is refused before anything is called.

mod common;

use std::path::{Path, PathBuf};

use highlights_test_support::{CreateAnswer, FakeTwitch, FakeVideo, OUR_USER_ID};

const START: i64 = 1_700_000_000;
const BROADCASTER: u64 = 100_000;
const VIDEO: &str = "2300000001";
const HOURS: i64 = 3;

/// Three hours of one channel's chat with six bursts an hour, the broadcast's Unix times.
fn chat(dir: &Path) -> PathBuf {
    let path = dir.join("vod-chat.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["synth", "--channels", "1", "--bursts-per-hour", "6", "--start", &START.to_string()])
        .args(["--duration", &(HOURS * 3600).to_string(), "--first-broadcaster-id", &BROADCASTER.to_string()])
        .arg("--out")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn token_file(dir: &Path, scopes: &[&str]) -> PathBuf {
    let path = dir.join("tokens.json");
    let token = serde_json::json!({
        "access_token": "vod-access", "refresh_token": "vod-refresh", "scopes": scopes, "user_id": OUR_USER_ID,
    });
    std::fs::write(&path, token.to_string()).unwrap();
    path
}

struct Run {
    ok: bool,
    lines: Vec<serde_json::Value>,
    stderr: String,
}

async fn from_vod(fake: &FakeTwitch, dir: &Path, tokens: &Path, extra: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["clips", "from-vod", VIDEO])
        .arg(dir.join("vod-chat.jsonl"))
        .arg("--twitch-tokens")
        .arg(tokens)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--twitch-helix-url", &fake.helix_url(), "--twitch-oauth2-url", &fake.oauth_url()])
        .args(["--clips-per-hour", "2"])
        .args(extra)
        .env("TWITCH_CLIENT_ID", "cid")
        .env("TWITCH_CLIENT_SECRET", "client-secret-vod")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("vod-access") && !stderr.contains("client-secret-vod"), "{stderr}");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    Run { ok: output.status.success(), lines, stderr }
}

async fn world(name: &str, scopes: &[&str]) -> (FakeTwitch, PathBuf, PathBuf) {
    let dir = common::data_dir(&format!("from-vod-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    chat(&dir);
    let tokens = token_file(&dir, scopes);
    let fake = FakeTwitch::start().await;
    fake.accept_vod_token("vod-access");
    fake.add_video(FakeVideo {
        id: VIDEO.into(),
        user_id: BROADCASTER,
        created_at_s: START,
        length_s: HOURS * 3600,
    });
    (fake, dir, tokens)
}

/// Seconds of the chosen moments' peaks.
fn peaks(run: &Run) -> Vec<i64> {
    run.lines.iter().map(|l| l["peak_at"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn the_strongest_moments_within_the_budget_are_cut_from_the_vod_once() {
    let (fake, dir, tokens) = world("ok", &["clips:edit", "editor:manage:clips"]).await;

    let plan = from_vod(&fake, &dir, &tokens, &["--dry-run"]).await;
    assert!(plan.ok, "{}", plan.stderr);
    assert!(fake.create_calls().is_empty(), "a dry run calls nothing");
    let planned = peaks(&plan);
    // Six bursts an hour, two clips an hour at most: a few per hour, never three in an hour.
    assert!((HOURS as usize..=2 * HOURS as usize).contains(&planned.len()), "{planned:?}");
    for (i, peak) in planned.iter().enumerate() {
        assert!(planned[..=i].iter().filter(|&&p| peak - p < 3600).count() <= 2, "{planned:?}");
    }

    // Twitch makes the first clip and the answer is lost: the clip is found, not made again.
    fake.script(&[CreateAnswer::AcceptThen500]);
    let run = from_vod(&fake, &dir, &tokens, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(peaks(&run), planned);
    assert!(run.lines.iter().all(|l| l["status"] == "clip"), "{:?}", run.lines);
    let calls = fake.create_calls();
    assert_eq!(calls.len(), planned.len(), "one call per moment, the lost answer included");
    assert_eq!(fake.clips_made().len(), planned.len(), "one clip per moment");
    for (call, peak) in calls.iter().zip(&planned) {
        let (vod, end_offset, editor) = call.vod.clone().expect("Create Clip From VOD");
        assert_eq!((vod.as_str(), editor.as_str()), (VIDEO, OUR_USER_ID));
        assert_eq!(end_offset as i64, peak - START + 5, "the clip ends 5 s after the peak");
        assert!(call.title.is_some());
    }

    // Run again: every moment already has its clip.
    let again = from_vod(&fake, &dir, &tokens, &[]).await;
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(fake.create_calls().len(), planned.len());
    let ids =
        |run: &Run| run.lines.iter().map(|l| l["clip_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&run));

    // The clips are in the store `highlights dev` serves, linked to the VOD.
    let db = rusqlite::Connection::open(dir.join("data").join(highlights_embedded::FILE_NAME)).unwrap();
    let stored: i64 = db
        .query_row("SELECT count(*) FROM clips WHERE kind = 'clip' AND video_id = ?1", [VIDEO], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, planned.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_token_that_may_not_cut_vods_is_refused_before_any_call() {
    let (fake, dir, tokens) = world("noscope", &["clips:edit"]).await;
    let run = from_vod(&fake, &dir, &tokens, &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("tokens seed --vod"), "{}", run.stderr);
    assert!(fake.create_calls().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_unknown_vod_is_a_clear_error() {
    let (fake, dir, tokens) = world("unknown", &["clips:edit", "editor:manage:clips"]).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["clips", "from-vod", "999", "--dry-run"])
        .arg(dir.join("vod-chat.jsonl"))
        .arg("--twitch-tokens")
        .arg(&tokens)
        .args(["--twitch-helix-url", &fake.helix_url(), "--twitch-oauth2-url", &fake.oauth_url()])
        .env("TWITCH_CLIENT_ID", "cid")
        .env("TWITCH_CLIENT_SECRET", "client-secret-vod")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Twitch knows no VOD 999"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn with_a_database_url_the_clips_go_to_the_deployment_s_postgresql() {
    let (fake, dir, tokens) = world("pg", &["clips:edit", "editor:manage:clips"]).await;
    let url = common::seeded_database("from_vod").await;
    let run = from_vod(&fake, &dir, &tokens, &["--database-url", &url]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stderr.contains("pw-"), "no password in the output");
    let made = fake.clips_made().len();
    assert!(made >= HOURS as usize && run.lines.iter().all(|l| l["status"] == "clip"), "{:?}", run.lines);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT clip_id, vod_offset, confirmed FROM clips WHERE video_id = $1 ORDER BY detected_at",
            &[&VIDEO],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), made, "every clip is listed by the deployment");
    assert!(rows.iter().all(|r| r.get::<_, bool>(2)), "confirmed");
    // Twitch's offset is where the clip starts: its duration before its end, 5 s after the peak.
    let offsets: Vec<i32> = rows.iter().map(|r| r.get(1)).collect();
    let starts: Vec<i32> = fake
        .create_calls()
        .iter()
        .map(|call| call.vod.as_ref().unwrap().1 as i32 - call.duration.unwrap().ceil() as i32)
        .collect();
    assert_eq!(offsets, starts);
    let peaks: Vec<i64> = run.lines.iter().map(|l| l["vod_offset"].as_i64().unwrap()).collect();
    let ends: Vec<i64> = fake.create_calls().iter().map(|call| call.vod.as_ref().unwrap().1 as i64).collect();
    assert_eq!(ends, peaks.iter().map(|p| p + 5).collect::<Vec<_>>());

    // Run again: nothing more is made or stored.
    let again = from_vod(&fake, &dir, &tokens, &["--database-url", &url]).await;
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(fake.clips_made().len(), made);
    let count: i64 =
        client.query_one("SELECT count(*) FROM clips WHERE video_id = $1", &[&VIDEO]).await.unwrap().get(0);
    assert_eq!(count as usize, made);
    std::fs::remove_dir_all(&dir).unwrap();
}
