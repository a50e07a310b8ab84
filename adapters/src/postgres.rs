//! PostgreSQL: connecting from `DATABASE_URL`, the schema migrations (`adapters/migrations/`,
//! embedded in every binary), and a small connection pool.
//!
//! TLS (rustls) follows the URL's `sslmode`: `prefer` (the default) uses TLS when the server
//! offers it, `require` insists (RDS, RDS Proxy), `disable` never tries. Server certificates are
//! checked against the Mozilla roots (RDS Proxy's certificates chain to Amazon's public roots)
//! plus the PEM bundle named by `PGSSLROOTCERT`, if set (the RDS CA bundle for direct RDS).
//! With `channel_binding=require` (in the URL, or `DATABASE_CHANNEL_BINDING=require` for a
//! deployed function) the certificate chain is not checked: the server authenticates itself by
//! SCRAM-SHA-256-PLUS, bound to this TLS session, and a server that offers anything else (MD5,
//! a cleartext password, no authentication) gets no password. That is how the starter profile
//! reaches RDS on its public endpoint without shipping the RDS CA bundle (docs/deploy.md).
//!
//! Errors name the server and database but never the password in the URL.
//!
//! Only with the `postgres` feature, like the tables' adapters beside it ([`clips`],
//! [`streamers`]); `highlights dev` keeps its data in SQLite and builds without PostgreSQL.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::Config;
use tokio_postgres::config::ChannelBinding;
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) mod clips;
pub(crate) mod streamers;

#[cfg(feature = "migrations")]
mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a PostgreSQL connection string")]
    BadUrl,
    #[error("DATABASE_URL names no database")]
    NoDatabase,
    #[error("database name {0:?} may only contain letters, digits, '_' and '-'")]
    BadDatabaseName(String),
    #[error("cannot connect to {target}: {}", with_causes(source))]
    Connect { target: String, source: tokio_postgres::Error },
    #[cfg(feature = "migrations")]
    #[error("migrating {target} failed: {source}")]
    Migrate { target: String, source: refinery::Error },
    #[error("query on {target} failed: {source}")]
    Query { target: String, source: tokio_postgres::Error },
    #[error("cannot build a connection pool: {0}")]
    Pool(String),
    #[error("DATABASE_CHANNEL_BINDING must be require, prefer or disable (got {0:?})")]
    BadChannelBinding(String),
    #[error("cannot read the CA bundle {path} (PGSSLROOTCERT): {reason}")]
    RootCertificates { path: String, reason: String },
    #[error("no database configured: set DATABASE_URL, or DATABASE_SECRET_ARN (an RDS secret)")]
    NotConfigured,
    #[error("cannot use the database secret {secret}: {reason}")]
    Secret { secret: String, reason: String },
    #[error("{0:?} is not a plain PostgreSQL role name (lower-case letters, digits, '_')")]
    BadRoleName(String),
    #[error("cannot set up login user {user} on {target}: {source}")]
    LoginUser { user: String, target: String, source: tokio_postgres::Error },
}

/// An error and its causes, `: `-separated: tokio-postgres says "authentication error" or "error
/// performing TLS handshake" and keeps the why (channel binding refused, an untrusted
/// certificate) in its source. None of them carries the password.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// A component's PostgreSQL login user, as its secret describes it; `Debug` hides the password.
#[derive(Clone)]
pub struct LoginUser {
    pub user: String,
    /// The group role whose rights the user gets (created by the migrations).
    pub role: String,
    password: String,
}

impl std::fmt::Debug for LoginUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginUser({} in {})", self.user, self.role)
    }
}

fn plain_role_name(name: &str) -> Result<&str, DbError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && name.len() <= 63
    {
        Ok(name)
    } else {
        Err(DbError::BadRoleName(name.to_owned()))
    }
}

#[cfg(feature = "secrets")]
/// The login users of every component in `resources`, each read from its own secret. The
/// secret must name the user the configuration expects: a secret cannot grant another user
/// rights. Errors name the secret, never its contents.
pub async fn login_users_from_secrets(
    secrets: &aws_sdk_secretsmanager::Client,
    resources: &crate::resources::Resources,
) -> Result<Vec<LoginUser>, DbError> {
    let mut users = Vec::new();
    for wanted in &resources.database_users {
        let credentials = read_rds_secret(secrets, &wanted.secret.name).await?;
        if credentials.username != wanted.user {
            return Err(DbError::Secret {
                secret: wanted.secret.name.clone(),
                reason: format!("it is for user {:?}, expected {:?}", credentials.username, wanted.user),
            });
        }
        users.push(LoginUser {
            user: wanted.user.clone(),
            role: wanted.role.clone(),
            password: credentials.password,
        });
    }
    Ok(users)
}

