//! `highlights dev`, the whole product in one process, run as a user runs it: the binary, its
//! data directory, its HTTP port. Detections are compared with `highlights backtest` on the same
//! chat, across a `kill -9`, and live chat comes from a fake Twitch IRC server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use highlights_embedded::Embedded;
use highlights_test_support::irc::FakeIrc;
use highlights_test_support::{CreateAnswer, FAKE_VOD_ID, FakeTwitch, OUR_USER_ID};

const DEADLINE: Duration = Duration::from_secs(120);

mod common;
use common::{QUICK_DETECTOR, data_dir, dev, get_json, repository, send_live_chat_with_a_burst};

/// Unix seconds of an RFC 3339 time, as the API writes them.
fn unix_seconds(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// Runs `highlights dev --exit-when-done` to the end.
fn dev_to_the_end(data: &Path, files: &[PathBuf], extra: &[&str]) {
    let mut args: Vec<&str> = vec!["--exit-when-done"];
    args.extend_from_slice(extra);
    args.push("--replay");
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(files.iter().map(String::as_str));
    let mut run = dev(data, &args, &[]);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "highlights dev failed: {}", run.stderr.lock().unwrap());
}

/// `(broadcaster_id, peak second, intensity to 6 decimals)` of every detection `backtest` prints.
fn backtest(files: &[PathBuf]) -> Vec<(String, i64, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_highlights")).arg("backtest").args(files).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut found: Vec<_> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let d: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                d["broadcaster_id"].as_str().unwrap().to_owned(),
                d["peak_at"].as_i64().unwrap(),
                format!("{:.6}", d["intensity"].as_f64().unwrap()),
            )
        })
        .collect();
    found.sort();
    found
}

