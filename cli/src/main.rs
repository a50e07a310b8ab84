//! `highlights`: the command-line tool for people running Twitch Highlights.
//!
//! Thin entry point: argument parsing and wiring only; the work lives in the modules below and
//! in `highlights-core`.

mod backtest;
mod input;
mod labels;
mod stack;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "highlights", version, about = "Twitch Highlights: detect chat bursts and clip them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded chat through the detector and print one JSON line per detection.
    Backtest(backtest::BacktestArgs),
    /// Generate deterministic synthetic chat (JSONL) with labelled bursts.
    Synth(synth::SynthArgs),
    /// Apply the PostgreSQL schema migrations (DATABASE_URL); applying twice is a no-op.
    Migrate(stack::MigrateArgs),
    /// The local cloud: provisioning against the AWS emulator or LocalStack.
    #[command(subcommand)]
    Local(stack::LocalCommand),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backtest(args) => backtest::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Migrate(args) => stack::migrate(args),
        Command::Local(command) => stack::local(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// JSON logs on stderr (stdout carries data), level from `RUST_LOG`, warnings by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
}
