//! `highlights tokens seed`: Twitch's OAuth authorization code flow for the user whose token
//! creates clips (scope `clips:edit`, and with `--vod` `editor:manage:clips`, so clips are cut
//! from the stream's VOD at the moment) — the seed's `seed_twitch_tokens.py`.
//!
//! Prints the authorize URL, waits for Twitch's redirect on a localhost port, checks `state`,
//! exchanges the code (twitch_oauth2's code flow, which also validates the token), and stores
//! the tokens in Secrets Manager (the user-token secret, and the app credentials secret with
//! `--store-app`) or in a file readable only by the owner. Tokens are never printed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
#[cfg(feature = "cloud")]
use highlights_adapters::resources::Resources;
use highlights_adapters::twitch::{
    AppCredentials, CodeFlow, DEFAULT_OAUTH2_URL, Secret, TwitchOAuth, UserToken, VOD_CLIP_SCOPES,
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
    let app = AppCredentials {
        client_id: args.client_id.clone(),
        client_secret: Secret::new(args.client_secret.clone()),
    };
    let oauth = TwitchOAuth::new(highlights_adapters::tls::http_client(), &args.oauth_url);
    let scopes: &[&str] = if args.vod { &["clips:edit", VOD_CLIP_SCOPES[0]] } else { &["clips:edit"] };
    let flow = oauth.code_flow(&app, &redirect_uri, scopes)?;
    eprintln!("Open this URL, log in as the account that will create clips, and authorize:\n");
    eprintln!("{}\n", flow.authorize_url());
    eprintln!("waiting for Twitch's redirect to {redirect_uri} ...");

    let (state, code) =
        tokio::time::timeout(Duration::from_secs(args.timeout_s), receive_code(&listener, &flow))
            .await
            .context("no redirect arrived in time")??;
    // The exchange validates the token, which names its user: the clipper recognises its own
    // clips by this user (after a Create Clip without an answer).
    let token = flow.exchange(&oauth, &state, &code).await.context("the code exchange failed")?;
    if !token.scopes.iter().any(|s| s == "clips:edit") {
        bail!("Twitch granted {:?} but clip creation needs clips:edit", token.scopes);
    }
    if args.vod && !token.can_clip_vods() {
        eprintln!(
            "Twitch did not grant {}: clips will be made from the live stream, not cut from VODs",
            VOD_CLIP_SCOPES[0]
        );
    }
    store(&args, &app, &token).await
}

/// Serves redirects until one comes to `/callback`; answers the browser with a short page and
/// returns the redirect's state and code, percent-decoded, when the state is this flow's.
async fn receive_code(
    listener: &tokio::net::TcpListener,
    flow: &CodeFlow,
) -> anyhow::Result<(String, String)> {
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
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let (status, body, result) = match (param("state"), param("code"), param("error")) {
            (None, _, _) => (
                "400 Bad Request",
                "No state in the redirect: start again.",
                Err(anyhow::anyhow!("the redirect carried no state (possible forgery); nothing stored")),
            ),
            (Some(got), _, _) if !flow.state_matches(&got) => (
                "400 Bad Request",
                "State mismatch: start again.",
                Err(anyhow::anyhow!(
                    "the redirect's state does not match this run (possible forgery); nothing stored"
                )),
            ),
            (Some(state), Some(code), _) => {
                ("200 OK", "Authorized. You can close this tab.", Ok((state, code)))
            }
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
