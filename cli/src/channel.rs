//! `highlights channel`: each channel's own detector settings (sensitivity, cooldown, minimum
//! distinct chatters, clips per hour), where the detector reads them: the embedded store of
//! `highlights dev` by default, the deployment's `channel-settings` table with `--cloud`. A
//! running detector picks a change up within a minute.
//!
//! This module only resolves logins and reads and writes entries; what the settings mean is
//! `highlights_core::ChannelSettings`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use highlights_adapters::channel_settings::{ChannelEntry, ChannelSettingsStore, SETTINGS_REFRESH};
use highlights_adapters::settings::TwitchUrls;
#[cfg(feature = "cloud")]
use highlights_adapters::{
    channel_settings::DynamoChannelSettings, resources::Resources, tokens::read_secret_json,
    twitch::AppCredentials, twitch_streams::HelixStreams,
};
use highlights_core::{BroadcasterId, ChannelSettings, DetectorConfig};
use highlights_embedded::Embedded;

#[derive(clap::Subcommand, Debug)]
pub enum ChannelCommand {
    /// Set some of a channel's own settings (the others stay as they are).
    Set(SetArgs),
    /// Show the channels' own settings (all, or one).
    Show(ShowArgs),
    /// Forget a channel's own settings: it runs on the deployment's again.
    Clear(ClearArgs),
}

#[derive(clap::Args, Debug)]
pub struct Target {
    /// The deployment's `channel-settings` DynamoDB table (AWS credentials and region as for
    /// the AWS CLI; AWS_ENDPOINT_URL for the local stack) instead of `highlights dev`'s store.
    #[arg(long)]
    cloud: bool,
    /// `highlights dev`'s data directory.
    #[arg(long, default_value = ".local/dev", value_name = "DIR", conflicts_with = "cloud")]
    data_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct SetArgs {
    /// The channel's login.
    login: String,
    /// The channel's broadcaster id, when its login cannot be looked up (no Twitch app
    /// credentials, or a channel `highlights dev` has not seen yet).
    #[arg(long)]
    broadcaster_id: Option<BroadcasterId>,
    /// Sensitivity: the score a window must reach (lower fires more often; the deployment's
    /// default is 4 for `seed`, 3.5 for `v2`).
    #[arg(long)]
    k: Option<f64>,
    /// Seconds without a new detection after one.
    #[arg(long, value_name = "SECONDS")]
    cooldown: Option<u32>,
    /// `v2`: distinct chatters a moment needs.
    #[arg(long)]
    min_chatters: Option<u32>,
    /// Clips an hour at most (stored; enforced by the clip budget once it exists).
    #[arg(long)]
    clips_per_hour: Option<u32>,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    twitch: TwitchUrls,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Only this channel.
    login: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args, Debug)]
pub struct ClearArgs {
    login: String,
    #[command(flatten)]
    target: Target,
}

/// Where the settings live.
enum Store {
    Dev(Embedded),
    #[cfg(feature = "cloud")]
    Cloud {
        settings: DynamoChannelSettings,
        sdk: Box<aws_config::SdkConfig>,
    },
}

impl Store {
    /// The store `target` names. `highlights dev`'s must exist unless `create` (a setting for a
    /// channel given by id, before dev's first run): a mistyped --data-dir is an error.
    async fn open(target: &Target, create: bool) -> anyhow::Result<Self> {
        #[cfg(not(feature = "cloud"))]
        if target.cloud {
            return Err(crate::not_in_this_build("--cloud"));
        }
        #[cfg(feature = "cloud")]
        if target.cloud {
            let sdk = highlights_adapters::aws::from_env().await;
            let table = Resources::from_env().channel_settings_table.name;
            let settings = DynamoChannelSettings::new(aws_sdk_dynamodb::Client::new(&sdk), table);
            return Ok(Self::Cloud { settings, sdk: Box::new(sdk) });
        }
        {
            anyhow::ensure!(
                create || target.data_dir.join(highlights_embedded::FILE_NAME).exists(),
                "no `highlights dev` data in {} (run `highlights dev` first, pass --data-dir, or --cloud \
                 for a deployment)",
                target.data_dir.display()
            );
            Ok(Self::Dev(Embedded::open(&target.data_dir)?))
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<ChannelEntry>> {
        Ok(match self {
            Self::Dev(store) => store.list().await?,
            #[cfg(feature = "cloud")]
            Self::Cloud { settings, .. } => settings.list().await?,
        })
    }

    async fn put(&self, entry: &ChannelEntry) -> anyhow::Result<()> {
        match self {
            Self::Dev(store) => store.put(entry).await?,
            #[cfg(feature = "cloud")]
            Self::Cloud { settings, .. } => settings.put(entry).await?,
        }
        Ok(())
    }

    async fn remove(&self, id: BroadcasterId) -> anyhow::Result<bool> {
        Ok(match self {
            Self::Dev(store) => store.remove(id).await?,
            #[cfg(feature = "cloud")]
            Self::Cloud { settings, .. } => settings.remove(id).await?,
        })
    }

    /// The entry stored for `login`, if any.
    async fn find(&self, login: &str) -> anyhow::Result<Option<ChannelEntry>> {
        Ok(self.list().await?.into_iter().find(|entry| entry.login.eq_ignore_ascii_case(login)))
    }

    /// The broadcaster id of a `login` that has no stored settings: what `highlights dev` has
    /// seen, or Twitch's Get Users (with the deployment's app credentials).
    async fn look_up(&self, login: &str, twitch: &TwitchUrls) -> anyhow::Result<BroadcasterId> {
        #[cfg(not(feature = "cloud"))]
        let _ = twitch; // Twitch is asked only about a deployment's channels.
        match self {
            Self::Dev(store) => store.broadcaster_id_of(login)?.with_context(|| {
                format!(
                    "`highlights dev` has not seen channel {login:?} in {}: pass --broadcaster-id",
                    store.path().display()
                )
            }),
            #[cfg(feature = "cloud")]
            Self::Cloud { sdk, .. } => {
                let secret = Resources::from_env().twitch_app_secret.name;
                let secrets = aws_sdk_secretsmanager::Client::new(sdk);
                let app: AppCredentials = read_secret_json(&secrets, &secret).await.with_context(|| {
                    format!(
                        "cannot look up {login:?} without the Twitch app credentials: pass --broadcaster-id"
                    )
                })?;
                let helix = HelixStreams::new(
                    highlights_adapters::tls::http_client(),
                    &twitch.helix_url,
                    &twitch.oauth2_url,
                    app,
                );
                let found = helix
                    .user_ids(&[login.to_owned()])
                    .await
                    .with_context(|| format!("cannot look up {login:?} on Twitch: pass --broadcaster-id"))?;
                found
                    .into_iter()
                    .find(|(found, _)| found.eq_ignore_ascii_case(login))
                    .map(|(_, id)| id)
                    .with_context(|| format!("Twitch has no channel {login:?}"))
            }
        }
    }
}

pub fn run(command: ChannelCommand) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async {
        match command {
            ChannelCommand::Set(args) => set(args).await,
            ChannelCommand::Show(args) => show(args).await,
            ChannelCommand::Clear(args) => clear(args).await,
        }
    })
}

