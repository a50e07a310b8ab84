//! The Twitch user token that creates clips, kept in a vault (Secrets Manager in the cloud, a
//! private file for `highlights dev`) and cached across warm invocations.
//!
//! A token that is about to expire, or that Twitch rejected with a 401, is refreshed once and the
//! new access and refresh tokens are written back to the vault (the seed's refresh callback).
//! Concurrent refreshes must not lose the newest refresh token: before refreshing, the vault is
//! read again, and if another process already replaced the rejected token, that newer token is
//! used instead of refreshing a second time.
//!
//! Tokens never appear in errors or logs: errors name the vault, never its contents.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::twitch::{AppCredentials, Secret, TwitchError, TwitchOAuth, UserToken, now_s};

#[cfg(feature = "secrets")]
mod secrets_manager;
#[cfg(feature = "secrets")]
pub use secrets_manager::{SecretsTokenSource, SecretsVault, read_secret_json};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `place` names the vault: "secret NAME" or "token file PATH".
    #[error("cannot read {place}: {message}")]
    Read { place: String, message: String },
    #[error("{0} does not hold the expected JSON (run `highlights tokens seed`)")]
    Malformed(String),
    #[error("cannot write {place}: {message}")]
    Write { place: String, message: String },
    #[error("token refresh failed: {0}")]
    Refresh(#[from] TwitchError),
}

/// The port the clipper uses.
pub trait TokenSource: Send + Sync {
    /// A usable access token (refreshed first when it is about to expire).
    fn access_token(&self) -> impl Future<Output = Result<Secret, TokenError>> + Send;
    /// Twitch rejected `rejected`: a fresh token, refreshed at most once across processes.
    fn refresh_after_rejection(
        &self,
        rejected: &Secret,
    ) -> impl Future<Output = Result<Secret, TokenError>> + Send;
    /// Refreshes done by this instance (a metric).
    fn refreshes(&self) -> u64;
    /// The Twitch user the token belongs to (the creator of our clips), when it can be known.
    fn user_id(&self) -> impl Future<Output = Result<Option<String>, TokenError>> + Send;
    /// The token's user when the token may also cut clips from VODs (see
    /// [`UserToken::can_clip_vods`]): the `editor_id` of Create Clip From VOD.
    fn vod_editor(&self) -> impl Future<Output = Result<Option<String>, TokenError>> + Send;
}

/// Where the app credentials and the user token are kept.
pub trait TokenVault: Send + Sync {
    fn app(&self) -> impl Future<Output = Result<AppCredentials, TokenError>> + Send;
    fn token(&self) -> impl Future<Output = Result<UserToken, TokenError>> + Send;
    fn store_token(&self, token: &UserToken) -> impl Future<Output = Result<(), TokenError>> + Send;
    /// The vault's name for logs ("secret NAME", "token file PATH"); never its contents.
    fn place(&self) -> String;
}

/// A file written by `highlights tokens seed --out` (mode 0600), with the app credentials given
/// apart (the environment): `highlights dev` on one machine, no cloud.
pub struct FileVault {
    app: AppCredentials,
    path: PathBuf,
}

