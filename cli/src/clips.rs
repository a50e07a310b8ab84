//! `highlights clips confirm`: the sweep that confirms clips the clipper stored before Twitch
//! published them (see `clipper_function::confirm_unconfirmed`); run it on a schedule.
//! `highlights clips sample`: sample clips for demos and load tests.
//! `highlights clips from-vod`: the highlights of a recorded VOD, clipped after the fact
//! (see [`crate::from_vod`]).

use highlights_adapters::settings::TwitchUrls;
#[cfg(feature = "cloud")]
use {
    anyhow::Context as _, highlights_adapters::postgres::Database,
    highlights_adapters::sample_clips::SampleClips,
};

#[derive(clap::Subcommand, Debug)]
pub enum ClipsCommand {
    /// Ask Twitch again about clips stored unconfirmed in the last day.
    Confirm(ConfirmArgs),
    /// Load sample clips (`SampleN`, streamers `sample_N`) for demos and load tests. Not for a
    /// production database. Loading twice adds nothing.
    Sample(SampleArgs),
    /// Clip the strongest moments of a recorded VOD's chat from the VOD itself (needs a token
    /// from `highlights tokens seed --vod`); clips are kept where `highlights dev` shows them.
    FromVod(Box<crate::from_vod::FromVodArgs>),
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// Clips to generate.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Streamers they belong to.
    #[arg(long, default_value_t = 20)]
    channels: u32,
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
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
    match command {
        ClipsCommand::Confirm(args) => confirm(args),
        ClipsCommand::Sample(args) => sample(args),
        ClipsCommand::FromVod(args) => crate::from_vod::run(*args),
    }
}

#[cfg(not(feature = "cloud"))]
fn sample(_: SampleArgs) -> anyhow::Result<()> {
    Err(crate::not_in_this_build("`highlights clips sample` (a deployment's PostgreSQL)"))
}

#[cfg(feature = "cloud")]
fn sample(args: SampleArgs) -> anyhow::Result<()> {
    if args.channels == 0 {
        anyhow::bail!("--channels must be at least 1");
    }
    let database = Database::from_url(&args.database_url)?;
    crate::runtime()?.block_on(async move {
        let client = database.connect().await?;
        eprintln!("{}: generating {} sample clips...", database.target(), args.count);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sample = SampleClips {
            count: args.count,
            channels: args.channels,
            // The newest sample clip is from a minute ago.
            first_detected_unix: now - 60 - args.count as i64,
        };
        let inserted = sample.insert(&client).await.context("cannot insert the sample clips")?;
        eprintln!(
            "{}: {inserted} new sample clips ({} already there)",
            database.target(),
            args.count - inserted
        );
        anyhow::Ok(())
    })
}

#[cfg(not(feature = "cloud"))]
fn confirm(_: ConfirmArgs) -> anyhow::Result<()> {
    Err(crate::not_in_this_build("`highlights clips confirm` (Secrets Manager, PostgreSQL)"))
}

#[cfg(feature = "cloud")]
fn confirm(args: ConfirmArgs) -> anyhow::Result<()> {
    use highlights_adapters::clips::PgClips;
    use highlights_adapters::resources::Resources;

    use crate::local_run::twitch_clients;

    let pool = Database::from_url(&args.database_url)?.pool(1)?;
    crate::runtime()?.block_on(async move {
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
