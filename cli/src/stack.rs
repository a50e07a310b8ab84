//! `highlights migrate` and `highlights local ...`: the database schema and the local cloud
//! (feature `cloud`).

use std::path::PathBuf;

use anyhow::Context as _;
use highlights_adapters::postgres::{Database, login_users_from_secrets};
use highlights_adapters::provision::{self, Outcome, ProvisionOptions, SecretValue};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::url_as_user;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Create the database first when it does not exist.
    #[arg(long)]
    create_database: bool,
    /// Also create each component's login user (api, ingester, clipper, lifecycle) with the
    /// password in its secret, read from Secrets Manager at AWS_ENDPOINT_URL; what the deploy's
    /// migration step does. Needs a user that may create roles.
    #[arg(long)]
    login_users: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum LocalCommand {
    /// Create (or complete) the Kinesis streams, DynamoDB tables, SQS dead-letter queues and
    /// Secrets Manager secrets, at the endpoint in AWS_ENDPOINT_URL. Idempotent.
    Provision(ProvisionArgs),
    /// Print `export VAR=name` for every resource (from config/resources.json and overrides).
    Names,
    /// Play Lambda's event-source mappings against the local stack: poll the Kinesis streams and
    /// call the detector and lifecycle handlers in-process, until Ctrl-C.
    Run(Box<crate::local_run::RunArgs>),
    /// Put recorded chat into the chat-messages stream, batched as the ingester batches it.
    Replay(crate::replay::ReplayArgs),
}

#[derive(clap::Args, Debug)]
pub struct ProvisionArgs {
    /// Shards per Kinesis stream.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// JSON file with the Twitch app credentials (`{"client_id","client_secret"}`).
    #[arg(long, value_name = "FILE")]
    twitch_app_file: Option<PathBuf>,
    /// JSON file with the Twitch user token (`{"access_token","refresh_token",...}`).
    #[arg(long, value_name = "FILE")]
    user_token_file: Option<PathBuf>,
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let database = Database::from_url(&args.database_url)?;
    crate::runtime()?.block_on(async {
        if args.create_database && database.create_if_missing().await? {
            eprintln!("created database {}", database.target());
        }
        let applied = database.migrate().await?;
        if applied.is_empty() {
            eprintln!("{}: schema is up to date", database.target());
        }
        for name in applied {
            eprintln!("{}: applied {name}", database.target());
        }
        if args.login_users {
            let config = highlights_adapters::aws::from_env().await;
            let secrets = aws_sdk_secretsmanager::Client::new(&config);
            let users = login_users_from_secrets(&secrets, &Resources::from_env()).await?;
            database.ensure_login_users(&users).await?;
            for user in users {
                eprintln!("{}: login user {} (member of {})", database.target(), user.user, user.role);
            }
        }
        anyhow::Ok(())
    })
}

pub fn local(command: LocalCommand) -> anyhow::Result<()> {
    match command {
        LocalCommand::Provision(args) => provision(args),
        LocalCommand::Run(args) => crate::local_run::run(*args),
        LocalCommand::Replay(args) => crate::replay::run(args),
        LocalCommand::Names => {
            let resources = Resources::from_env();
            for (env, name) in resources.env_pairs() {
                println!("export {env}={name}");
            }
            // Each component's own login user, on the same database.
            if let Ok(url) = std::env::var("DATABASE_URL") {
                for user in &resources.database_users {
                    if let Some(own) = url_as_user(&url, &user.user) {
                        println!("export {}={own}", user.url_env);
                    }
                }
            }
            Ok(())
        }
    }
}

fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let read_secret = |path: &Option<PathBuf>| -> anyhow::Result<Option<SecretValue>> {
        let Some(path) = path else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        SecretValue::from_json(text).map(Some).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))
    };
    let options = ProvisionOptions {
        shards: args.shards,
        twitch_app: read_secret(&args.twitch_app_file)?,
        user_token: read_secret(&args.user_token_file)?,
        ..ProvisionOptions::default()
    };
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: provisioning is for the local emulator or LocalStack \
         (production resources come from `cdk deploy`)"
    );
    let resources = Resources::from_env();
    crate::runtime()?.block_on(async {
        let config = highlights_adapters::aws::from_env().await;
        for item in provision::provision(&config, &resources, &options).await? {
            let outcome = match item.outcome {
                Outcome::Created => "created",
                Outcome::Existed => "exists",
                Outcome::Updated => "updated",
            };
            eprintln!("{:<15} {:<45} {outcome}", item.kind, item.name);
        }
        anyhow::Ok(())
    })
}

/// The connection string of `component` (`api`, `clipper`, ...) in a local run: `given` (its
/// command-line flag), else its own user's URL (`DATABASE_URL_API`, ... in `.local/stack/env`),
/// else `DATABASE_URL`.
pub fn component_database_url(given: Option<String>, component: &str) -> anyhow::Result<String> {
    let own_env = Resources::defaults().database_user(component).map(|user| user.url_env.clone());
    given
        .or_else(|| own_env.as_deref().and_then(|env| std::env::var(env).ok()))
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|url| !url.is_empty())
        .with_context(|| {
            format!(
                "no database for the {component}: pass --database-url, or set {} or DATABASE_URL \
                 (`. .local/stack/env` after localstack/up)",
                own_env.as_deref().unwrap_or("its variable")
            )
        })
}
