//! The local stack's environment file (`.local/stack/env`, written by `localstack/up`): how tests
//! and the CLI find the emulator and the database without anyone exporting variables by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where `localstack/up` writes the environment, relative to the repository root.
pub const ENV_FILE: &str = ".local/stack/env";

/// What to tell someone whose stack is not running.
pub const HOW_TO_START: &str = "start the local stack with `localstack/up` (it installs what it needs), \
     or set HIGHLIGHTS_STACK_ENV to the environment file of a running one";

/// An AWS-compatible endpoint with static test credentials (the local emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAws {
    pub endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StackEnvError {
    #[error("no local stack environment file at {0}: {HOW_TO_START}")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} does not set {key}: rerun `localstack/up`")]
    MissingKey { path: PathBuf, key: &'static str },
}

/// The variables of a running local stack.
#[derive(Debug, Clone)]
pub struct StackEnv {
    pub path: PathBuf,
    pub vars: BTreeMap<String, String>,
}

impl StackEnv {
    /// Reads the file named by `HIGHLIGHTS_STACK_ENV`, or `.local/stack/env` in the repository
    /// that contains `start` (searching upwards).
    pub fn discover(start: &Path) -> Result<Self, StackEnvError> {
        let path = match std::env::var_os("HIGHLIGHTS_STACK_ENV") {
            Some(path) => PathBuf::from(path),
            None => start
                .ancestors()
                .map(|dir| dir.join(ENV_FILE))
                .find(|candidate| candidate.is_file())
                .unwrap_or_else(|| start.join(ENV_FILE)),
        };
        Self::read(&path)
    }

    pub fn read(path: &Path) -> Result<Self, StackEnvError> {
        if !path.is_file() {
            return Err(StackEnvError::Missing(path.to_owned()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|source| StackEnvError::Read { path: path.to_owned(), source })?;
        Ok(Self { path: path.to_owned(), vars: parse(&text) })
    }

    pub fn get(&self, key: &'static str) -> Result<&str, StackEnvError> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| StackEnvError::MissingKey { path: self.path.clone(), key })
    }

    pub fn aws(&self) -> Result<LocalAws, StackEnvError> {
        Ok(LocalAws {
            endpoint_url: self.get("AWS_ENDPOINT_URL")?.to_owned(),
            region: self.get("AWS_REGION")?.to_owned(),
            access_key_id: self.get("AWS_ACCESS_KEY_ID")?.to_owned(),
            secret_access_key: self.get("AWS_SECRET_ACCESS_KEY")?.to_owned(),
        })
    }

    pub fn database_url(&self) -> Result<&str, StackEnvError> {
        self.get("DATABASE_URL")
    }
}

/// `url` (`postgres://[user[:password]@]host...`) with `user` as its user and no password: the
/// local stack trusts loopback connections, so a component's URL only names who it is.
pub fn url_as_user(url: &str, user: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
    Some(format!("{scheme}://{user}@{}", &rest[host_start..]))
}

/// Parses `export KEY=value` / `KEY=value` lines; `#` comments and blank lines are skipped, and
/// one level of matching single or double quotes is removed.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
                .unwrap_or(value);
            Some((key.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_urls_name_their_user_and_drop_any_password() {
        let as_api = |url| url_as_user(url, "highlights_api");
        assert_eq!(
            as_api("postgres://highlights@127.0.0.1:54329/highlights").as_deref(),
            Some("postgres://highlights_api@127.0.0.1:54329/highlights")
        );
        assert_eq!(
            as_api("postgres://u:p%40ss@h/db?sslmode=disable").as_deref(),
            Some("postgres://highlights_api@h/db?sslmode=disable")
        );
        assert_eq!(
            as_api("postgresql://h:5432/db").as_deref(),
            Some("postgresql://highlights_api@h:5432/db")
        );
        assert_eq!(as_api("not a url"), None);
    }

    #[test]
    fn parses_exports_and_quotes() {
        let vars = parse(
            "# local stack\nexport AWS_REGION=us-east-1\nDATABASE_URL='postgres://a@b/c'\n\nexport X=\"y z\"\nnot a pair\n",
        );
        assert_eq!(vars["AWS_REGION"], "us-east-1");
        assert_eq!(vars["DATABASE_URL"], "postgres://a@b/c");
        assert_eq!(vars["X"], "y z");
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn a_missing_file_says_how_to_start_the_stack() {
        let error = StackEnv::read(Path::new("/nonexistent/env")).unwrap_err().to_string();
        assert!(error.contains("localstack/up"), "{error}");
    }
}
