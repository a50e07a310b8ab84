//! One scenario's world: its own AWS emulator and PostgreSQL (so they can be killed and stopped
//! without touching anything else), a fake Twitch (Helix + OAuth, and IRC), a fault proxy in
//! front of the emulator, PostgreSQL and Helix, and the product's processes: `ingest-fargate`,
//! `highlights local run` (detector, lifecycle, clipper) and `highlights serve`, each started
//! from its real binary with the environment a user's `.local/stack/env` would give it.
//!
//! Everything listens on 127.0.0.1, on ports picked at start. Logs go to files in the world's
//! folder, which is kept when a scenario fails (the path is printed) and removed otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use highlights_adapters::aws::{self, LocalAws};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::url_as_user;
use highlights_test_support::fault_proxy::FaultProxy;
use highlights_test_support::irc::FakeIrc;
use highlights_test_support::postgres::TempPostgres;
use highlights_test_support::{FakeStream, FakeTwitch};

use crate::chat::ChatPlan;

/// The user token the fake Twitch accepts at first, and what its refresh token yields.
pub const ACCESS: &str = "chaos-access";
const REFRESH: &str = "chaos-refresh";
pub const REFRESHED_ACCESS: &str = "chaos-access-2";

/// The processes and files a world needs from outside.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub highlights: PathBuf,
    pub ingester: PathBuf,
    pub moto: PathBuf,
    pub web: PathBuf,
}

impl Binaries {
    /// The binaries next to this program's own (`target/<profile>/`, or its parent when this is
    /// a test binary in `deps/`), and the emulator from the project's `.venv` (`localstack/up`
    /// or `scripts/chaos` installs it).
    pub fn locate(repository: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let mut dir = exe.parent().context("this program has no folder")?.to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let binaries = Self {
            highlights: dir.join("highlights"),
            ingester: dir.join("ingest-fargate"),
            moto: repository.join(".venv/bin/moto_server"),
            web: repository.join("web"),
        };
        for (path, how) in [
            (&binaries.highlights, "cargo build -p highlights-cli"),
            (&binaries.ingester, "cargo build -p ingest-fargate"),
            (&binaries.moto, "localstack/stack install"),
        ] {
            if !path.is_file() {
                bail!("{} is missing: run `{how}` first (scripts/chaos does)", path.display());
            }
        }
        Ok(binaries)
    }
}

