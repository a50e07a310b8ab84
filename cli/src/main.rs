//! `highlights`: the command-line tool for people running Twitch Highlights.
//!
//! Thin entry point: argument parsing and wiring only; the work lives in the modules below and
//! in `highlights-core`.

mod backtest;
mod channel;
mod clips;
mod dev;
mod from_vod;
mod input;
mod jsonl;
mod labels;
#[cfg(feature = "cloud")]
mod local_run;
mod replay;
mod scenario;
#[cfg(feature = "cloud")]
mod serve;
#[cfg(feature = "cloud")]
mod stack;
mod synth;
mod tokens;
mod tune;

use std::process::ExitCode;

// Why not the system allocator: see the workspace Cargo.toml and docs/benchmarks.md (dev replay).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "highlights", version, about = "Twitch Highlights: detect chat bursts and clip them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole product in one process: chat in, moments detected, the site on --listen.
    /// Nothing to install: a built-in demo by default, or --replay FILE..., or --channel LOGIN...
    Dev(Box<dev::DevArgs>),
    /// Each channel's own detector settings (sensitivity, cooldown, min chatters, clips per hour).
    #[command(subcommand)]
    Channel(channel::ChannelCommand),
    /// Replay recorded chat through the detector and print one JSON line per detection.
    Backtest(backtest::BacktestArgs),
    /// Suggest each channel's own sensitivity from its recorded chat (`--per-hour N` moments).
    Tune(tune::TuneArgs),
    /// Generate deterministic synthetic chat (JSONL) with labelled bursts.
    Synth(synth::SynthArgs),
    /// Apply the PostgreSQL schema migrations (DATABASE_URL); applying twice is a no-op.
    #[cfg(feature = "cloud")]
    Migrate(stack::MigrateArgs),
    /// The local cloud: provisioning against the AWS emulator or LocalStack.
    #[cfg(feature = "cloud")]
    #[command(subcommand)]
    Local(stack::LocalCommand),
    /// Clips in Postgres: the confirm sweep, sample data.
    #[command(subcommand)]
    Clips(clips::ClipsCommand),
    /// Serve the clips API and the web site locally (the API Lambda's router).
    #[cfg(feature = "cloud")]
    Serve(serve::ServeArgs),
    /// Twitch tokens: authorize the user whose token creates clips.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// A command this build leaves out (`local`, `migrate`, `serve`: built without the `cloud`
    /// feature).
    #[cfg(not(feature = "cloud"))]
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// The error of a cloud path in a build without the `cloud` feature (what scripts/dev builds).
#[cfg(not(feature = "cloud"))]
pub(crate) fn not_in_this_build(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} talks to a deployment (AWS, its PostgreSQL), and this build of `highlights` leaves \
         that out (scripts/dev builds only the embedded product); build the whole tool with \
         `cargo build --release --locked -p highlights-cli`"
    )
}

/// The async runtime of the commands that need one.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn main() -> ExitCode {
    highlights_adapters::telemetry::init_json_logs("warn");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => dev::run(*args),
        Command::Channel(command) => channel::run(command),
        Command::Backtest(args) => backtest::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Tune(args) => tune::run(args),
        #[cfg(feature = "cloud")]
        Command::Migrate(args) => stack::migrate(args),
        #[cfg(feature = "cloud")]
        Command::Local(command) => stack::local(command),
        #[cfg(not(feature = "cloud"))]
        Command::Other(words) => match words.first().map(String::as_str) {
            Some(name @ ("local" | "migrate" | "serve")) => {
                Err(not_in_this_build(&format!("`highlights {name}`")))
            }
            other => {
                Err(anyhow::anyhow!("unknown command {:?} (see `highlights --help`)", other.unwrap_or("")))
            }
        },
        Command::Tokens(command) => tokens::run(command),
        Command::Clips(command) => clips::run(command),
        #[cfg(feature = "cloud")]
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
