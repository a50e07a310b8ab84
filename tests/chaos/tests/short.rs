//! The chaos suite's short variant, run by `scripts/test`: the AWS endpoint cut off (records
//! redelivered), PostgreSQL stopped, Twitch misbehaving and the runner SIGKILLed (the cut and
//! the kills also with the detector's state in tumbling windows), each at small scale through the real
//! binaries, with the full run's assertions: no moment lost, no clip doubled, the API listing
//! every clip, and the detector's metrics within their stated bound.
//!
//! Needs the binaries of `highlights-cli` and `ingest-fargate` next to this test's (`cargo test
//! --workspace` builds them; `scripts/chaos` too) and the emulator in `.venv` (`localstack/up`).

use highlights_chaos::scenario;
use highlights_chaos::world::Binaries;

const IN_CI: [&str; 6] = [
    "aws-cut",
    "aws-cut-windowed",
    "postgres-stopped",
    "twitch-errors",
    "runner-killed",
    "runner-killed-windowed",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_and_double_no_moment() {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = Binaries::locate(&repository).unwrap_or_else(|e| panic!("{e}"));
    let chosen: Vec<_> = scenario::all(true).into_iter().filter(|s| IN_CI.contains(&s.name)).collect();
    assert_eq!(chosen.len(), IN_CI.len());
    let mut rows = Vec::new();
    for (n, scenario) in chosen.iter().enumerate() {
        rows.push(
            scenario::run(&binaries, scenario, 100 + n as u32).await.unwrap_or_else(|e| panic!("{e:#}")),
        );
    }
    let table = highlights_chaos::report::table(&rows);
    let writes = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.detector_state_writes).unwrap();
    let (per_invocation, per_window) = (writes("runner-killed"), writes("runner-killed-windowed"));
    assert!(
        per_window > 0 && per_window < per_invocation,
        "the state in 2 s windows is written less often (about half: one write per channel per 2 s window, against one per invocation): {per_window} writes, {per_invocation} without windows"
    );
    for row in &rows {
        assert!(row.lossless(), "{} lost or doubled moments:\n{table}", row.name);
        assert!(
            row.metrics_within_bound(),
            "{}: the detector's metrics are out of their bound:\n{table}",
            row.name
        );
    }
}
