//! `highlights backtest`: replays recorded chat through the detector, exactly as the detector
//! Lambda would see it, and prints what would have been clipped.
//!
//! stdout: one JSON line per detection. stderr: bad-record reports, a progress bar when stderr is
//! a terminal, and a summary (text or JSON).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use highlights_adapters::settings::DetectorSettings;
use highlights_core::{BroadcasterMap, Detection, Detector, Tally};
use serde::Serialize;

use crate::input::{self, BadRecord, Format};
use crate::labels::{self, Score};

#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    /// Recorded chat files, replayed in the order given.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Input format; `auto` looks at the first line of each file.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    #[command(flatten)]
    detector: DetectorSettings,
    /// Labelled bursts (JSONL `{"broadcaster_id","start","end"}`, Unix seconds) to score against.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// A detection matches a label when its peak is in [start, end + slack].
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    label_slack: i64,
    /// How the summary on stderr is written.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    summary: SummaryFormat,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SummaryFormat {
    Text,
    Json,
    None,
}

/// A detection as `highlights backtest` prints it.
#[derive(Serialize)]
struct DetectionLine {
    broadcaster_id: String,
    peak_at: i64,
    fired_at: i64,
    intensity: f64,
    message_count: u64,
    baseline_mean: f64,
    baseline_std: f64,
    /// Messages per second up to `fired_at`, oldest first (what a moment card draws).
    curve: Vec<u32>,
    /// The phrases chat repeated most up to `fired_at`, most said first (what a title quotes).
    phrases: highlights_core::TopPhrases,
}

impl From<&Detection> for DetectionLine {
    fn from(d: &Detection) -> Self {
        Self {
            broadcaster_id: d.broadcaster_id.to_string(),
            peak_at: d.peak_second,
            fired_at: d.fired_second,
            intensity: d.intensity,
            message_count: d.message_count,
            baseline_mean: d.baseline_mean,
            baseline_std: d.baseline_std,
            curve: d.curve.counts().to_vec(),
            phrases: d.phrases,
        }
    }
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    messages: u64,
    commands_filtered: u64,
    late: u64,
    bad_records: u64,
    ignored_lines: u64,
    broadcasters: usize,
    observed_hours: f64,
    detections: usize,
    detections_per_broadcaster_hour: f64,
    open_holds_at_end: usize,
    elapsed_s: f64,
    messages_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<Score>,
}

/// Bad records printed one by one before the rest are only counted.
const BAD_RECORDS_SHOWN: u64 = 20;

pub fn run(args: BacktestArgs) -> anyhow::Result<()> {
    let config = args.detector.config().context("invalid detector settings")?;
    let labels = args.labels.as_deref().map(labels::read).transpose()?;
    let started = Instant::now();
    let progress = progress_bar(&args)?;

    // Two threads: this one reads and parses the files, the other runs the detector on what was
    // parsed, in file order (so the output is the one a single thread writes); with two cores
    // the halves overlap. Chat goes over in batches, its texts in one buffer per batch.
    let (batches, to_detect) = std::sync::mpsc::sync_channel::<ParsedBatch>(4);
    let detecting = std::thread::spawn(move || detect(config, to_detect));
    let read = read_all(&args, &progress, &batches);
    drop(batches);
    let detected = detecting.join().map_err(|_| anyhow::anyhow!("the detector thread panicked"))?;
    let Read { bad, ignored, observed_ms } = read?;
    progress.finish_and_clear();
    if bad > BAD_RECORDS_SHOWN {
        eprintln!("... and {} more bad records", bad - BAD_RECORDS_SHOWN);
    }
    let Detected { detections, tally, broadcasters, open_holds } =
        detected.context("cannot write detections to stdout")?;

    let elapsed_s = started.elapsed().as_secs_f64();
    let observed_hours = observed_ms as f64 / 3_600_000.0;
    let summary = Summary {
        files: args.files.len(),
        messages: tally.messages,
        commands_filtered: tally.commands,
        late: tally.late,
        bad_records: bad,
        ignored_lines: ignored,
        broadcasters,
        observed_hours,
        detections: detections.len(),
        detections_per_broadcaster_hour: if observed_hours > 0.0 {
            detections.len() as f64 / observed_hours
        } else {
            0.0
        },
        open_holds_at_end: open_holds,
        elapsed_s,
        messages_per_s: if elapsed_s > 0.0 { tally.messages as f64 / elapsed_s } else { 0.0 },
        labels: labels.map(|labels| labels::score(&labels, &detections, args.label_slack)),
    };
    match args.summary {
        SummaryFormat::Text => eprint!("{}", render(&summary)),
        SummaryFormat::Json => eprintln!("{}", serde_json::to_string(&summary)?),
        SummaryFormat::None => {}
    }
    Ok(())
}