/// The AWS emulator (moto in server mode) as a process of the world's own.
struct Emulator {
    moto: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

/// The emulator process ended before it answered (its port was taken, for one).
#[derive(Debug, thiserror::Error)]
#[error("the AWS emulator exited before answering: {0}")]
struct EmulatorExited(String);

impl Emulator {
    async fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.moto)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.moto.display()))?;
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/moto-api/", self.port);
        let started = Instant::now();
        loop {
            if highlights_adapters::tls::http_client()
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!(EmulatorExited(format!("port {}: {status}, see {}", self.port, self.log.display())));
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("timed out after 60 s waiting for the AWS emulator to answer");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts on a port picked free. Another process can take that port before the emulator
    /// binds it (moto needs a number, not port 0): the emulator then exits, and another port is
    /// tried.
    async fn start_on_a_free_port(&mut self) -> anyhow::Result<()> {
        for _ in 0..4 {
            self.port = free_port()?;
            match self.start().await {
                Err(error) if error.is::<EmulatorExited>() => {
                    eprintln!("chaos: the emulator exited ({error}); another port")
                }
                other => return other,
            }
        }
        bail!("the AWS emulator exited on four ports in a row; see {}", self.log.display())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A product process the world started, with the files its output goes to.
pub struct Process {
    child: Child,
    pub stdout: PathBuf,
}

impl Process {
    /// SIGKILL: no chance to finish anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits; `true` when the process exited 0.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct World {
    pub dir: PathBuf,
    binaries: Binaries,
    emulator: Emulator,
    pub aws_proxy: FaultProxy,
    pub postgres: TempPostgres,
    pub postgres_proxy: FaultProxy,
    pub twitch: FakeTwitch,
    pub helix_proxy: FaultProxy,
    pub irc: FakeIrc,
    pub plan: ChatPlan,
    pub resources: Resources,
    sdk: aws_config::SdkConfig,
    env: Vec<(String, String)>,
    /// Detector flags of the runner; the reference detector parses the same ones.
    pub detector_flags: Vec<String>,
    /// Other flags of `highlights local run` (the detector mapping's tumbling window).
    pub runner_flags: Vec<String>,
    /// Started processes so far, per kind, to name their output files.
    started: std::collections::HashMap<&'static str, u32>,
    pub runner: Option<Process>,
    pub ingester: Option<Process>,
    pub server: Option<(Process, String)>,
    /// Every runner's and ingester's stdout (EMF metrics lines), including killed ones.
    pub runner_outputs: Vec<PathBuf>,
    pub ingester_outputs: Vec<PathBuf>,
}

/// A channel that is configured but offline until a scenario puts it live (no chat): the
/// lifecycle path's own traffic.
pub const LATE_CHANNEL: (&str, u64) = ("chaoslate", 799_999);

/// Detector settings that make a moment of a few seconds of chat: a 10-second baseline.
pub const QUICK_DETECTOR: [&str; 10] =
    ["--baseline", "10", "--window", "1", "--warmup-fraction", "0.5", "--hold-cap", "3", "--cooldown", "5"];

fn live_streams(plan: &ChatPlan) -> Vec<FakeStream> {
    plan.channels
        .iter()
        .map(|c| FakeStream::new(&c.login, c.room_id, &format!("stream-{}", c.room_id), 100))
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl World {
    /// Starts everything but the product's processes, and provisions the emulator and the
    /// database as `localstack/up` does.
    pub async fn build(binaries: &Binaries, name: &str, plan: ChatPlan) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("highlights-chaos-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut emulator =
            Emulator { moto: binaries.moto.clone(), port: 0, log: dir.join("emulator.log"), child: None };
        emulator.start_on_a_free_port().await?;
        let aws_proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], emulator.port))).await?;
        let postgres = tokio::task::spawn_blocking(TempPostgres::start)
            .await?
            .map_err(|e| anyhow::anyhow!("cannot start PostgreSQL: {e}"))?;
        let postgres_proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], postgres.port()))).await?;
        let twitch = FakeTwitch::start().await;
        twitch.accept_token(ACCESS);
        twitch.allow_refresh(REFRESH, REFRESHED_ACCESS, "chaos-refresh-2");
        twitch.set_live(&live_streams(&plan));
        let helix_proxy = FaultProxy::start(twitch.addr).await?;
        let mut rooms: Vec<(&str, u64)> =
            plan.channels.iter().map(|c| (c.login.as_str(), c.room_id)).collect();
        rooms.push(LATE_CHANNEL);
        let irc = FakeIrc::start(&rooms).await;

        let resources = Resources::defaults();
        let sdk = aws::local(&LocalAws {
            endpoint_url: format!("http://127.0.0.1:{}", emulator.port),
            region: "us-east-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        })
        .await;
        let owner = format!("postgres://highlights@{}/highlights?sslmode=disable", postgres_proxy.address());
        let mut env: Vec<(String, String)> = vec![
            ("AWS_ENDPOINT_URL".into(), format!("http://{}", aws_proxy.address())),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("TWITCH_HELIX_URL".into(), format!("http://{}/helix", helix_proxy.address())),
            ("TWITCH_OAUTH2_URL".into(), format!("http://{}/oauth2", helix_proxy.address())),
            ("DATABASE_URL".into(), owner.clone()),
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(resources.env_pairs());
        for user in &resources.database_users {
            env.push((user.url_env.clone(), url_as_user(&owner, &user.user).context("a user URL")?));
        }
        let mut world = Self {
            dir,
            binaries: binaries.clone(),
            emulator,
            aws_proxy,
            postgres,
            postgres_proxy,
            twitch,
            helix_proxy,
            irc,
            plan,
            resources,
            sdk,
            env,
            detector_flags: QUICK_DETECTOR.iter().map(|s| (*s).to_owned()).collect(),
            runner_flags: Vec::new(),
            started: Default::default(),
            runner: None,
            ingester: None,
            server: None,
            runner_outputs: Vec::new(),
            ingester_outputs: Vec::new(),
        };
        world.provision().await?;
        world.highlights(&["migrate", "--create-database", "--login-users"]).await?;
        Ok(world)
    }

    /// `highlights local provision` with the fake's app and user token: what `localstack/up` and
    /// a user with Twitch credentials do.
    pub async fn provision(&mut self) -> anyhow::Result<()> {
        let (app, token) = (self.dir.join("app.json"), self.dir.join("token.json"));
        std::fs::write(&app, r#"{"client_id":"chaos-client","client_secret":"chaos-secret"}"#)?;
        std::fs::write(&token, format!(r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH}"}}"#))?;
        let (app, token) = (app.display().to_string(), token.display().to_string());
        self.highlights(&["local", "provision", "--twitch-app-file", &app, "--user-token-file", &token]).await
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Runs a `highlights` command to its end; its output goes to the world's log.
    pub async fn highlights(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut command = self.command(&self.binaries.highlights);
        command.args(args);
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        if !output.status.success() {
            bail!("highlights {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    fn spawn(&mut self, kind: &'static str, mut command: Command) -> anyhow::Result<Process> {
        let n = self.started.entry(kind).or_default();
        *n += 1;
        let stdout = self.dir.join(format!("{kind}-{n}.out"));
        let stderr = self.dir.join(format!("{kind}-{n}.log"));
        let child = command
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("cannot start the {kind}"))?;
        Ok(Process { child, stdout })
    }

    /// Starts `highlights local run` (detector, lifecycle, clipper), printing its metrics.
    pub fn start_runner(&mut self) -> anyhow::Result<()> {
        let mut command = self.command(&self.binaries.highlights);
        let checkpoints = self.dir.join("checkpoints.json");
        command
            .args(["local", "run", "--metrics", "--poll-ms", "20", "--checkpoints"])
            .arg(&checkpoints)
            .args(&self.detector_flags)
            .args(&self.runner_flags);
        let process = self.spawn("runner", command)?;
        self.runner_outputs.push(process.stdout.clone());
        self.runner = Some(process);
        Ok(())
    }

    /// Starts `ingest-fargate`: the plan's channels, polled live through the fake Helix every
    /// 2 s, chat from the fake IRC server, metrics every second.
    pub fn start_ingester(&mut self) -> anyhow::Result<()> {
        let mut command = self.command(&self.binaries.ingester);
        let mut channels: Vec<&str> = self.plan.channels.iter().map(|c| c.login.as_str()).collect();
        channels.push(LATE_CHANNEL.0);
        let ingester_url = self.env_value("DATABASE_URL_INGESTER").unwrap_or_default().to_owned();
        command
            .env("TWITCH_IRC_ADDR", self.irc.url())
            .env("INGEST_CHANNELS", channels.join(","))
            .env("INGEST_POLL_SECONDS", "2")
            .env("INGEST_HEALTH_ADDR", "127.0.0.1:0")
            .env("INGEST_METRICS_SECONDS", "1")
            .env("INGEST_DRAIN_SECONDS", "30")
            .env("DATABASE_URL", ingester_url);
        let process = self.spawn("ingester", command)?;
        self.ingester_outputs.push(process.stdout.clone());
        self.ingester = Some(process);
        Ok(())
    }

    /// Starts `highlights serve` as the API's login user and waits for its URL.
    pub async fn start_server(&mut self) -> anyhow::Result<()> {
        let mut command = self.command(&self.binaries.highlights);
        command.args(["serve", "--listen", "127.0.0.1:0", "--web-dir"]).arg(&self.binaries.web);
        let process = self.spawn("server", command)?;
        let log = self.dir.join(format!("server-{}.log", self.started["server"]));
        let mut url = None;
        poll(Duration::from_secs(30), "the server's URL", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            url = text
                .lines()
                .find_map(|l| l.strip_prefix("serving ")?.split_whitespace().next().map(str::to_owned));
            std::future::ready(url.is_some())
        })
        .await?;
        self.server = Some((process, url.unwrap_or_default()));
        Ok(())
    }

    /// Get Streams reports [`LATE_CHANNEL`] live from now on, besides the plan's channels.
    pub fn go_live_late_channel(&self) {
        let mut live = live_streams(&self.plan);
        live.push(FakeStream::new(LATE_CHANNEL.0, LATE_CHANNEL.1, "stream-late", 10));
        self.twitch.set_live(&live);
    }

    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The AWS SDK straight to the emulator (not through the proxy): the harness's own view,
    /// built once (a restarted emulator keeps its port).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// The database as its owner, straight (not through the proxy).
    pub async fn database(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres.url("highlights"), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Kills the emulator (its state is gone) and starts a new, empty one on the same port.
    pub async fn restart_emulator(&mut self) -> anyhow::Result<()> {
        self.emulator.kill();
        self.emulator.start().await
    }

    /// Starts the product (runner, ingester, API) and waits until the ingester has joined every
    /// channel and the lifecycle consumer has marked each live: chat sent from then on is read.
    pub async fn start_product(&mut self) -> anyhow::Result<()> {
        self.start_runner()?;
        self.start_ingester()?;
        self.start_server().await?;
        let logins: Vec<&str> = self.plan.channels.iter().map(|c| c.login.as_str()).collect();
        if !self.irc.wait_joined(&logins, Duration::from_secs(60)).await {
            bail!("the ingester did not join {logins:?} within 60 s; see {}", self.dir.display());
        }
        let db = self.database().await?;
        let want = self.plan.channels.len() as i64;
        poll(Duration::from_secs(60), "every channel live in the streamers table", || async {
            db.query_one("SELECT count(*) FROM streamers WHERE is_live", &[])
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == want)
        })
        .await
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.runner.take();
        self.ingester.take();
        self.server.take();
        self.emulator.kill();
    }
}

/// Polls `check` every 50 ms until it holds, or fails after `deadline` saying what it waited for.
pub async fn poll<F, Fut>(deadline: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > deadline {
            bail!("timed out after {} s waiting for {what}", deadline.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