fn login_of(text: &str) -> anyhow::Result<String> {
    let login = text.trim().trim_start_matches('#').to_lowercase();
    if login.is_empty() || !login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || login.len() > 25
    {
        bail!("{text:?} is not a Twitch login (letters, digits and _, at most 25)");
    }
    Ok(login)
}

async fn set(args: SetArgs) -> anyhow::Result<()> {
    let login = login_of(&args.login)?;
    let wanted = ChannelSettings {
        k: args.k,
        cooldown_seconds: args.cooldown,
        min_chatters: args.min_chatters,
        clips_per_hour: args.clips_per_hour,
    };
    anyhow::ensure!(
        !wanted.is_empty(),
        "nothing to set: give at least one of --k, --cooldown, --min-chatters, --clips-per-hour"
    );
    // Checked before anything is stored, against the defaults of both detectors.
    for mode in [highlights_core::DetectorMode::Seed, highlights_core::DetectorMode::V2] {
        let base = DetectorConfig::new(highlights_core::config::RawConfig::for_mode(mode))?;
        wanted.apply(&base).context("invalid channel settings")?;
    }
    let store = Store::open(&args.target, args.broadcaster_id.is_some()).await?;
    // One read of the stored entries serves both the login and the settings to merge with.
    let entries = store.list().await?;
    let broadcaster_id = match args.broadcaster_id {
        Some(id) => id,
        None => match entries.iter().find(|entry| entry.login.eq_ignore_ascii_case(&login)) {
            Some(stored) => stored.broadcaster_id,
            None => store.look_up(&login, &args.twitch).await?,
        },
    };
    let previous = entries.iter().find(|e| e.broadcaster_id == broadcaster_id);
    let settings = previous.map_or(ChannelSettings::default(), |p| p.settings).updated_with(wanted);
    let entry = ChannelEntry { broadcaster_id, login, settings, updated_at_ms: unix_ms() };
    store.put(&entry).await?;
    println!("{}", describe(&entry));
    eprintln!("a running detector uses these within {} s", SETTINGS_REFRESH.as_secs());
    Ok(())
}

async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.target, false).await?;
    let wanted = args.login.as_deref().map(login_of).transpose()?;
    let entries: Vec<_> = store
        .list()
        .await?
        .into_iter()
        .filter(|entry| wanted.as_ref().is_none_or(|login| entry.login.eq_ignore_ascii_case(login)))
        .collect();
    if entries.is_empty() {
        eprintln!("no channel has its own settings{}", wanted.map(|l| format!(" ({l})")).unwrap_or_default());
    }
    for entry in &entries {
        println!("{}", describe(entry));
    }
    Ok(())
}

async fn clear(args: ClearArgs) -> anyhow::Result<()> {
    let login = login_of(&args.login)?;
    let store = Store::open(&args.target, false).await?;
    match store.find(&login).await? {
        Some(entry) if store.remove(entry.broadcaster_id).await? => {
            eprintln!(
                "{login} runs on the deployment's settings again (within {} s)",
                SETTINGS_REFRESH.as_secs()
            );
        }
        _ => eprintln!("{login} had no settings of its own"),
    }
    Ok(())
}

/// One line per channel, e.g. `xqcow (71092938): k 4.5, cooldown 60 s, min chatters 8`.
fn describe(entry: &ChannelEntry) -> String {
    let settings = &entry.settings;
    let mut parts = Vec::new();
    if let Some(k) = settings.k {
        parts.push(format!("k {k}"));
    }
    if let Some(cooldown) = settings.cooldown_seconds {
        parts.push(format!("cooldown {cooldown} s"));
    }
    if let Some(chatters) = settings.min_chatters {
        parts.push(format!("min chatters {chatters}"));
    }
    if let Some(clips) = settings.clips_per_hour {
        parts.push(format!("at most {clips} clips an hour"));
    }
    format!("{} ({}): {}", entry.login, entry.broadcaster_id, parts.join(", "))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
