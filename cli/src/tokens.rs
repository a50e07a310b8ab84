//! `highlights tokens seed`: Twitch's OAuth authorization code flow for the user whose token
//! creates clips (scope `clips:edit`, and with `--vod` `editor:manage:clips`, so clips are cut
//! from the stream's VOD at the moment) — the seed's `seed_twitch_tokens.py`.
//!
//! Prints the authorize URL, waits for Twitch's redirect on a localhost port, checks `state`,
//! exchanges the code, and stores the tokens in Secrets Manager (the user-token secret, and the
//! app credentials secret with `--store-app`) or in a file readable only by the owner. Tokens
//! are never printed.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
#[cfg(feature = "cloud")]
use highlights_adapters::resources::Resources;
use highlights_adapters::twitch::{
    AppCredentials, DEFAULT_OAUTH2_URL, Secret, TwitchOAuth, UserToken, VOD_CLIP_SCOPES,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Authorize a Twitch user for clip creation and store the tokens.
    Seed(SeedArgs),
}

#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    /// The Twitch application's client id.
    #[arg(long, env = "TWITCH_CLIENT_ID")]
    client_id: String,
    /// The application's client secret (prefer the environment variable to the command line).
    #[arg(long, env = "TWITCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Local port for Twitch's redirect; the app's OAuth Redirect URL must be
    /// http://localhost:PORT/callback (0: any free port, for tests).
    #[arg(long, default_value_t = 17563)]
    port: u16,
    /// Write the tokens to this file (mode 0600) instead of Secrets Manager.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also store the app credentials in the app secret (Secrets Manager only).
    #[arg(long)]
    store_app: bool,
    /// Twitch OAuth base URL.
    #[arg(long, env = "TWITCH_OAUTH2_URL", default_value = DEFAULT_OAUTH2_URL)]
    oauth_url: String,
    /// Give up waiting for the redirect after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Also ask for `editor:manage:clips`: authorize as the broadcaster or one of the channel's
    /// editors, and clips are cut from the stream's VOD exactly on the moment (Create Clip From
    /// VOD), also for `highlights clips from-vod`.
    #[arg(long)]
    vod: bool,
}

pub fn run(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Seed(args) => crate::runtime()?.block_on(seed(args)),
    }
}

/// 128 random bits, hex: the `state` that ties the redirect to this run.
fn random_state() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    // Before the browser step, not after it.
    #[cfg(not(feature = "cloud"))]
    if args.out.is_none() {
        return Err(crate::not_in_this_build("storing tokens in Secrets Manager (use --out FILE)"));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://localhost:{port}/callback");
    let state = random_state()?;
    let oauth = TwitchOAuth::new(highlights_adapters::tls::http_client(), &args.oauth_url);
    eprintln!("Open this URL, log in as the account that will create clips, and authorize:\n");
    let scopes: &[&str] = if args.vod { &["clips:edit", VOD_CLIP_SCOPES[0]] } else { &["clips:edit"] };
    eprintln!("{}\n", oauth.authorize_url(&args.client_id, &redirect_uri, scopes, &state));
    eprintln!("waiting for Twitch's redirect to {redirect_uri} ...");

    let code = tokio::time::timeout(Duration::from_secs(args.timeout_s), receive_code(&listener, &state))
        .await
        .context("no redirect arrived in time")??;
    let app = AppCredentials {
        client_id: args.client_id.clone(),
        client_secret: Secret::new(args.client_secret.clone()),
    };
    let mut token =
        oauth.exchange_code(&app, &code, &redirect_uri).await.context("the code exchange failed")?;
    if !token.scopes.iter().any(|s| s == "clips:edit") {
        bail!("Twitch granted {:?} but clip creation needs clips:edit", token.scopes);
    }
    if args.vod && !token.can_clip_vods() {
        eprintln!(
            "Twitch did not grant {}: clips will be made from the live stream, not cut from VODs",
            VOD_CLIP_SCOPES[0]
        );
    }
    // The clipper recognises its own clips by this user (after a Create Clip without an answer).
    token.user_id =
        Some(oauth.user_id(&token.access_token).await.context("Twitch did not validate the new token")?);
    store(&args, &app, &token).await
}

/// Serves redirects until one carries a code; answers the browser with a short page.
async fn receive_code(listener: &tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut request = vec![0u8; 8192];
        let read = socket.read(&mut request).await?;
        let text = String::from_utf8_lossy(&request[..read]);
        let target = text.lines().next().and_then(|line| line.split(' ').nth(1)).unwrap_or("");
        let Some(query) = target.strip_prefix("/callback?") else {
            socket
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            continue;
        };
        let param = |name: &str| {
            query.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}="))).map(str::to_owned)
        };
        let (status, body, result) = match (param("state"), param("code"), param("error")) {
            (Some(got), _, _) if got != state => (
                "400 Bad Request",
                "State mismatch: start again.",
                Err(anyhow::anyhow!(
                    "the redirect's state does not match this run (possible forgery); nothing stored"
                )),
            ),
            (_, Some(code), _) => ("200 OK", "Authorized. You can close this tab.", Ok(code)),
            (_, _, Some(error)) => {
                ("400 Bad Request", "Authorization refused.", Err(anyhow::anyhow!("Twitch reported {error}")))
            }
            _ => (
                "400 Bad Request",
                "No code in the redirect.",
                Err(anyhow::anyhow!("the redirect carried no code")),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await?;
        return result;
    }
}

async fn store(args: &SeedArgs, app: &AppCredentials, token: &UserToken) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(token)?;
    if let Some(path) = &args.out {
        highlights_adapters::tokens::write_private_file(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tokens stored in {} (mode 0600)", path.display());
        return Ok(());
    }
    store_in_secrets(args, app, json).await
}

#[cfg(not(feature = "cloud"))]
async fn store_in_secrets(_: &SeedArgs, _: &AppCredentials, _: String) -> anyhow::Result<()> {
    unreachable!("refused before the browser step")
}

#[cfg(feature = "cloud")]
async fn store_in_secrets(args: &SeedArgs, app: &AppCredentials, json: String) -> anyhow::Result<()> {
    let resources = Resources::from_env();
    let sdk = highlights_adapters::aws::from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let put = |name: String, value: String| {
        let secrets = secrets.clone();
        async move {
            secrets.put_secret_value().secret_id(&name).secret_string(value).send().await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot store secret {name}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })
        }
    };
    put(resources.twitch_user_token_secret.name.clone(), json).await?;
    eprintln!("tokens stored in secret {}", resources.twitch_user_token_secret.name);
    if args.store_app {
        put(resources.twitch_app_secret.name.clone(), serde_json::to_string(app)?).await?;
        eprintln!("app credentials stored in secret {}", resources.twitch_app_secret.name);
    }
    Ok(())
}
