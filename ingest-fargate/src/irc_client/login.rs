//! The chat login: who logs in, and twitch-irc's [`LoginCredentials`] for it. A user token is
//! refreshed (and written back where tokens are kept) before the next connection when Twitch
//! refused it; the refusal is noticed by the transport, which sees Twitch's NOTICE before the
//! connection closes. Tokens never reach a log line or an error message.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use highlights_adapters::tokens::TokenSource;
use highlights_adapters::twitch::Secret;
use twitch_irc::login::{CredentialsPair, LoginCredentials};

use super::transport::ChatServer;

/// Who logs in: anonymous (`justinfan…`, read-only) or a user whose token (scope `chat:read`)
/// comes from a [`ChatTokens`] source, refreshed when Twitch refuses it.
#[derive(Clone)]
pub enum IrcLogin {
    Anonymous,
    User { login: String, tokens: Arc<dyn ChatTokens> },
}

type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + 'a>>;

/// The chat login's token port (object-safe, so the client needs no type parameter).
pub trait ChatTokens: Send + Sync {
    fn current(&self) -> TokenFuture<'_>;
    /// Twitch refused `token`: a refreshed one (written back to where tokens are kept).
    fn rejected<'a>(&'a self, token: &'a Secret) -> TokenFuture<'a>;
}

impl<T: TokenSource + 'static> ChatTokens for T {
    fn current(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.access_token().await.map_err(|e| e.to_string()) })
    }
    fn rejected<'a>(&'a self, token: &'a Secret) -> TokenFuture<'a> {
        Box::pin(async move { self.refresh_after_rejection(token).await.map_err(|e| e.to_string()) })
    }
}

pub(super) fn is_login_refusal(text: &str) -> bool {
    text.contains("Login authentication failed") || text.contains("Improperly formatted auth")
}

/// twitch-irc asks for credentials before every connection.
pub(super) struct ChatLogin {
    login: IrcLogin,
    server: Arc<ChatServer>,
    /// The token handed out last (the one Twitch refused, when it does).
    last: tokio::sync::Mutex<Option<Secret>>,
    /// Consecutive failures to get a token: the next attempt waits (twitch-irc retries at once).
    failures: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("no chat token: {0}")]
pub struct ChatLoginError(String);

impl std::fmt::Debug for ChatLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let login = match &self.login {
            IrcLogin::Anonymous => "anonymous",
            IrcLogin::User { login, .. } => login,
        };
        f.debug_struct("ChatLogin").field("login", &login).finish_non_exhaustive()
    }
}

impl ChatLogin {
    pub(super) fn new(login: IrcLogin, server: Arc<ChatServer>) -> Self {
        Self { login, server, last: tokio::sync::Mutex::new(None), failures: AtomicUsize::new(0) }
    }
}

#[async_trait::async_trait]
impl LoginCredentials for ChatLogin {
    type Error = ChatLoginError;

    async fn get_credentials(&self) -> Result<CredentialsPair, ChatLoginError> {
        let (login, tokens) = match &self.login {
            IrcLogin::Anonymous => {
                let nick = format!("justinfan{}", 10_000 + std::process::id() % 80_000);
                return Ok(CredentialsPair { login: nick, token: None });
            }
            IrcLogin::User { login, tokens } => (login, tokens),
        };
        let failures = self.failures.load(Ordering::Relaxed);
        if failures > 0 {
            tokio::time::sleep(Duration::from_millis(500 << failures.min(6))).await;
        }
        let mut last = self.last.lock().await;
        let refused = self.server.login_refused.swap(false, Ordering::Relaxed);
        let token = match (refused, last.as_ref()) {
            (true, Some(rejected)) => tokens.rejected(rejected).await.inspect(|_| {
                tracing::info!("chat token refreshed after Twitch refused it");
            }),
            _ => tokens.current().await,
        };
        match token {
            Ok(token) => {
                self.failures.store(0, Ordering::Relaxed);
                let pair =
                    CredentialsPair { login: login.to_lowercase(), token: Some(token.expose().to_owned()) };
                *last = Some(token);
                Ok(pair)
            }
            Err(reason) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                // Refused once, refused again: the refresh must be retried on the next login.
                self.server.login_refused.fetch_or(refused, Ordering::Relaxed);
                tracing::error!(%reason, "cannot get a chat token");
                Err(ChatLoginError(reason))
            }
        }
    }
}
