//! End-to-end tests of the `highlights` binary: golden detections on the real chat logs in
//! `shared/data/chat`, synthetic chat with labels, every input format, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn highlights(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_highlights")).args(args).output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The recorded logs live outside the repository, beside it in `shared/`; they are not copied in.
fn chat_dir() -> PathBuf {
    let dir = std::env::var_os("HIGHLIGHTS_CHAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/chat"));
    assert!(
        dir.is_dir(),
        "the real chat logs are expected in {} (set HIGHLIGHTS_CHAT_DIR to their folder)",
        dir.display()
    );
    dir
}

/// A scratch folder removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("highlights-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn summary(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().last().expect("a summary line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "detections differ from {}", path.display());
}

#[test]
fn golden_detections_on_the_real_logs() {
    let dir = chat_dir();
    for (file, k) in [
        ("theltwilson-2024-12-01.twitchdownloader.json", "4"),
        ("theltwilson-2024-12-01.twitchdownloader.json", "3"),
        ("theltwilson-2025-04-01.twitchdownloader.json", "4"),
        ("theltwilson-2025-04-01.twitchdownloader.json", "3"),
    ] {
        let path = dir.join(file);
        // The goldens pin the seed detector, bit for bit.
        let output = highlights(&[
            "backtest",
            path.to_str().unwrap(),
            "--detector",
            "seed",
            "--k",
            k,
            "--summary",
            "json",
        ]);
        let detections = stdout(&output);
        check_golden(&format!("{}.k{k}.jsonl", file.split('.').next().unwrap()), &detections);
        let summary = summary(&output);
        assert_eq!(summary["bad_records"], 0);
        assert_eq!(summary["broadcasters"], 1);
        assert_eq!(summary["detections"].as_u64().unwrap() as usize, detections.lines().count());
    }
}

#[test]
fn the_real_logs_have_the_expected_shape() {
    let dir = chat_dir();
    let first = dir.join("theltwilson-2024-12-01.twitchdownloader.json");
    let output =
        highlights(&["backtest", first.to_str().unwrap(), "--detector", "seed", "--summary", "json"]);
    let summary = summary(&output);
    assert_eq!(summary["messages"], 1265);
    assert_eq!(summary["commands_filtered"], 442);
    // v2, the default, ignores it: one user spamming is not a moment.
    assert_eq!(stdout(&highlights(&["backtest", first.to_str().unwrap(), "--summary", "none"])), "");
    // The seed's one detection is the "Abababababa" spam combo: peak inside the burst.
    let detection: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(detection["broadcaster_id"], "194814599");
    assert_eq!(detection["peak_at"], 1_733_098_531);
    let fired = detection["fired_at"].as_i64().unwrap();
    assert!((1_733_098_531..=1_733_098_531 + 25).contains(&fired));
}

