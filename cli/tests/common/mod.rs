//! What the `highlights serve` tests share: a seeded database of the local stack and the server
//! process on a free port.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use highlights_adapters::postgres::Database;
use highlights_adapters::resources::Resources;
use highlights_adapters::sample_clips::SampleClips;
use highlights_adapters::stack_env::{StackEnv, url_as_user};
use highlights_test_support::irc::FakeIrc;

/// GET `url` and parse its body as JSON (the API's pages), failing the test on any error.
pub async fn get_json(url: &str) -> serde_json::Value {
    highlights_adapters::tls::http_client().get(url).send().await.unwrap().json().await.unwrap()
}

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh database with 60 sample clips over 3 streamers, the newest an hour old.
pub async fn seeded_database(name: &str) -> String {
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

pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL from the first line a serving `highlights <command>` prints on stderr
/// (`serving http://...`), that line, and the rest of stderr to drain.
fn serving_url(child: &mut Child, command: &str) -> (String, String, BufReader<std::process::ChildStderr>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .strip_prefix("serving ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line from highlights {command}: {line:?}"))
        .to_owned();
    (url, line, stderr)
}

/// `highlights serve` on `database_url` as the API's own login user (read-only), as it runs
/// against the local stack.
pub fn serve(database_url: &str, web_dir: &Path) -> Server {
    let api = Resources::defaults().database_user("api").cloned().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_highlights"))
        .args(["serve", "--listen", "127.0.0.1:0", "--web-dir"])
        .arg(web_dir)
        .env("DATABASE_URL", database_url)
        .env(&api.url_env, url_as_user(database_url, &api.user).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, _, mut stderr) = serving_url(&mut child, "serve");
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Server { child, url }
}

/// A fresh data directory for `highlights dev` (removed first if a previous run left it).
pub fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("highlights-dev-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A running `highlights dev`: its URL and everything it has printed on stderr so far.
pub struct Dev {
    pub child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dev(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
    let mut command = Command::new(env!("CARGO_BIN_EXE_highlights"));
    command
        .arg("dev")
        .args(["--listen", "127.0.0.1:0", "--web-dir"])
        .arg(repository().join("web"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let (url, line, stderr) = serving_url(&mut child, "dev");
    let printed = Arc::new(Mutex::new(line));
    let sink = printed.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    Dev { child, url, stderr: printed }
}

/// Detector settings that let real-time chat make a moment within seconds: a 10-second baseline.
pub const QUICK_DETECTOR: [&str; 10] =
    ["--baseline", "10", "--window", "1", "--warmup-fraction", "0.5", "--hold-cap", "3", "--cooldown", "5"];

/// Chat on `channel` (room `room_id`) as it happens, stamped with the wall clock as Twitch
/// stamps it: 12 seconds of 0–3 messages a second, then 3 seconds of 60 a second. The pauses
/// pace the scenario in real time (the ingester's watermarks follow the wall clock); nothing
/// waits on the system under test. Returns the burst's first second and the messages sent.
/// What the burst's chatters say: a moment's card and title quote it.
pub const BURST_TEXT: &str = "KEKW KEKW";

pub async fn send_live_chat_with_a_burst(irc: &FakeIrc, channel: &str, room_id: u64) -> (i64, u64) {
    let unix_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let first_second = unix_ms() / 1000 + 1;
    let begin =
        tokio::time::Instant::now() + Duration::from_millis((first_second * 1000 - unix_ms()).max(0) as u64);
    let mut n = 0u64;
    for second in 0..15i64 {
        tokio::time::sleep_until(begin + Duration::from_secs(second as u64)).await;
        let count = if second >= 12 { 60 } else { [1, 2, 0, 3][(second % 4) as usize] };
        for _ in 0..count {
            let id = format!("00000000-0000-4000-8000-{n:012}");
            let line =
                FakeIrc::chat_line(channel, room_id, ("viewer", 1000 + n % 50), unix_ms(), &id, BURST_TEXT);
            irc.send_raw(Some(channel), &line);
            n += 1;
        }
    }
    (first_second + 12, n)
}