impl FileVault {
    pub fn new(app: AppCredentials, path: impl Into<PathBuf>) -> Self {
        Self { app, path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenVault for FileVault {
    async fn app(&self) -> Result<AppCredentials, TokenError> {
        Ok(self.app.clone())
    }

    async fn token(&self) -> Result<UserToken, TokenError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| TokenError::Read { place: self.place(), message: e.to_string() })?;
        serde_json::from_str(&text).map_err(|_| TokenError::Malformed(self.place()))
    }

    /// Written to a private temporary file, then renamed over the old one: a crash leaves the
    /// old token or the new one, never half of either.
    async fn store_token(&self, token: &UserToken) -> Result<(), TokenError> {
        let text = serde_json::to_string_pretty(token).expect("a token serialises");
        let (path, place) = (self.path.clone(), self.place());
        tokio::task::spawn_blocking(move || write_private_file(&path, text.as_bytes()))
            .await
            .map_err(|e| TokenError::Write { place: place.clone(), message: e.to_string() })?
            .map_err(|e| TokenError::Write { place, message: e.to_string() })
    }

    fn place(&self) -> String {
        format!("token file {}", self.path.display())
    }
}

/// Writes `contents` to `path`, readable and writable by the owner only, atomically.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    // A leftover temporary file keeps its mode on open: tighten it explicitly.
    std::fs::set_permissions(&temporary, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// A vault + Twitch OAuth: refreshes when needed and writes the new tokens back.
pub struct StoredTokenSource<V> {
    vault: V,
    oauth: TwitchOAuth,
    cache: Mutex<Option<(AppCredentials, UserToken)>>,
    refreshes: AtomicU64,
}

impl<V: TokenVault> StoredTokenSource<V> {
    pub fn with_vault(vault: V, oauth: TwitchOAuth) -> Self {
        Self { vault, oauth, cache: Mutex::new(None), refreshes: AtomicU64::new(0) }
    }

    /// The app credentials (client id and secret).
    pub async fn app(&self) -> Result<AppCredentials, TokenError> {
        Ok(self.loaded().await?.0)
    }

    async fn loaded(&self) -> Result<(AppCredentials, UserToken), TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            return Ok(cached.clone());
        }
        let loaded = (self.vault.app().await?, self.vault.token().await?);
        *cache = Some(loaded.clone());
        Ok(loaded)
    }

    /// Refreshes unless the stored token already differs from `stale`; caller holds the cache.
    async fn refresh_locked(
        &self,
        cache: &mut Option<(AppCredentials, UserToken)>,
        stale: &Secret,
    ) -> Result<Secret, TokenError> {
        let app = self.vault.app().await?;
        let stored = self.vault.token().await?;
        if &stored.access_token != stale && !stored.is_expiring(now_s()) {
            let access = stored.access_token.clone();
            *cache = Some((app, stored));
            return Ok(access);
        }
        let mut fresh = self.oauth.refresh(&app, &stored).await?;
        if fresh.user_id.is_none() {
            fresh.user_id = self.validated_user(&fresh.access_token).await;
        }
        self.vault.store_token(&fresh).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(vault = %self.vault.place(), "refreshed the Twitch user token and stored it");
        let access = fresh.access_token.clone();
        *cache = Some((app, fresh));
        Ok(access)
    }

    /// The token's user from Twitch, or `None` (logged) when Twitch cannot say now.
    async fn validated_user(&self, access: &Secret) -> Option<String> {
        match self.oauth.user_id(access).await {
            Ok(user_id) => Some(user_id),
            Err(error) => {
                tracing::warn!(%error, "cannot learn which Twitch user the token belongs to");
                None
            }
        }
    }
}

impl<V: TokenVault> TokenSource for StoredTokenSource<V> {
    async fn access_token(&self) -> Result<Secret, TokenError> {
        let (_, token) = self.loaded().await?;
        if !token.is_expiring(now_s()) {
            return Ok(token.access_token);
        }
        let mut cache = self.cache.lock().await;
        self.refresh_locked(&mut cache, &token.access_token).await
    }

    async fn refresh_after_rejection(&self, rejected: &Secret) -> Result<Secret, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some((_, cached)) = cache.as_ref()
            && &cached.access_token != rejected
        {
            return Ok(cached.access_token.clone());
        }
        self.refresh_locked(&mut cache, rejected).await
    }

    fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    async fn vod_editor(&self) -> Result<Option<String>, TokenError> {
        if !self.loaded().await?.1.can_clip_vods() {
            return Ok(None);
        }
        self.user_id().await
    }

    /// A secret seeded before the user id was kept gets it now, once, and keeps it.
    async fn user_id(&self) -> Result<Option<String>, TokenError> {
        let (_, token) = self.loaded().await?;
        if token.user_id.is_some() {
            return Ok(token.user_id);
        }
        let mut cache = self.cache.lock().await;
        let Some((app, mut token)) = cache.clone() else { return Ok(None) };
        if token.user_id.is_some() {
            return Ok(token.user_id);
        }
        token.user_id = self.validated_user(&token.access_token).await;
        if token.user_id.is_some() {
            self.vault.store_token(&token).await?;
            *cache = Some((app, token.clone()));
        }
        Ok(token.user_id)
    }
}