#[cfg(feature = "secrets")]
async fn read_rds_secret(secrets: &aws_sdk_secretsmanager::Client, id: &str) -> Result<RdsSecret, DbError> {
    let error = |reason: String| DbError::Secret { secret: id.to_owned(), reason };
    let value = secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| error(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    serde_json::from_str(value.secret_string().unwrap_or_default())
        .map_err(|_| error("not an RDS credentials secret (username, password)".into()))
}

/// Parsed connection settings plus a printable, password-free description of them.
#[derive(Clone)]
pub struct Database {
    config: Config,
    target: String,
    tls: MakeRustlsConnect,
}

/// The TLS client: Mozilla's roots plus an optional PEM bundle; with channel binding required,
/// one that leaves authenticating the server to SCRAM (see the module's documentation).
fn tls_connector(
    extra_roots: Option<&str>,
    channel_binding: ChannelBinding,
) -> Result<MakeRustlsConnect, DbError> {
    if channel_binding == ChannelBinding::Require {
        return Ok(MakeRustlsConnect::new(crate::tls::client_config_for_channel_binding()));
    }
    let mut roots = crate::tls::mozilla_roots();
    if let Some(path) = extra_roots {
        let error = |reason: String| DbError::RootCertificates { path: path.to_owned(), reason };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            roots.add(certificate.map_err(|e| error(e.to_string()))?).map_err(|e| error(e.to_string()))?;
        }
    }
    Ok(MakeRustlsConnect::new(crate::tls::client_config(roots)))
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.target)
    }
}

#[cfg(feature = "secrets")]
/// The JSON of an RDS-managed credentials secret (the fields this needs).
#[derive(serde::Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    dbname: Option<String>,
}

#[cfg(feature = "secrets")]
/// The database of a deployed function: `DATABASE_URL` when set (local runs), otherwise the RDS
/// secret named by `DATABASE_SECRET_ARN`, reached at `DATABASE_HOST` (the RDS Proxy endpoint)
/// when set, in database `DATABASE_NAME` (default: the secret's, else `highlights`), with TLS
/// required, and SCRAM channel binding as `DATABASE_CHANNEL_BINDING` says (`require` where no
/// proxy stands in front of RDS).
pub async fn database_from_env(secrets: &aws_sdk_secretsmanager::Client) -> Result<Database, DbError> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Database::from_url(&url);
    }
    let arn = std::env::var("DATABASE_SECRET_ARN").map_err(|_| DbError::NotConfigured)?;
    let secret = read_rds_secret(secrets, &arn).await?;
    let host = std::env::var("DATABASE_HOST").ok().filter(|h| !h.is_empty()).unwrap_or(secret.host);
    let name = std::env::var("DATABASE_NAME").ok().or(secret.dbname).unwrap_or_else(|| "highlights".into());
    let channel_binding = channel_binding_named(std::env::var("DATABASE_CHANNEL_BINDING").ok().as_deref())?;
    let mut config = Config::new();
    config
        .channel_binding(channel_binding)
        .host(&host)
        .port(secret.port.unwrap_or(5432))
        .user(&secret.username)
        .password(secret.password)
        .dbname(&name)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    Database::from_config(config)
}

#[cfg(feature = "secrets")]
/// `DATABASE_CHANNEL_BINDING`: unset or empty is libpq's default, `prefer`.
fn channel_binding_named(value: Option<&str>) -> Result<ChannelBinding, DbError> {
    match value.unwrap_or("") {
        "" | "prefer" => Ok(ChannelBinding::Prefer),
        "require" => Ok(ChannelBinding::Require),
        "disable" => Ok(ChannelBinding::Disable),
        other => Err(DbError::BadChannelBinding(other.to_owned())),
    }
}

