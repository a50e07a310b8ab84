//! `chaos`: runs the scenarios and prints the table (see `scripts/chaos`).

use clap::Parser;
use highlights_chaos::scenario::{self, Scenario};
use highlights_chaos::{report, world::Binaries};

#[derive(Parser)]
#[command(name = "chaos", about = "The pipeline broken on purpose: one row of figures per fault")]
struct Args {
    /// The CI variant: fewer channels, shorter chat, shorter faults.
    #[arg(long)]
    short: bool,
    /// Only these scenarios (by name; default: all).
    #[arg(long = "scenario")]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = Binaries::locate(&repository)?;
    let chosen: Vec<Scenario> = scenario::all(args.short)
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = scenario::all(false).iter().map(|s| s.name).collect();
        anyhow::bail!("no such scenario; the scenarios are: {}", names.join(", "));
    }
    let mut rows = Vec::new();
    for (n, scenario) in chosen.iter().enumerate() {
        eprintln!("chaos: [{}/{}] {}: {}", n + 1, chosen.len(), scenario.name, scenario.how());
        let started = std::time::Instant::now();
        let row = scenario::run(&binaries, scenario, n as u32 + 1).await?;
        eprintln!(
            "chaos: {}: {} moments lost, {} duplicate clips ({} s)",
            scenario.name,
            row.moments_lost,
            row.duplicate_clips,
            started.elapsed().as_secs()
        );
        rows.push(row);
    }
    println!("{}", report::table(&rows));
    if rows.iter().all(scenario::Row::lossless) {
        Ok(())
    } else {
        anyhow::bail!("some scenario lost or doubled moments")
    }
}