/// Every moment the API lists, in the same shape (following the cursor).
async fn listed(url: &str) -> Vec<(String, i64, String)> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_url = format!("{url}v1.0/clip?limit=100");
        if let Some(cursor) = &cursor {
            page_url.push_str(&format!("&cursor={cursor}"));
        }
        let page = get_json(&page_url).await;
        for clip in page["clips"].as_array().unwrap() {
            assert_eq!(clip["kind"], "moment", "{clip}");
            found.push((
                clip["broadcaster_id"].as_str().unwrap().to_owned(),
                unix_seconds(clip["detected_at"].as_str().unwrap()),
                format!("{:.6}", clip["intensity"].as_f64().unwrap()),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    found.sort();
    found
}

/// `(video id, started at, length)` of the VOD each TwitchDownloader file is the chat of.
fn vods_of(files: &[PathBuf]) -> Vec<(String, i64, i64)> {
    files
        .iter()
        .map(|file| {
            let export: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            let video = &export["video"];
            let started = unix_seconds(video["created_at"].as_str().unwrap());
            (video["id"].as_str().unwrap().to_owned(), started, video["length"].as_i64().unwrap())
        })
        .collect()
}

fn recorded_chat() -> Vec<PathBuf> {
    let dir = repository().join("../shared/data/chat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn synthetic_chat(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("synth.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["synth", "--channels", "20", "--duration", "3600", "--out"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    file
}

#[tokio::test]
async fn a_replay_lists_exactly_the_detections_backtest_prints() {
    let data = data_dir("replay");
    let files = recorded_chat();
    dev_to_the_end(&data, &files, &["--speed", "max"]);
    let expected = backtest(&files);
    assert!(!expected.is_empty(), "the recorded chat has detections");
    // Started again on the same data: nothing left to do, and it serves what it stored.
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec!["--replay"];
    args.extend(names.iter().map(String::as_str));
    let again = dev(&data, &args, &[]);
    assert_eq!(listed(&again.url).await, expected);
    // Each moment links to its second in the VOD whose chat it came from.
    let vods = vods_of(&files);
    let page = get_json(&format!("{}v1.0/clip?limit=100", again.url)).await;
    for moment in page["clips"].as_array().unwrap() {
        let at = unix_seconds(moment["detected_at"].as_str().unwrap());
        let (video, started, _) =
            vods.iter().find(|(_, started, length)| (*started..=started + length).contains(&at)).unwrap();
        let offset = at - started;
        assert_eq!(moment["vod_offset"], offset, "{moment}");
        let link = format!(
            "https://www.twitch.tv/videos/{video}?t={}h{}m{}s",
            offset / 3600,
            offset / 60 % 60,
            offset % 60
        );
        assert_eq!(moment["vod_url"], link, "{moment}");
    }
    drop(again);
    std::fs::remove_dir_all(data).unwrap();
}

#[tokio::test]
async fn a_kill_9_mid_replay_loses_and_doubles_nothing() {
    let data = data_dir("kill");
    let file = synthetic_chat(&data.with_extension("input"));
    let files = vec![file];
    let expected = backtest(&files);
    assert!(expected.len() >= 20, "{} detections", expected.len());

    // An uninterrupted run tells how many stream records the replay makes.
    let clean = data_dir("kill-clean");
    dev_to_the_end(&clean, &files, &[]);
    let records = Embedded::open(&clean).unwrap().stream_end().unwrap();
    std::fs::remove_dir_all(&clean).unwrap();

    // Slow enough to be caught in the middle: 3600 s of chat at 300x is 12 s.
    let file_arg = files[0].display().to_string();
    let mut victim = dev(&data, &["--speed", "300", "--replay", &file_arg], &[]);
    let store = Embedded::open(&data).unwrap();
    let started = Instant::now();
    while store.stream_end().unwrap() < records / 3 {
        assert!(
            started.elapsed() < DEADLINE,
            "the replay did not progress: {}",
            victim.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.child.kill().unwrap(); // SIGKILL
    victim.child.wait().unwrap();
    let cut_at = store.stream_end().unwrap();
    assert!(cut_at < records, "killed before the end ({cut_at} of {records})");
    drop(store);

    dev_to_the_end(&data, &files, &[]);
    let store = Embedded::open(&data).unwrap();
    assert_eq!(store.stream_end().unwrap(), records, "every record appended once");
    // Counted, not read off the last row number: a detection replayed after the kill is ignored
    // by the table's uniqueness, and SQLite may skip the row number it would have had.
    let recorded = store.highlights_after(0, 1_000_000).unwrap();
    assert_eq!(recorded.len(), expected.len(), "every detection recorded once");
    let served = dev(&data, &["--replay", &file_arg], &[]);
    assert_eq!(listed(&served.url).await, expected);
    drop(served);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(data.with_extension("input")).unwrap();
}

#[tokio::test]
async fn live_chat_from_twitch_irc_becomes_a_moment_the_api_lists() {
    let irc = FakeIrc::start(&[("alpha", 515151), ("beta", 525252)]).await;
    let data = data_dir("live");
    let mut args = vec!["--channel", "alpha", "--channel", "Beta"];
    args.extend(QUICK_DETECTOR);
    let served = dev(&data, &args, &[("TWITCH_IRC_ADDR", &irc.url())]);
    assert!(
        irc.wait_joined(&["alpha", "beta"], DEADLINE).await,
        "never joined: {}",
        served.stderr.lock().unwrap()
    );
    let (burst_s, _) = send_live_chat_with_a_burst(&irc, "alpha", 515151).await;
    let moments = clips_of_515151(&served, "a moment", |page| page["count"].as_u64().unwrap() > 0).await;
    let moment = &moments["clips"][0];
    assert_eq!(moment["kind"], "moment");
    let peak = unix_seconds(moment["detected_at"].as_str().unwrap());
    assert!((burst_s..burst_s + 3).contains(&peak), "the peak is in the burst ({burst_s}..): {moment}");
    assert_eq!(moment["clip_id"], format!("moment-515151-{peak}"));
    assert_eq!(moment["streamer_login"], "alpha", "named by the login Twitch confirmed: {moment}");
    let curve: Vec<u64> = moment["curve"].as_array().unwrap().iter().filter_map(|v| v.as_u64()).collect();
    assert_eq!(curve.iter().max(), Some(&60), "the card's curve reaches the burst's 60 a second: {moment}");
    assert!(curve.len() >= 10 && curve[0] <= 3, "calm chat before the burst: {curve:?}");
    // The burst's 50 chatters all say "KEKW KEKW", 60 messages a second for 3 seconds: one
    // voice per chatter and second (a second of sending may straddle two of event time).
    let phrase = &moment["phrases"][0];
    assert_eq!(phrase["phrase"], "KEKW", "what chat said, normalised: {moment}");
    let voices = phrase["count"].as_u64().unwrap();
    assert!((50..=180).contains(&voices), "a voice per chatter and second, no more: {moment}");
    assert_eq!(moment["title"], format!("KEKW ×{voices}"), "the moment is titled by it");
    assert!(moment["url"].is_null() && moment["embed_url"].is_null(), "{moment}");
    let beta = get_json(&format!("{}v1.0/clip?broadcaster_id=525252", served.url)).await;
    assert_eq!(beta["count"], 0, "no chat, no moment");
    drop(served);
    std::fs::remove_dir_all(&data).unwrap();
}

/// `highlights dev --channel alpha` with clips: the token file and the app's credentials, Helix
/// and OAuth on `twitch`.
fn dev_with_clips(data: &Path, irc: &FakeIrc, twitch: &FakeTwitch, token_file: &Path) -> common::Dev {
    dev_with_clips_and(data, irc, twitch, token_file, &[])
}

/// [`dev_with_clips`] with more environment.
fn dev_with_clips_and(
    data: &Path,
    irc: &FakeIrc,
    twitch: &FakeTwitch,
    token_file: &Path,
    more: &[(&str, &str)],
) -> common::Dev {
    let mut args = vec!["--channel", "alpha", "--twitch-tokens", token_file.to_str().unwrap()];
    args.extend(QUICK_DETECTOR);
    let (irc, helix, oauth) = (irc.url(), twitch.helix_url(), twitch.oauth_url());
    let mut env = vec![
        ("TWITCH_IRC_ADDR", irc.as_str()),
        ("TWITCH_CLIENT_ID", "dev-client"),
        ("TWITCH_CLIENT_SECRET", "app-secret-value"),
        ("TWITCH_HELIX_URL", &helix),
        ("TWITCH_OAUTH2_URL", &oauth),
    ];
    env.extend(more);
    dev(data, &args, &env)
}

/// A confirmed clip is announced to the webhook, signed, at least once and here exactly once
/// delivered: the receiver's first answer (503) is retried with the same idempotency key; a
/// restart announces nothing again.
#[tokio::test]
async fn a_confirmed_clip_is_announced_to_the_webhook() {
    use highlights_test_support::webhook::FakeWebhook;
    let irc = FakeIrc::start(&[("alpha", 515151)]).await;
    let twitch = FakeTwitch::start().await;
    let webhook = FakeWebhook::start(&[503]).await;
    let data = data_dir("announce");
    let token_file = data.with_extension("tokens.json");
    twitch.accept_token("access-value");
    write_token_file(&token_file, "access-value", "refresh-value", 4_000_000_000);
    let announce = [("ANNOUNCE_URL", webhook.url()), ("ANNOUNCE_SIGNING_KEY", "signing-key-value")];
    let served = dev_with_clips_and(&data, &irc, &twitch, &token_file, &announce);
    assert!(irc.wait_joined(&["alpha"], DEADLINE).await, "never joined: {}", served.stderr.lock().unwrap());
    send_live_chat_with_a_burst(&irc, "alpha", 515151).await;
    let page = confirmed_clips(&served).await;
    let clip = &page["clips"][0];
    assert!(
        webhook.wait_for(DEADLINE, |seen| seen.len() >= 2).await,
        "announced: {}",
        served.stderr.lock().unwrap()
    );
    let seen = webhook.seen();
    assert_eq!(seen.len(), 2, "the 503, then the delivery");
    for (headers, body) in &seen {
        assert_eq!(body["idempotency_key"], format!("clip-{}", clip["clip_id"].as_str().unwrap()));
        assert_eq!(body["clip"]["url"], clip["url"]);
        assert_eq!(body["clip"]["title"], clip["title"], "Twitch's title, which is ours: {body}");
        assert!(body["clip"]["title"].as_str().unwrap().starts_with("KEKW ×"), "{body}");
        let signature = headers["x-highlights-signature"].to_str().unwrap();
        let timestamp: i64 = headers["x-highlights-timestamp"].to_str().unwrap().parse().unwrap();
        let expected = highlights_adapters::announce::signature(
            &highlights_adapters::twitch::Secret::new("signing-key-value"),
            timestamp,
            serde_json::to_string(body).unwrap().as_bytes(),
        );
        assert_eq!(signature, expected);
    }
    let output = served.stderr.lock().unwrap().clone();
    drop(served);
    for secret in ["TOPSECRET", "signing-key-value", "access-value"] {
        assert!(!output.contains(secret), "a secret reached the output: {output}");
    }
    let again = dev_with_clips_and(&data, &irc, &twitch, &token_file, &announce);
    confirmed_clips(&again).await;
    let store = Embedded::open(&data).unwrap();
    assert_eq!(store.announcement_counts().unwrap(), [("delivered".to_owned(), 1)]);
    drop(again);
    assert_eq!(webhook.seen().len(), 2, "nothing announced twice after the restart");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(&token_file).unwrap();
}

fn write_token_file(path: &Path, access: &str, refresh: &str, expires_at: i64) {
    let token = serde_json::json!({
        "access_token": access, "refresh_token": refresh, "expires_at": expires_at,
        "scopes": ["clips:edit"], "user_id": OUR_USER_ID,
    });
    std::fs::write(path, token.to_string()).unwrap();
}

/// The API's page of broadcaster 515151's clips, polled until `done` holds for it.
async fn clips_of_515151(
    served: &common::Dev,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let page = get_json(&format!("{}v1.0/clip?broadcaster_id=515151", served.url)).await;
        if done(&page) {
            return page;
        }
        assert!(started.elapsed() < DEADLINE, "no {what}: {page} {}", served.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The clips the API lists for broadcaster 515151, once the first is confirmed.
async fn confirmed_clips(served: &common::Dev) -> serde_json::Value {
    clips_of_515151(served, "confirmed clip", |page| {
        page["count"].as_u64().unwrap() > 0 && page["clips"][0]["confirmed"] == true
    })
    .await
}

/// With a token file and the app's credentials, a burst in a live channel becomes a real Twitch
/// clip through the clipper's handler: exactly one, although Twitch's answer to Create Clip is
/// cut after the clip was made. The expired token is refreshed first and the new one written back
/// to the file (still private); no token or secret reaches the output.
#[tokio::test(flavor = "multi_thread")]
async fn with_twitch_credentials_a_live_burst_becomes_exactly_one_twitch_clip() {
    use std::os::unix::fs::PermissionsExt as _;
    let irc = FakeIrc::start(&[("alpha", 515151)]).await;
    let twitch = FakeTwitch::start().await;
    twitch.allow_refresh("old-refresh-value", "fresh-access-value", "next-refresh-value");
    twitch.script(&[CreateAnswer::AcceptThenReset]);
    let data = data_dir("clips");
    let token_file = data.with_extension("tokens.json");
    write_token_file(&token_file, "old-access-value", "old-refresh-value", 1);
    let served = dev_with_clips(&data, &irc, &twitch, &token_file);
    assert!(irc.wait_joined(&["alpha"], DEADLINE).await, "never joined: {}", served.stderr.lock().unwrap());
    let (burst_s, _) = send_live_chat_with_a_burst(&irc, "alpha", 515151).await;
    let page = confirmed_clips(&served).await;
    let clip = &page["clips"][0];
    let made = twitch.clips_made();
    assert_eq!(made.len(), 1, "one Twitch clip: {made:?}");
    assert_eq!((page["count"].as_u64(), twitch.create_calls().len()), (Some(1), 1), "looked up, not retried");
    assert!(
        twitch.create_calls().iter().all(|c| c.token == "fresh-access-value"),
        "refreshed before the call"
    );
    assert_eq!(clip["kind"], "clip");
    assert_eq!(clip["clip_id"], made[0].0);
    assert_eq!(clip["url"], format!("https://clips.twitch.tv/{}", made[0].0));
    assert_eq!(
        clip["vod_url"],
        format!("https://www.twitch.tv/videos/{FAKE_VOD_ID}?t=0h20m34s"),
        "vod_offset 1234"
    );
    let peak = unix_seconds(clip["detected_at"].as_str().unwrap());
    assert!((burst_s..burst_s + 3).contains(&peak), "the peak is in the burst ({burst_s}..): {clip}");
    // Timed on the moment: the clip begins a few seconds before the burst, and is no longer.
    let call = &twitch.create_calls()[0];
    let (duration, call_s) = (call.duration.expect("a timed clip") as i64, (call.at_unix_ms / 1000) as i64);
    assert!((10..=20).contains(&duration), "{duration} s");
    assert!(
        call_s - duration <= burst_s - 4,
        "begins before the burst ({burst_s}): {duration} s at {call_s}"
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    assert_eq!(
        (stored["access_token"].as_str(), stored["refresh_token"].as_str()),
        (Some("fresh-access-value"), Some("next-refresh-value"))
    );
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(twitch.refresh_calls(), 1);
    let output = served.stderr.lock().unwrap().clone();
    drop(served);
    assert!(output.contains("Create Clip gave no clear answer"), "the answer was cut: {output}");
    for secret in [
        "old-access-value",
        "old-refresh-value",
        "fresh-access-value",
        "next-refresh-value",
        "app-secret-value",
    ] {
        assert!(!output.contains(secret), "a secret reached the output: {output}");
    }
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(&token_file).unwrap();
}

/// `kill -9` while Twitch holds its answer to a Create Clip that made the clip, then the same
/// command again: the restarted clipper finds its recorded intent, looks the clip up and adopts
/// it. One Twitch clip, one listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_while_create_clip_is_unanswered_still_leaves_exactly_one_clip() {
    let irc = FakeIrc::start(&[("alpha", 515151)]).await;
    let twitch = FakeTwitch::start().await;
    twitch.accept_token("access-value");
    twitch.script(&[CreateAnswer::AcceptThenHang]);
    let data = data_dir("clips-kill");
    let token_file = data.with_extension("tokens.json");
    write_token_file(&token_file, "access-value", "refresh-value", i64::from(i32::MAX));
    let mut first = dev_with_clips(&data, &irc, &twitch, &token_file);
    assert!(irc.wait_joined(&["alpha"], DEADLINE).await, "never joined: {}", first.stderr.lock().unwrap());
    send_live_chat_with_a_burst(&irc, "alpha", 515151).await;
    let started = Instant::now();
    while twitch.create_calls().is_empty() {
        assert!(started.elapsed() < DEADLINE, "no Create Clip: {}", first.stderr.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.child.kill().unwrap(); // SIGKILL, with the call in flight
    first.child.wait().unwrap();
    assert_eq!(twitch.clips_made().len(), 1, "the hanging call made its clip");
    let again = dev_with_clips(&data, &irc, &twitch, &token_file);
    let page = confirmed_clips(&again).await;
    let made = twitch.clips_made();
    assert_eq!(made.len(), 1, "no second clip: {made:?}");
    assert_eq!(twitch.create_calls().len(), 1, "adopted, not made again");
    assert_eq!(page["count"], 1);
    assert_eq!(page["clips"][0]["clip_id"], made[0].0);
    drop(again);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_file(&token_file).unwrap();
}

/// The open page of `highlights dev` shows a new moment without reloading (Server-Sent Events),
/// in Chromium; the browser side is `web/tests/dev-live.mjs`.
#[tokio::test]
async fn the_open_page_shows_a_new_moment_without_reloading() {
    open_page_sees_a_new_moment("stream", "page").await;
}

/// Behind API Gateway nothing streams: the page polls in insertion order instead.
#[tokio::test]
async fn the_open_page_shows_a_new_moment_by_polling_when_the_server_cannot_stream() {
    open_page_sees_a_new_moment("poll", "page-poll").await;
}

/// Runs web/tests/dev-live.mjs against `highlights dev --channel` with `LIVE_TRANSPORT=transport`.
async fn open_page_sees_a_new_moment(transport: &str, name: &str) {
    use tokio::io::AsyncBufReadExt as _;
    let web = repository().join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/"
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (scripts/test does)"
    );
    let irc = FakeIrc::start(&[("alpha", 515151)]).await;
    let data = data_dir(name);
    let mut args = vec!["--channel", "alpha"];
    args.extend(QUICK_DETECTOR);
    let served = dev(&data, &args, &[("TWITCH_IRC_ADDR", &irc.url())]);
    assert!(irc.wait_joined(&["alpha"], DEADLINE).await, "never joined: {}", served.stderr.lock().unwrap());
    let mut browser = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/dev-live.mjs"])
        .current_dir(&web)
        .env("SITE_URL", &served.url)
        .env("CHROMIUM_PATH", &chromium)
        .env("LIVE_TRANSPORT", transport)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let ready = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("READY") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the page never got ready: {printed}");
    send_live_chat_with_a_burst(&irc, "alpha", 515151).await;
    let rest = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
        }
    });
    let status = browser.wait().await.unwrap();
    rest.await.unwrap();
    assert!(status.success(), "the browser test failed; dev said: {}", served.stderr.lock().unwrap());
    drop(served);
    std::fs::remove_dir_all(&data).unwrap();
}

fn channel(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_highlights"))
        .arg("channel")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

/// Synthetic chat whose lines name their channel (`chan<broadcaster id>`), as real exports do.
fn named_synthetic_chat(dir: &Path) -> PathBuf {
    let plain = synthetic_chat(dir);
    let named = dir.join("named.jsonl");
    let text: String = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = value["broadcaster_id"].to_string().trim_matches('"').to_owned();
            value["channel"] = format!("chan{id}").into();
            value.to_string() + "\n"
        })
        .collect();
    std::fs::write(&named, text).unwrap();
    named
}

#[tokio::test]
async fn a_channel_s_own_settings_change_what_dev_detects_for_it_alone() {
    let data = data_dir("channel-settings");
    let chat = named_synthetic_chat(&data.join("chat"));
    let expected = backtest(std::slice::from_ref(&chat));
    let quiet = expected[0].0.clone();
    assert!(expected.iter().any(|d| d.0 != quiet), "other channels have detections too");

    // Before dev ever ran: only by id, and a login it cannot know is refused with the way out.
    let unknown = channel(&data, &["set", "someone", "--k", "5"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", String::from_utf8_lossy(&unknown.stderr));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no `highlights dev` data"));
    let login = format!("chan{quiet}");
    let set = channel(&data, &["set", &login, "--broadcaster-id", &quiet, "--k", "1000000"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert_eq!(String::from_utf8_lossy(&set.stdout), format!("{login} ({quiet}): k 1000000\n"));
    let refused = channel(&data, &["set", &login, "--k", "-2"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("k must be a finite number greater than 0"));

    dev_to_the_end(&data, std::slice::from_ref(&chat), &[]);
    let again = dev(&data, &["--replay", &chat.display().to_string()], &[]);
    let want: Vec<_> = expected.iter().filter(|d| d.0 != quiet).cloned().collect();
    assert_eq!(listed(&again.url).await, want, "the channel set insensitive has no moments, the rest all");
    drop(again);

    // The replay named the channels: logins now resolve, and settings merge.
    let other = want[0].0.clone();
    let by_login =
        channel(&data, &["set", &format!("CHAN{other}"), "--cooldown", "90", "--min-chatters", "7"]);
    assert!(by_login.status.success(), "{}", String::from_utf8_lossy(&by_login.stderr));
    let more = channel(&data, &["set", &login, "--clips-per-hour", "4"]);
    assert!(more.status.success(), "{}", String::from_utf8_lossy(&more.stderr));
    assert!(String::from_utf8_lossy(&more.stderr).contains("a running detector uses these within"));
    let shown = String::from_utf8_lossy(&channel(&data, &["show"]).stdout).into_owned();
    let mut lines = vec![
        format!("{login} ({quiet}): k 1000000, at most 4 clips an hour"),
        format!("chan{other} ({other}): cooldown 90 s, min chatters 7"),
    ];
    lines.sort();
    assert_eq!(shown.lines().collect::<Vec<_>>(), lines);
    let cleared = channel(&data, &["clear", &login]);
    assert!(String::from_utf8_lossy(&cleared.stderr).contains("runs on the deployment's settings again"));
    assert_eq!(String::from_utf8_lossy(&channel(&data, &["show", &login]).stdout), "");
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn bad_input_is_refused_clearly_before_anything_runs() {
    let data = data_dir("bad");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_highlights"))
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--web-dir")
            .arg(repository().join("web"))
            .args(args)
            .output()
            .unwrap()
    };
    let missing = run(&["--replay", "/nonexistent/chat.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("cannot read /nonexistent/chat.jsonl"), "{stderr}");
    assert!(!stderr.contains("serving"), "nothing started: {stderr}");
    let window = run(&["--window", "0"]);
    assert_eq!(window.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&window.stderr).contains("window_seconds must be at least 1"));
    let speed = run(&["--speed", "fast"]);
    assert_eq!(speed.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&speed.stderr).contains("neither `max` nor a positive number"));
    let both = run(&["--replay", "a.jsonl", "--channel", "x"]);
    assert_eq!(both.status.code(), Some(2), "--replay and --channel exclude each other");
    let _ = std::fs::remove_dir_all(&data);
}
