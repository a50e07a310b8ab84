//! PostgreSQL: connecting from `DATABASE_URL`, the schema migrations (`adapters/migrations/`,
//! embedded in every binary), and a small connection pool.
//!
//! TLS (rustls) follows the URL's `sslmode`: `prefer` (the default) uses TLS when the server
//! offers it, `require` insists (RDS, RDS Proxy), `disable` never tries. Server certificates are
//! checked against the Mozilla roots (RDS Proxy's certificates chain to Amazon's public roots)
//! plus the PEM bundle named by `PGSSLROOTCERT`, if set (the RDS CA bundle for direct RDS).
//!
//! Errors name the server and database but never the password in the URL.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

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
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: tokio_postgres::Error },
    #[error("migrating {target} failed: {source}")]
    Migrate { target: String, source: refinery::Error },
    #[error("query on {target} failed: {source}")]
    Query { target: String, source: tokio_postgres::Error },
    #[error("cannot build a connection pool: {0}")]
    Pool(String),
    #[error("cannot read the CA bundle {path} (PGSSLROOTCERT): {reason}")]
    RootCertificates { path: String, reason: String },
    #[error("no database configured: set DATABASE_URL, or DATABASE_SECRET_ARN (an RDS secret)")]
    NotConfigured,
    #[error("cannot use the database secret {secret}: {reason}")]
    Secret { secret: String, reason: String },
}

/// Parsed connection settings plus a printable, password-free description of them.
#[derive(Clone)]
pub struct Database {
    config: Config,
    target: String,
    tls: MakeRustlsConnect,
}

/// The TLS client: Mozilla's roots plus an optional PEM bundle.
fn tls_connector(extra_roots: Option<&str>) -> Result<MakeRustlsConnect, DbError> {
    let mut roots = crate::tls::mozilla_roots();
    if let Some(path) = extra_roots {
        let error = |reason: String| DbError::RootCertificates { path: path.to_owned(), reason };
        let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
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

/// The database of a deployed function: `DATABASE_URL` when set (local runs), otherwise the RDS
/// secret named by `DATABASE_SECRET_ARN`, reached at `DATABASE_HOST` (the RDS Proxy endpoint)
/// when set, in database `DATABASE_NAME` (default: the secret's, else `highlights`), with TLS
/// required.
pub async fn database_from_env(secrets: &aws_sdk_secretsmanager::Client) -> Result<Database, DbError> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Database::from_url(&url);
    }
    let arn = std::env::var("DATABASE_SECRET_ARN").map_err(|_| DbError::NotConfigured)?;
    let error = |reason: String| DbError::Secret { secret: arn.clone(), reason };
    let value = secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| error(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    let secret: RdsSecret = serde_json::from_str(value.secret_string().unwrap_or_default())
        .map_err(|_| error("not an RDS credentials secret (username, password, host)".into()))?;
    let host = std::env::var("DATABASE_HOST").ok().filter(|h| !h.is_empty()).unwrap_or(secret.host);
    let name = std::env::var("DATABASE_NAME").ok().or(secret.dbname).unwrap_or_else(|| "highlights".into());
    let mut config = Config::new();
    config
        .host(&host)
        .port(secret.port.unwrap_or(5432))
        .user(&secret.username)
        .password(secret.password)
        .dbname(&name)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    Database::from_config(config)
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
        Ok(Self { config, target, tls: tls_connector(extra_roots.as_deref())? })
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

    /// Applies the migrations that are not applied yet; returns the names of those applied now.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut client = self.connect().await?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|source| DbError::Migrate { target: self.target.clone(), source })?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

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
    fn a_missing_ca_bundle_is_a_clear_error() {
        let error = tls_connector(Some("/nonexistent/rds-ca.pem")).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/rds-ca.pem"), "{error}");
    }

    #[test]
    fn migrations_are_embedded() {
        assert_eq!(migration_names().first().map(String::as_str), Some("V1__initial"));
    }
}