#[test]
fn synthetic_chat_is_deterministic_and_its_bursts_are_found() {
    let dir = temp_dir("synth");
    let (chat, labels) = (dir.join("chat.jsonl"), dir.join("labels.jsonl"));
    let args = |out: &Path, labels: &Path| {
        vec![
            "synth".to_owned(),
            "--channels".into(),
            "20".into(),
            "--duration".into(),
            "3600".into(),
            "--seed".into(),
            "9".into(),
            "--out".into(),
            out.display().to_string(),
            "--labels".into(),
            labels.display().to_string(),
        ]
    };
    let run = |out: &Path, labels: &Path| {
        let args = args(out, labels);
        stdout(&highlights(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    };
    run(&chat, &labels);
    run(&dir.join("again.jsonl"), &dir.join("again-labels.jsonl"));
    assert_eq!(std::fs::read(&chat).unwrap(), std::fs::read(dir.join("again.jsonl")).unwrap());
    assert_eq!(std::fs::read(&labels).unwrap(), std::fs::read(dir.join("again-labels.jsonl")).unwrap());

    // The generator the seed detector was built against: Poisson chat from 5,000 uniformly random
    // viewers, where v2 also counts chance clusters of quiet channels (docs/detection.md).
    let output = highlights(&[
        "backtest",
        chat.to_str().unwrap(),
        "--detector",
        "seed",
        "--labels",
        labels.to_str().unwrap(),
        "--summary",
        "json",
    ]);
    let detections = stdout(&output);
    let summary = summary(&output);
    let score = &summary["labels"];
    assert!(score["labels"].as_u64().unwrap() >= 20, "{score}");
    assert!(score["recall"].as_f64().unwrap() >= 0.95, "{score}");
    assert!(score["precision"].as_f64().unwrap() >= 0.95, "{score}");
    assert!(summary["commands_filtered"].as_u64().unwrap() > 0);
    assert_eq!(summary["broadcasters"], 20);
    for line in detections.lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in [
            "broadcaster_id",
            "peak_at",
            "fired_at",
            "intensity",
            "message_count",
            "baseline_mean",
            "baseline_std",
        ] {
            assert!(!d[field].is_null(), "{field} missing in {line}");
        }
    }
}

#[test]
fn irc_and_jsonl_renderings_of_the_same_chat_agree() {
    let dir = temp_dir("formats");
    let chat = dir.join("chat.jsonl");
    stdout(&highlights(&["synth", "--channels", "3", "--duration", "1200", "--out", chat.to_str().unwrap()]));
    let irc = dir.join("chat.irc");
    let mut lines = String::from(":tmi.twitch.tv 001 justinfan123 :Welcome, GLHF!\nPING :tmi.twitch.tv\n");
    for line in std::fs::read_to_string(&chat).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        lines += &format!(
            "@badge-info=;emotes=;id=00000000-0000-0000-0000-000000000000;room-id={};tmi-sent-ts={} :{l}!{l}@{l}.tmi.twitch.tv PRIVMSG #c :{}\r\n",
            v["broadcaster_id"].as_str().unwrap(),
            v["sent_at"],
            v["text"].as_str().unwrap(),
            l = v["login"].as_str().unwrap(),
        );
    }
    std::fs::write(&irc, lines).unwrap();
    let from_jsonl = stdout(&highlights(&["backtest", chat.to_str().unwrap(), "--summary", "none"]));
    let from_irc = highlights(&["backtest", irc.to_str().unwrap(), "--summary", "json"]);
    assert_eq!(stdout(&from_irc), from_jsonl);
    assert!(!from_jsonl.is_empty());
    assert_eq!(summary(&from_irc)["ignored_lines"], 2);
    let forced = highlights(&["backtest", "--format", "irc", irc.to_str().unwrap(), "--summary", "none"]);
    assert_eq!(stdout(&forced), from_jsonl);
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let dir = temp_dir("bad");
    let path = dir.join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"broadcaster_id\":\"1\",\"sent_at\":1000,\"text\":\"a\"}\n{oops\n{\"broadcaster_id\":\"1\",\"text\":\"no time\"}\n{\"broadcaster_id\":\"1\",\"sent_at\":2000,\"text\":\"b\"}\n",
    )
    .unwrap();
    let output = highlights(&["backtest", path.to_str().unwrap(), "--summary", "json"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.jsonl: line 2:"), "{stderr}");
    assert!(stderr.contains("bad.jsonl: line 3:") && stderr.contains("sent_at"), "{stderr}");
    let summary = summary(&output);
    assert_eq!((summary["messages"].as_u64(), summary["bad_records"].as_u64()), (Some(2), Some(2)));
}

#[test]
fn invalid_settings_and_missing_files_are_clear_errors() {
    let output = highlights(&["backtest", "/nonexistent/chat.jsonl"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open /nonexistent/chat.jsonl"));

    let dir = temp_dir("settings");
    let path = dir.join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    let output = highlights(&["backtest", path.to_str().unwrap(), "--warmup-fraction", "1.5"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("min_baseline_fraction must be strictly between 0 and 1"), "{stderr}");
    assert!(!stderr.contains("panicked"));

    let output = highlights(&["synth", "--channels", "0"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn on_the_realistic_scenario_v2_beats_the_seed_detector_and_ignores_spam_and_bots() {
    let dir = temp_dir("realistic");
    let (chat, labels) = (dir.join("chat.jsonl"), dir.join("labels.jsonl"));
    stdout(&highlights(&[
        "synth",
        "--scenario",
        "realistic",
        "--channels",
        "12",
        "--duration",
        "3600",
        "--seed",
        "3",
        "--out",
        chat.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]));
    let score = |mode: &str| {
        let output = highlights(&[
            "backtest",
            chat.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--detector",
            mode,
            "--summary",
            "json",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        summary(&output)["labels"].clone()
    };
    let (seed, v2) = (score("seed"), score("v2"));
    let number = |score: &serde_json::Value, field: &str| score[field].as_f64().unwrap();
    let false_positives =
        |score: &serde_json::Value, kind: &str| score["false_positives_by_kind"][kind].as_u64().unwrap();
    assert!(number(&v2, "labels") >= 40.0, "a corpus worth scoring: {v2}");
    assert!(
        false_positives(&seed, "spam") + false_positives(&seed, "bots") > 0,
        "the corpus has the seed's weakness: {seed}"
    );
    assert_eq!((false_positives(&v2, "spam"), false_positives(&v2, "bots")), (0, 0), "{v2}");
    assert!(number(&v2, "precision") > number(&seed, "precision"), "{v2} vs {seed}");
    assert!(number(&v2, "recall") > number(&seed, "recall"), "{v2} vs {seed}");
    assert!(number(&v2, "delay_p50_s") < number(&seed, "delay_p50_s"), "{v2} vs {seed}");
    assert!(number(&v2, "precision") >= 0.9 && number(&v2, "recall") >= 0.9, "{v2}");
}

/// `(broadcaster id, k, moments claimed)` of each line `highlights tune` prints.
fn suggestions(printed: &str) -> Vec<(String, String, usize)> {
    printed
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
            let comment = line.split_once("# ").unwrap().1;
            (
                after("--broadcaster-id").to_owned(),
                after("--k").to_owned(),
                comment.split(' ').next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn tune_suggests_per_channel_thresholds_that_backtest_reproduces() {
    let dir = temp_dir("tune");
    let chat = dir.join("chat.jsonl");
    for scenario in ["bursts", "realistic"] {
        let mode = if scenario == "realistic" { "v2" } else { "seed" };
        stdout(&highlights(&[
            "synth",
            "--scenario",
            scenario,
            "--channels",
            "4",
            "--duration",
            "7200",
            "--seed",
            "5",
            "--out",
            chat.to_str().unwrap(),
        ]));
        let printed =
            stdout(&highlights(&["tune", chat.to_str().unwrap(), "--per-hour", "1", "--detector", mode]));
        let found = suggestions(&printed);
        assert_eq!(found.len(), 4, "one line per channel: {printed}");
        for (id, k, claimed) in found {
            assert!(claimed <= 2, "at most one an hour over two hours: {printed}");
            let detections =
                stdout(&highlights(&["backtest", chat.to_str().unwrap(), "--detector", mode, "--k", &k]));
            let of_channel =
                detections.lines().filter(|l| l.contains(&format!("\"broadcaster_id\":\"{id}\""))).count();
            assert_eq!(of_channel, claimed, "{mode}: backtest --k {k} on {id} reproduces the suggestion");
            // The most sensitive within the budget: a clearly lower k gives more.
            let lower = format!("{:.2}", k.parse::<f64>().unwrap() * 0.8);
            let more =
                stdout(&highlights(&["backtest", chat.to_str().unwrap(), "--detector", mode, "--k", &lower]));
            let more = more.lines().filter(|l| l.contains(&format!("\"broadcaster_id\":\"{id}\""))).count();
            assert!(more >= claimed, "{mode}: k {lower} on {id} gives {more}");
        }
    }
    let refused = highlights(&["tune", chat.to_str().unwrap(), "--per-hour", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--per-hour must be a positive number"));
}

/// `--clips-per-hour N`: no channel gets more than N moments in any hour, the ones kept are a
/// subset of those without a budget, and once half the budget is spent only moments at least as
/// strong as the hour's median pass.
#[test]
fn a_clip_budget_caps_each_channel_s_hour() {
    let dir = temp_dir("budget");
    let chat = dir.join("chat.jsonl");
    let chat = chat.to_str().unwrap();
    stdout(&highlights(&["synth", "--channels", "6", "--duration", "7200", "--seed", "11", "--out", chat]));
    let lines = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["backtest", chat, "--k", "2.5", "--cooldown", "10"];
        args.extend(extra);
        stdout(&highlights(&args)).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let key = |d: &serde_json::Value| {
        (d["broadcaster_id"].as_str().unwrap().to_owned(), d["peak_at"].as_i64().unwrap())
    };
    let free = lines(&[]);
    let budgeted = lines(&["--clips-per-hour", "3"]);
    assert!(budgeted.len() < free.len(), "the budget removed some: {} of {}", budgeted.len(), free.len());
    let free_keys: std::collections::BTreeSet<_> = free.iter().map(key).collect();
    for (i, d) in budgeted.iter().enumerate() {
        assert!(free_keys.contains(&key(d)), "only moments the detector found: {d}");
        let (id, at) = key(d);
        let hour: Vec<f64> = budgeted[..i]
            .iter()
            .filter(|e| key(e).0 == id && at - key(e).1 < 3600)
            .map(|e| e["intensity"].as_f64().unwrap())
            .collect();
        assert!(hour.len() < 3, "{id}: a fourth moment within the hour of {at}");
        if !hour.is_empty() && 2 * hour.len() >= 3 {
            let mut sorted = hour.clone();
            sorted.sort_by(f64::total_cmp);
            assert!(
                d["intensity"].as_f64().unwrap() >= sorted[(hour.len() - 1) / 2],
                "{d} is weaker than the hour"
            );
        }
    }
    let refused = highlights(&["backtest", chat, "--clips-per-hour", "0"]);
    assert_eq!(refused.status.code(), Some(1), "0 is not a budget");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("clips_per_hour must be between 1 and 60"));
}
