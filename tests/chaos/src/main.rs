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
    #[arg(long = "scenario", num_args = 1..)]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = Binaries::locate(&repository)?;
    let every = scenario::all(args.short);
    let names: Vec<&str> = every.iter().map(|s| s.name).collect();
    if let Some(unknown) = args.only.iter().find(|o| !names.contains(&o.as_str())) {
        anyhow::bail!("no scenario {unknown:?}; the scenarios are: {}", names.join(", "));
    }
    let chosen: Vec<Scenario> =
        every.into_iter().filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name)).collect();
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
    if rows.iter().all(|row| row.lossless() && row.metrics_within_bound()) {
        Ok(())
    } else {
        anyhow::bail!("some scenario lost or doubled moments, or its metrics are out of their bound")
    }
}
