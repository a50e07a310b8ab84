//! The Twitch user token, kept in Secrets Manager and cached across warm invocations.
//!
//! A token that is about to expire, or that Twitch rejected with a 401, is refreshed once and the
//! new access and refresh tokens are written back to the secret (the seed's refresh callback).
//! Concurrent refreshes must not lose the newest refresh token: before refreshing, the secret is
//! read again, and if another process already replaced the rejected token, that newer token is
//! used instead of refreshing a second time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use tokio::sync::Mutex;

use crate::twitch::{AppCredentials, Secret, TwitchError, TwitchOAuth, UserToken, now_s};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read secret {secret}: {message}")]
    Read { secret: String, message: String },
    #[error("secret {0} does not hold the expected JSON (run `highlights tokens seed`)")]
    Malformed(String),
    #[error("cannot write secret {secret}: {message}")]
    Write { secret: String, message: String },
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
}

/// Secrets Manager + Twitch OAuth.
pub struct SecretsTokenSource {
    secrets: aws_sdk_secretsmanager::Client,
    app_secret: String,
    token_secret: String,
    oauth: TwitchOAuth,
    cache: Mutex<Option<(AppCredentials, UserToken)>>,
    refreshes: AtomicU64,
}

impl SecretsTokenSource {
    pub fn new(
        secrets: aws_sdk_secretsmanager::Client,
        app_secret: impl Into<String>,
        token_secret: impl Into<String>,
        oauth: TwitchOAuth,
    ) -> Self {
        Self {
            secrets,
            app_secret: app_secret.into(),
            token_secret: token_secret.into(),
            oauth,
            cache: Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, secret: &str) -> Result<T, TokenError> {
        read_secret_json(&self.secrets, secret).await
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
        let loaded = (self.read(&self.app_secret).await?, self.read(&self.token_secret).await?);
        *cache = Some(loaded.clone());
        Ok(loaded)
    }

    /// Refreshes unless the stored token already differs from `stale`; caller holds the cache.
    async fn refresh_locked(
        &self,
        cache: &mut Option<(AppCredentials, UserToken)>,
        stale: &Secret,
    ) -> Result<Secret, TokenError> {
        let app: AppCredentials = self.read(&self.app_secret).await?;
        let stored: UserToken = self.read(&self.token_secret).await?;
        if &stored.access_token != stale && !stored.is_expiring(now_s()) {
            let access = stored.access_token.clone();
            *cache = Some((app, stored));
            return Ok(access);
        }
        let mut fresh = self.oauth.refresh(&app, &stored).await?;
        if fresh.user_id.is_none() {
            fresh.user_id = self.validated_user(&fresh.access_token).await;
        }
        self.store(&fresh).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(secret = %self.token_secret, "refreshed the Twitch user token and stored it");
        let access = fresh.access_token.clone();
        *cache = Some((app, fresh));
        Ok(access)
    }
}

impl SecretsTokenSource {
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

    async fn store(&self, token: &UserToken) -> Result<(), TokenError> {
        let text = serde_json::to_string(token).expect("a token serialises");
        self.secrets
            .put_secret_value()
            .secret_id(&self.token_secret)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| TokenError::Write {
                secret: self.token_secret.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}

impl TokenSource for SecretsTokenSource {
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
            self.store(&token).await?;
            *cache = Some((app, token.clone()));
        }
        Ok(token.user_id)
    }
}

/// Reads and parses one JSON secret (for example the app credentials, which the ingester needs
/// without a user token). The secret's value never appears in the error.
pub async fn read_secret_json<T: serde::de::DeserializeOwned>(
    secrets: &aws_sdk_secretsmanager::Client,
    secret: &str,
) -> Result<T, TokenError> {
    let value = secrets.get_secret_value().secret_id(secret).send().await.map_err(|e| TokenError::Read {
        secret: secret.to_owned(),
        message: DisplayErrorContext(&e).to_string(),
    })?;
    serde_json::from_str(value.secret_string().unwrap_or_default())
        .map_err(|_| TokenError::Malformed(secret.to_owned()))
}