/// Messages parsed by the reading thread, for the detector thread.
#[derive(Default)]
struct ParsedBatch {
    texts: String,
    messages: Vec<ParsedMessage>,
}

/// One chat message of a [`ParsedBatch`]; its text is a range of the batch's `texts`.
struct ParsedMessage {
    broadcaster_id: u64,
    sent_at_ms: i64,
    chatter: highlights_core::ChatterKey,
    text: std::ops::Range<usize>,
}

/// Messages per batch handed to the detector thread.
const BATCH_MESSAGES: usize = 8_192;

/// What reading the files found besides chat.
struct Read {
    bad: u64,
    ignored: u64,
    observed_ms: i64,
}

/// Reads every file in order, handing parsed chat to `batches` (bad records are shown, then
/// counted).
fn read_all(
    args: &BacktestArgs,
    progress: &indicatif::ProgressBar,
    batches: &std::sync::mpsc::SyncSender<ParsedBatch>,
) -> anyhow::Result<Read> {
    let (mut bad, mut ignored) = (0u64, 0u64);
    // Observed time is measured per file, so two recordings of one channel months apart do not
    // count the months in between.
    let mut observed_ms = 0i64;
    let mut spans: BroadcasterMap<(i64, i64)> = BroadcasterMap::default();
    let mut bytes_before = 0u64;
    let mut batch = ParsedBatch::default();
    let mut detector_gone = false;
    for path in &args.files {
        spans.clear();
        let mut on_bad = |record: BadRecord| {
            bad += 1;
            if bad <= BAD_RECORDS_SHOWN {
                progress.suspend(|| eprintln!("{}: {}: {}", path.display(), record.position, record.reason));
            }
        };
        let stats = input::read_file(
            path,
            args.format,
            &mut |event| {
                let span = spans.entry(event.broadcaster_id).or_insert((event.sent_at_ms, event.sent_at_ms));
                *span = (span.0.min(event.sent_at_ms), span.1.max(event.sent_at_ms));
                let start = batch.texts.len();
                batch.texts.push_str(event.text);
                batch.messages.push(ParsedMessage {
                    broadcaster_id: event.broadcaster_id,
                    sent_at_ms: event.sent_at_ms,
                    chatter: event.chatter,
                    text: start..batch.texts.len(),
                });
                if batch.messages.len() == BATCH_MESSAGES && !detector_gone {
                    // The detector thread is gone only if it panicked (which `run` reports);
                    // a closed stdout is reported at the end, as by a single thread.
                    detector_gone = batches.send(std::mem::take(&mut batch)).is_err();
                }
                if detector_gone {
                    batch = ParsedBatch::default();
                }
            },
            &mut on_bad,
            &mut |consumed| progress.set_position(bytes_before + consumed),
        )?;
        ignored += stats.ignored;
        observed_ms = spans
            .values()
            .fold(observed_ms, |sum, (first, last)| sum.saturating_add(last.saturating_sub(*first)));
        bytes_before += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        progress.set_position(bytes_before);
    }
    if !batch.messages.is_empty() && !detector_gone {
        let _ = batches.send(batch);
    }
    Ok(Read { bad, ignored, observed_ms })
}

/// What the detector thread found.
struct Detected {
    detections: Vec<Detection>,
    tally: Tally,
    broadcasters: usize,
    open_holds: usize,
}

