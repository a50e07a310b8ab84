//! `chaos`: runs the scenarios and prints the table (see `scripts/chaos`).

use clap::Parser;
use highlights_chaos::load::{self, LoadPlan};
use highlights_chaos::scenario::{self, Scenario};
use highlights_chaos::{report, world::Binaries};

#[derive(Parser)]
#[command(name = "chaos", about = "The pipeline broken on purpose: one row of figures per fault")]
struct Args {
    /// The CI variant: fewer channels, shorter chat, shorter faults.
    #[arg(long)]
    short: bool,
    /// Only these scenarios (by name; default: all, and the load row unless --short).
    #[arg(long = "scenario", num_args = 1..)]
    only: Vec<String>,
}

/// The load row's name among the scenarios.
const LOAD: &str = "load";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binaries = Binaries::locate(&repository)?;
    let every = scenario::all(args.short);
    let mut names: Vec<&str> = every.iter().map(|s| s.name).collect();
    names.push(LOAD);
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
    if !rows.is_empty() {
        println!("{}", report::table(&rows));
    }
    let with_load = if args.only.is_empty() { !args.short } else { args.only.iter().any(|o| o == LOAD) };
    let mut load_lossless = true;
    if with_load {
        let plan = if args.short { LoadPlan::short() } else { LoadPlan::full() };
        eprintln!("chaos: load: {plan:?} through highlights dev");
        let dir = std::env::temp_dir().join(format!("highlights-chaos-load-{}", std::process::id()));
        let row = load::run(&binaries, &plan, &dir).await?;
        println!("\n{}", row.table());
        load_lossless = row.lossless() && row.counters_match;
        if load_lossless && std::env::var_os("CHAOS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            eprintln!("chaos: load: the data and dev's log are kept in {}", dir.display());
        }
    }
    if load_lossless && rows.iter().all(|row| row.lossless() && row.metrics_within_bound()) {
        Ok(())
    } else {
        anyhow::bail!("some scenario lost or doubled moments, or its metrics are out of their bound")
    }
}