impl Database {
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let config: Config = url.parse().map_err(|_| DbError::BadUrl)?;
        Self::from_config(config)
    }

    fn from_config(config: Config) -> Result<Self, DbError> {
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""));
        let extra_roots = std::env::var("PGSSLROOTCERT").ok().filter(|p| !p.is_empty());
        let tls = tls_connector(extra_roots.as_deref(), config.get_channel_binding())?;
        Ok(Self { config, target, tls })
    }

    /// `host:port/database`, safe to print.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn database_name(&self) -> Result<&str, DbError> {
        self.config.get_dbname().ok_or(DbError::NoDatabase)
    }

    /// One connection, its driver task spawned on the current runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, DbError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|source| DbError::Connect { target: self.target.clone(), source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres connection closed with an error");
            }
        });
        Ok(client)
    }

    /// Creates the database named in the URL when it does not exist (connecting to the
    /// server's `postgres` database to do so). Returns whether it was created.
    pub async fn create_if_missing(&self) -> Result<bool, DbError> {
        let name = self.database_name()?.to_owned();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(DbError::BadDatabaseName(name));
        }
        let mut admin = self.clone();
        admin.config.dbname("postgres");
        let client = admin.connect().await?;
        let query_error = |source| DbError::Query { target: admin.target.clone(), source };
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(query_error)?;
        if exists.is_some() {
            return Ok(false);
        }
        // The name was checked above; identifiers cannot be bound as parameters.
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.map_err(query_error)?;
        Ok(true)
    }

    #[cfg(feature = "migrations")]
    /// Applies the migrations that are not applied yet; returns the names of those applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut client = self.connect().await?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|source| DbError::Migrate { target: self.target.clone(), source })?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    #[cfg(feature = "migrations")]
    /// Applies the migrations up to version `version` only (tests of a later migration on data
    /// written under an earlier schema).
    pub async fn migrate_to(&self, version: i32) -> Result<Vec<String>, DbError> {
        let mut client = self.connect().await?;
        let report = embedded::migrations::runner()
            .set_target(refinery::Target::Version(version))
            .run_async(&mut client)
            .await
            .map_err(|source| DbError::Migrate { target: self.target.clone(), source })?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    /// Creates each login user when missing, sets its password to its secret's (sent as a
    /// SCRAM-SHA-256 verifier, so the clear password reaches neither the server nor its logs) and
    /// makes it a member of its group role. Runs as a user that may create roles (the owner:
    /// the migration step); safe to repeat, and a changed secret is a password rotation.
    pub async fn ensure_login_users(&self, users: &[LoginUser]) -> Result<(), DbError> {
        let client = self.connect().await?;
        for user in users {
            let name = plain_role_name(&user.user)?;
            let role = plain_role_name(&user.role)?;
            let verifier = postgres_protocol::password::scram_sha_256(user.password.as_bytes());
            // Role names were checked above and the verifier is base64 with '$' and ':', so
            // neither can break out of its quoting; DDL takes no bound parameters.
            let statements = format!(
                "DO $$ BEGIN \
                   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN \
                     BEGIN CREATE ROLE {name} LOGIN; \
                     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; \
                   END IF; \
                 END $$; \
                 ALTER ROLE {name} WITH LOGIN PASSWORD '{}'; \
                 GRANT {role} TO {name};",
                verifier.replace('\'', "''")
            );
            client.batch_execute(&statements).await.map_err(|source| DbError::LoginUser {
                user: name.to_owned(),
                target: self.target.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// A pool of at most `max_size` connections (1–2 per Lambda instance).
    pub fn pool(&self, max_size: usize) -> Result<Pool, DbError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager).max_size(max_size).build().map_err(|e| DbError::Pool(e.to_string()))
    }
}

/// Names of all migrations embedded in this build, oldest first.
#[cfg(feature = "migrations")]
pub fn migration_names() -> Vec<String> {
    embedded::migrations::runner().get_migrations().iter().map(|m| m.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_the_password() {
        let db = Database::from_url("postgres://user:s3cret-pw@db.example:6543/clips").unwrap();
        assert_eq!(db.target(), "db.example:6543/clips");
        assert!(!format!("{db:?}").contains("s3cret"));
        assert!(matches!(Database::from_url("postgres://u:p@h:notaport/x"), Err(DbError::BadUrl)));
    }

    #[tokio::test]
    async fn sslmode_require_refuses_a_server_without_tls() {
        // Nothing listens on port 9: the point is that the URL parses with sslmode and the
        // attempt fails cleanly, without the password in the error.
        let db = Database::from_url("postgres://u:pw-secret@127.0.0.1:9/x?sslmode=require").unwrap();
        let error = db.connect().await.unwrap_err().to_string();
        assert!(error.starts_with("cannot connect to 127.0.0.1:9/x"), "{error}");
        assert!(!error.contains("pw-secret"));
    }

    #[test]
    fn role_names_must_be_plain() {
        assert!(plain_role_name("highlights_api").is_ok());
        for bad in ["", "Api", "api; DROP TABLE clips", "1api", "a\"b", &"a".repeat(64)] {
            assert!(matches!(plain_role_name(bad), Err(DbError::BadRoleName(_))), "{bad}");
        }
        let user = LoginUser { user: "u".into(), role: "r".into(), password: "pw-secret".into() };
        assert!(!format!("{user:?}").contains("pw-secret"));
    }

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let error =
            tls_connector(Some("/nonexistent/rds-ca.pem"), ChannelBinding::Prefer).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/rds-ca.pem"), "{error}");
    }

    #[cfg(feature = "secrets")]
    #[test]
    fn the_channel_binding_setting_is_one_of_three_words() {
        assert_eq!(channel_binding_named(None).unwrap(), ChannelBinding::Prefer);
        assert_eq!(channel_binding_named(Some("")).unwrap(), ChannelBinding::Prefer);
        assert_eq!(channel_binding_named(Some("require")).unwrap(), ChannelBinding::Require);
        assert_eq!(channel_binding_named(Some("disable")).unwrap(), ChannelBinding::Disable);
        let error = channel_binding_named(Some("yes")).unwrap_err().to_string();
        assert!(error.contains("DATABASE_CHANNEL_BINDING") && error.contains("\"yes\""), "{error}");
    }

    #[cfg(feature = "migrations")]
    #[test]
    fn migrations_are_embedded() {
        assert_eq!(migration_names().first().map(String::as_str), Some("V1__initial"));
    }
}
