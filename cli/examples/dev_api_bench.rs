//! `scripts/bench dev`: `highlights dev --replay FILE --speed max` while clients read the API, as
//! people would open the site during a replay. Prints the replay's messages per second and the
//! latency percentiles of `GET /v1.0/clip` (the site's first page) measured meanwhile.
//!
//! Usage: `dev_api_bench HIGHLIGHTS_BIN WEB_DIR DATA_DIR CLIENTS FILE...` (the script builds and
//! passes everything).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bin, web, data, clients, files @ ..] = args.as_slice() else {
        anyhow::bail!("usage: dev_api_bench HIGHLIGHTS_BIN WEB_DIR DATA_DIR CLIENTS FILE...");
    };
    let clients: usize = clients.parse()?;
    let _ = std::fs::remove_dir_all(data);
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["dev", "--listen", "127.0.0.1:0", "--speed", "max", "--exit-when-done", "--web-dir", web])
        .args(["--data-dir", data, "--replay"])
        .args(files)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    let url = loop {
        line.clear();
        anyhow::ensure!(stderr.read_line(&mut line)? > 0, "highlights dev ended before serving");
        if let Some(url) = line.strip_prefix("serving ").and_then(|l| l.split_whitespace().next()) {
            break format!("{url}v1.0/clip");
        }
    };
    // The rest of dev's output, in the background: its last line has the counts.
    let summary = std::thread::spawn(move || stderr.lines().map_while(Result::ok).last().unwrap_or_default());
    let done = Arc::new(AtomicBool::new(false));
    let http = highlights_adapters::tls::http_client();
    let readers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, done) = (http.clone(), url.clone(), done.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    match http.get(&url).send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(asked.elapsed());
                        }
                        _ => break, // dev is gone
                    }
                }
                latencies
            })
        })
        .collect();
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for reader in readers {
        latencies.extend(reader.await?);
    }
    anyhow::ensure!(status.success(), "highlights dev failed: {status}");
    let summary = summary.join().unwrap_or_default();
    let messages: f64 = summary
        .strip_prefix("dev: ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    latencies.sort_unstable();
    let at =
        |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!("| clients | wall | messages/s end to end | API requests | p50 | p90 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {clients} | {:.1} s | {:.0} k | {} | {} | {} | {} | {} |",
        wall.as_secs_f64(),
        messages / wall.as_secs_f64() / 1000.0,
        latencies.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0))
    );
    eprintln!("dev said: {summary}");
    Ok(())
}
