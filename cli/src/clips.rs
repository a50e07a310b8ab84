//! `highlights clips confirm`: the sweep that confirms clips the clipper stored before Twitch
//! published them (see `clipper_function::confirm_unconfirmed`). Run it on a schedule.

use anyhow::Context as _;
use highlights_adapters::clips::PgClips;
use highlights_adapters::postgres::Database;
use highlights_adapters::resources::Resources;

use crate::local_run::{TwitchUrls, twitch_clients};

#[derive(clap::Subcommand, Debug)]
pub enum ClipsCommand {
    /// Ask Twitch again about clips stored unconfirmed in the last day.
    Confirm(ConfirmArgs),
}

#[derive(clap::Args, Debug)]
pub struct ConfirmArgs {
    /// At most this many clips per run.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    twitch: TwitchUrls,
}

pub fn run(command: ClipsCommand) -> anyhow::Result<()> {
    let ClipsCommand::Confirm(args) = command;
    let pool = Database::from_url(&args.database_url)?.pool(1)?;
    crate::stack::runtime()?.block_on(async move {
        let sdk = highlights_adapters::aws::from_env().await;
        let (api, tokens) =
            twitch_clients(&sdk, &Resources::from_env(), &args.twitch.helix_url, &args.twitch.oauth2_url)
                .await?;
        let report = clipper_function::confirm_unconfirmed(&api, &tokens, &PgClips::new(pool), args.limit)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("the confirm sweep failed")?;
        eprintln!("confirmed {} of {} unconfirmed clips", report.confirmed, report.checked);
        anyhow::Ok(())
    })
}
