//! What the runner's tests share: a provisioned set of resources of their own on the local
//! stack's emulator, and a runner run until a condition holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use highlights_adapters::provision::{ProvisionOptions, provision};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::StackEnv;
use highlights_runner::{Checkpoints, Mapping, RunnerOptions, RunnerStats};

pub struct Setup {
    pub sdk: aws_config::SdkConfig,
    pub resources: Resources,
    pub checkpoints_path: PathBuf,
}

/// Resources named after `name` and this process, provisioned afresh, and no checkpoints.
pub async fn setup(name: &str) -> Setup {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let sdk = highlights_adapters::aws::local(&stack.aws().unwrap()).await;
    let suffix = format!("{name}-{}", std::process::id());
    let resources = Resources::defaults().with_suffix(&suffix);
    provision(&sdk, &resources, &ProvisionOptions::default()).await.unwrap();
    let checkpoints_path = std::env::temp_dir().join(format!("highlights-runner-{suffix}.json"));
    let _ = std::fs::remove_file(&checkpoints_path);
    Setup { sdk, resources, checkpoints_path }
}

/// Runs the runner on `mapping` until `done` holds (polled, 30 s at most), then stops it and
/// returns its counters.
pub async fn run_until(
    setup: &Setup,
    mapping: Mapping,
    options: RunnerOptions,
    done: impl Fn() -> bool,
) -> Arc<RunnerStats> {
    run_all_until(setup, vec![mapping], options, done).await
}

/// [`run_until`] with several mappings at once.
pub async fn run_all_until(
    setup: &Setup,
    mappings: Vec<Mapping>,
    options: RunnerOptions,
    done: impl Fn() -> bool,
) -> Arc<RunnerStats> {
    let checkpoints = Arc::new(Checkpoints::open(&setup.checkpoints_path).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sdk = setup.sdk.clone();
    let running =
        tokio::spawn(
            async move { highlights_runner::run(&sdk, mappings, checkpoints, options, stopped).await },
        );
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(30), "the runner did not get there in 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap().unwrap()
}
