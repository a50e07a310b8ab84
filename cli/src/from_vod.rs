//! `highlights clips from-vod VIDEO_ID FILE`: clips the highlights of a recorded VOD after the
//! fact. The VOD's chat (any format `backtest` reads) goes through the detector; the strongest
//! moments within the clip budget (`--clips-per-hour`, 6 by default) are cut from the VOD with
//! Create Clip From VOD, each exactly on its moment, through the clipper's own handler, so a
//! moment gets at most one clip however often the command is run or wherever it is stopped.
//!
//! Each moment's progress is kept in the embedded store under `--data-dir`; the clips too, where
//! `highlights dev` shows them, or, with `--database-url`, in a deployment's PostgreSQL, where
//! its API and site list them. stdout: one JSON line per chosen moment; stderr: the plan and
//! progress. Needs a token from `highlights tokens seed --vod --out FILE` (the
//! broadcaster's or an editor's).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clipper_function::{Clipped, ClipperHandler, Source};
use highlights_adapters::clips::ClipStore;
use highlights_adapters::highlights::HighlightOutbox as _;
use highlights_adapters::settings::{DetectorSettings, TwitchUrls};
use highlights_adapters::tokens::{FileVault, StoredTokenSource, TokenSource as _, TokenVault as _};
use highlights_adapters::twitch::{AppCredentials, HelixClips, Secret, TwitchOAuth, VideoInfo};
use highlights_core::clip_policy::ClipPolicy;
use highlights_core::config::RawConfig;
use highlights_core::detector::budget::strongest_within_budget;
use highlights_core::title::TitleRules;
use highlights_core::{Detection, Detector, DetectorConfig};
use highlights_embedded::Embedded;
use serde::Serialize;

use crate::input::{self, Format};

/// Clips an hour of VOD when `--clips-per-hour` is not given: its best moments, not every burst.
const DEFAULT_CLIPS_PER_HOUR: u32 = 6;

#[derive(clap::Args, Debug)]
pub struct FromVodArgs {
    /// The VOD's id (the number in https://www.twitch.tv/videos/ID).
    #[arg(value_name = "VIDEO_ID")]
    video_id: String,
    /// The VOD's chat: a TwitchDownloader export, or JSONL/IRC lines with the broadcast's Unix
    /// times.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Input format; `auto` looks at the first line.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    #[command(flatten)]
    detector: DetectorSettings,
    /// The token file (`highlights tokens seed --vod --out FILE`).
    #[arg(long, env = "TWITCH_TOKEN_FILE", value_name = "FILE")]
    twitch_tokens: PathBuf,
    /// The Twitch application's client id.
    #[arg(long, env = "TWITCH_CLIENT_ID")]
    client_id: String,
    /// The application's client secret (prefer the environment variable to the command line).
    #[arg(long, env = "TWITCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    #[command(flatten)]
    twitch: TwitchUrls,
    /// Where each moment's progress is kept, and its clip unless --database-url is given: the
    /// data directory `highlights dev` serves.
    #[arg(long, default_value = ".local/dev", value_name = "DIR")]
    data_dir: PathBuf,
    /// Store the clips in this PostgreSQL database (a deployment's, migrated), where its API and
    /// site list them, instead of the data directory.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Terms that must never appear in a clip's title, on top of the built-in list.
    #[arg(long, value_name = "FILE")]
    title_blocklist: Option<PathBuf>,
    /// Print the moments that would be clipped, and clip none.
    #[arg(long)]
    dry_run: bool,
}

/// One chosen moment, as stdout shows it.
#[derive(Serialize)]
struct MomentLine<'a> {
    broadcaster_id: String,
    peak_at: i64,
    /// Seconds into the VOD.
    vod_offset: i64,
    intensity: f64,
    title: String,
    /// `planned` (dry run), `clip`, `failed` or `retry`.
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    clip_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

pub fn run(args: FromVodArgs) -> anyhow::Result<()> {
    #[cfg(not(feature = "cloud"))]
    if args.database_url.is_some() {
        return Err(crate::not_in_this_build("--database-url (a deployment's PostgreSQL)"));
    }
    let config = args.detector.config().context("invalid detector settings")?;
    let per_hour = config.clips_per_hour().unwrap_or(DEFAULT_CLIPS_PER_HOUR);
    // The budget is applied after the fact, to every moment the detector finds.
    let config = DetectorConfig::new(RawConfig { clips_per_hour: None, ..*config.raw() })
        .context("invalid detector settings")?;
    let titles = crate::dev::title_rules(args.title_blocklist.as_deref())?;
    let app = AppCredentials {
        client_id: args.client_id.clone(),
        client_secret: Secret::new(args.client_secret.clone()),
    };
    let vault = FileVault::new(app.clone(), &args.twitch_tokens);
    crate::runtime()?.block_on(async move {
        let token = vault.token().await.context("the Twitch token file cannot be used")?;
        if !token.can_clip_vods() {
            bail!(
                "the token in {} may not cut clips from VODs: run `highlights tokens seed --vod --out FILE` \
                 as the broadcaster or one of the channel's editors",
                args.twitch_tokens.display()
            );
        }
        let http = highlights_adapters::tls::http_client();
        let tokens = StoredTokenSource::with_vault(vault, TwitchOAuth::new(http.clone(), &args.twitch.oauth2_url));
        let helix = HelixClips::new(http, &args.twitch.helix_url, app.client_id);
        let access = tokens.access_token().await.context("no usable Twitch token")?;
        let video = helix
            .video(&access, &args.video_id)
            .await
            .with_context(|| format!("cannot look up VOD {}", args.video_id))?
            .with_context(|| format!("Twitch knows no VOD {}", args.video_id))?;
        let moments = moments_of(&args, config, &video)?;
        let chosen: Vec<Detection> = {
            let strengths: Vec<(i64, f64)> = moments.iter().map(|d| (d.peak_second, d.intensity)).collect();
            strongest_within_budget(&strengths, per_hour).into_iter().map(|i| moments[i]).collect()
        };
        eprintln!(
            "from-vod: VOD {} of broadcaster {} ({} long): {} moments in the chat, the {} strongest within {per_hour} an hour",
            video.video_id,
            video.broadcaster_id,
            clock(video.length_s),
            moments.len(),
            chosen.len(),
        );
        let store = Arc::new(Embedded::open(&args.data_dir)?);
        match &args.database_url {
            None => {
                let clipper = ClipperHandler::new(helix, tokens, store.clone(), store.clone(), ClipPolicy::default())
                    .with_title_rules(titles.clone());
                store.upsert_vod(&video.video_id, video.broadcaster_id, video.started_at_s, video.length_s)?;
                clip_all(&args, &store, &clipper, &titles, &video, &chosen, &store.path().display().to_string()).await
            }
            #[cfg(not(feature = "cloud"))]
            Some(_) => unreachable!("refused before any work"),
            #[cfg(feature = "cloud")]
            Some(url) => {
                use highlights_adapters::clips::PgClips;
                use highlights_adapters::postgres::Database;

                let database = Database::from_url(url)?;
                let target = database.target().to_owned();
                let clips = PgClips::new(database.pool(2)?);
                let clipper = ClipperHandler::new(helix, tokens, clips, store.clone(), ClipPolicy::default())
                    .with_title_rules(titles.clone());
                clip_all(&args, &store, &clipper, &titles, &video, &chosen, &target).await
            }
        }
    })
}

