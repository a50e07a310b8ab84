//! The cloud's vault: Secrets Manager holds the app credentials and the user token.

use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{StoredTokenSource, TokenError, TokenVault};
use crate::twitch::{AppCredentials, TwitchOAuth, UserToken};

/// Secrets Manager: one secret for the app credentials, one for the user token.
pub struct SecretsVault {
    secrets: aws_sdk_secretsmanager::Client,
    app_secret: String,
    token_secret: String,
}

impl TokenVault for SecretsVault {
    async fn app(&self) -> Result<AppCredentials, TokenError> {
        read_secret_json(&self.secrets, &self.app_secret).await
    }

    async fn token(&self) -> Result<UserToken, TokenError> {
        read_secret_json(&self.secrets, &self.token_secret).await
    }

    async fn store_token(&self, token: &UserToken) -> Result<(), TokenError> {
        let text = serde_json::to_string(token).expect("a token serialises");
        self.secrets
            .put_secret_value()
            .secret_id(&self.token_secret)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| TokenError::Write {
                place: self.place(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }

    fn place(&self) -> String {
        format!("secret {}", self.token_secret)
    }
}

/// The cloud's token source.
pub type SecretsTokenSource = StoredTokenSource<SecretsVault>;

impl SecretsTokenSource {
    pub fn new(
        secrets: aws_sdk_secretsmanager::Client,
        app_secret: impl Into<String>,
        token_secret: impl Into<String>,
        oauth: TwitchOAuth,
    ) -> Self {
        Self::with_vault(
            SecretsVault { secrets, app_secret: app_secret.into(), token_secret: token_secret.into() },
            oauth,
        )
    }
}

/// Reads and parses one JSON secret (for example the app credentials, which the ingester needs
/// without a user token). The secret's value never appears in the error.
pub async fn read_secret_json<T: serde::de::DeserializeOwned>(
    secrets: &aws_sdk_secretsmanager::Client,
    secret: &str,
) -> Result<T, TokenError> {
    let value = secrets.get_secret_value().secret_id(secret).send().await.map_err(|e| TokenError::Read {
        place: format!("secret {secret}"),
        message: DisplayErrorContext(&e).to_string(),
    })?;
    serde_json::from_str(value.secret_string().unwrap_or_default())
        .map_err(|_| TokenError::Malformed(format!("secret {secret}")))
}