/// Runs the detector on every batch in order, writing detections to stdout as they become final.
fn detect(
    config: highlights_core::DetectorConfig,
    batches: std::sync::mpsc::Receiver<ParsedBatch>,
) -> std::io::Result<Detected> {
    let mut detector = Detector::new(config);
    let mut tally = Tally::default();
    let mut fresh = Vec::new();
    let mut sink = DetectionSink::new();
    for batch in batches {
        for message in &batch.messages {
            tally.record(detector.observe_message(
                message.broadcaster_id,
                message.sent_at_ms,
                message.chatter,
                &batch.texts[message.text.clone()],
                &mut fresh,
            ));
            if !fresh.is_empty() {
                sink.emit(&mut fresh);
            }
        }
    }
    detector.finish(&mut fresh);
    sink.emit(&mut fresh);
    let broadcasters = detector.channels().count();
    let open_holds = detector.channels().filter(|c| c.has_open_hold()).count();
    Ok(Detected { detections: sink.finish()?, tally, broadcasters, open_holds })
}

/// Writes detections to stdout as they become final and keeps them for scoring. A write error
/// (a closed pipe) is remembered and reported once at the end rather than per detection.
struct DetectionSink {
    out: BufWriter<std::io::StdoutLock<'static>>,
    kept: Vec<Detection>,
    error: Option<std::io::Error>,
}

impl DetectionSink {
    fn new() -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
            kept: Vec::new(),
            error: None,
        }
    }

    fn emit(&mut self, fresh: &mut Vec<Detection>) {
        for detection in fresh.iter() {
            let line = serde_json::to_string(&DetectionLine::from(detection)).expect("plain data serialises");
            if let Err(error) = writeln!(self.out, "{line}") {
                self.error.get_or_insert(error);
            }
        }
        self.kept.append(fresh);
    }

    fn finish(mut self) -> std::io::Result<Vec<Detection>> {
        self.out.flush()?;
        self.error.map_or(Ok(self.kept), Err)
    }
}

fn progress_bar(args: &BacktestArgs) -> anyhow::Result<indicatif::ProgressBar> {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return Ok(indicatif::ProgressBar::hidden());
    }
    let mut total = 0;
    for path in &args.files {
        total += std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?.len();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    Ok(bar)
}

fn render(s: &Summary) -> String {
    let mut text = format!(
        "backtest: {} file(s), {} messages ({} commands filtered, {} late), {} bad records, {} ignored lines\n\
         broadcasters: {}, observed {:.2} broadcaster-hours\n\
         detections: {} ({:.2} per broadcaster-hour), {} holds still open at the end\n\
         throughput: {:.0} messages/s ({:.3} s)\n",
        s.files,
        s.messages,
        s.commands_filtered,
        s.late,
        s.bad_records,
        s.ignored_lines,
        s.broadcasters,
        s.observed_hours,
        s.detections,
        s.detections_per_broadcaster_hour,
        s.open_holds_at_end,
        s.messages_per_s,
        s.elapsed_s,
    );
    if let Some(score) = &s.labels {
        let delay = match (score.delay_mean_s, score.delay_p50_s, score.delay_max_s) {
            (Some(mean), Some(p50), Some(max)) => format!("delay mean {mean:.1} s, p50 {p50} s, max {max} s"),
            _ => "no label found".to_owned(),
        };
        text += &format!(
            "labels: {} highlights, {} distractors; precision {:.3} ({}/{}), recall {:.3} ({}/{}), {delay}\n",
            score.labels,
            score.distractors,
            score.precision,
            score.true_positives,
            score.detections,
            score.recall,
            score.labels_found,
            score.labels,
        );
        let recalls: Vec<String> = score
            .recall_by_kind
            .iter()
            .map(|(kind, r)| format!("{kind} {:.3} ({}/{})", r.recall, r.found, r.labels))
            .collect();
        text += &format!("recall by kind: {}\n", recalls.join(", "));
        let false_positives: Vec<String> =
            score.false_positives_by_kind.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        text += &format!(
            "false positives by kind: {}; repeats {}\n",
            if false_positives.is_empty() { "none".to_owned() } else { false_positives.join(", ") },
            score.repeats
        );
    }
    text
}