/// The detections of the VOD's broadcaster within the VOD, in time order.
fn moments_of(
    args: &FromVodArgs,
    config: DetectorConfig,
    video: &VideoInfo,
) -> anyhow::Result<Vec<Detection>> {
    let mut detector = Detector::new(config);
    let (mut found, mut fresh) = (Vec::new(), Vec::new());
    let mut bad = 0u64;
    let stats = input::read_file(
        &args.file,
        args.format,
        &mut |event| {
            detector.observe_message(
                event.broadcaster_id,
                event.sent_at_ms,
                event.chatter,
                event.text,
                &mut fresh,
            );
            found.append(&mut fresh);
        },
        &mut |_| bad += 1,
        &mut |_| {},
    )?;
    detector.finish(&mut fresh);
    found.append(&mut fresh);
    if bad > 0 {
        eprintln!("from-vod: {bad} records of {} could not be read and were skipped", args.file.display());
    }
    if let Some(vod) = stats.vod.filter(|vod| vod.video_id != video.video_id) {
        bail!("{} is the chat of VOD {}, not of VOD {}", args.file.display(), vod.video_id, video.video_id);
    }
    let within = |d: &Detection| {
        d.broadcaster_id == video.broadcaster_id
            && (video.started_at_s..=video.started_at_s + video.length_s).contains(&d.peak_second)
    };
    let outside = found.iter().filter(|d| !within(d)).count();
    if outside > 0 {
        eprintln!("from-vod: {outside} moments are of another channel or outside the VOD and are left out");
    }
    found.retain(within);
    found.sort_by_key(|d| d.peak_second);
    Ok(found)
}

/// Clips `chosen` one by one, each recorded in `store` first; `kept_in` names where the clips go.
async fn clip_all<C: ClipStore>(
    args: &FromVodArgs,
    store: &Embedded,
    clipper: &ClipperHandler<HelixClips, StoredTokenSource<FileVault>, C, Arc<Embedded>>,
    titles: &TitleRules,
    video: &VideoInfo,
    chosen: &[Detection],
    kept_in: &str,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let (mut clips, mut unfinished) = (0usize, 0usize);
    for (n, detection) in chosen.iter().enumerate() {
        let offset = detection.peak_second - video.started_at_s;
        let mut line = MomentLine {
            broadcaster_id: detection.broadcaster_id.to_string(),
            peak_at: detection.peak_second,
            vod_offset: offset,
            intensity: detection.intensity,
            title: titles.title_for(detection),
            status: "planned",
            clip_id: None,
            reason: None,
        };
        if !args.dry_run {
            eprintln!(
                "from-vod: {}/{} at {} ({:.1}σ)",
                n + 1,
                chosen.len(),
                clock(offset),
                detection.intensity
            );
            // Recorded as the detector would, so a rerun finds its progress (and its clip).
            store.record(detection).await.context("cannot record the moment")?;
            match clipper.clip_one(detection, &Source::Recorded(video.clone())).await {
                Clipped::Clip { clip_id, .. } => {
                    clips += 1;
                    (line.status, line.clip_id) = ("clip", Some(clip_id));
                }
                Clipped::Failed(reason) => {
                    unfinished += 1;
                    (line.status, line.reason) = ("failed", Some(reason.as_str()));
                }
                Clipped::RetryLater => {
                    unfinished += 1;
                    line.status = "retry";
                }
            }
        }
        writeln!(stdout, "{}", serde_json::to_string(&line)?).context("cannot write to stdout")?;
    }
    stdout.flush()?;
    if args.dry_run {
        return Ok(());
    }
    eprintln!("from-vod: {clips} clips of {} moments, kept in {kept_in}", chosen.len());
    if unfinished > 0 {
        bail!(
            "{unfinished} moments have no clip (see `status` on stdout); `retry` ones are clipped by running \
             the same command again, which never makes a second clip of a moment"
        );
    }
    Ok(())
}

/// Seconds as h:mm:ss.
fn clock(seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!("{}:{:02}:{:02}", seconds / 3600, seconds % 3600 / 60, seconds % 60)
}
