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

/// Pauses before asking for a token again after failures: 1 s doubling to 32 s.
const TOKEN_BACKOFF: highlights_core::Backoff =
    highlights_core::Backoff::new(Duration::from_secs(1), Duration::from_secs(32));

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

/// Twitch's NOTICE texts for a PASS it does not accept.
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
            tokio::time::sleep(TOKEN_BACKOFF.after(u32::try_from(failures).unwrap_or(u32::MAX))).await;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::metrics::Counters;

    /// Tokens `t1`, `t2`, …: `current` hands out the latest, `rejected` refreshes; the first
    /// `failing` calls fail.
    #[derive(Default)]
    struct ScriptedTokens {
        issued: Mutex<u32>,
        rejected: Mutex<Vec<String>>,
        failing: Mutex<u32>,
    }

    impl ScriptedTokens {
        fn answer(&self, refresh: bool) -> Result<Secret, String> {
            let mut failing = self.failing.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err("Secrets Manager is unreachable".into());
            }
            let mut issued = self.issued.lock().unwrap();
            if refresh || *issued == 0 {
                *issued += 1;
            }
            Ok(Secret::new(format!("t{issued}")))
        }
    }

    impl ChatTokens for ScriptedTokens {
        fn current(&self) -> TokenFuture<'_> {
            Box::pin(async move { self.answer(false) })
        }
        fn rejected<'a>(&'a self, token: &'a Secret) -> TokenFuture<'a> {
            self.rejected.lock().unwrap().push(token.expose().to_owned());
            Box::pin(async move { self.answer(true) })
        }
    }

    fn server() -> Arc<ChatServer> {
        let (chat, _) = tokio::sync::mpsc::channel(1);
        ChatServer::new("tcp://127.0.0.1:1".parse().unwrap(), Arc::new(Counters::default()), chat)
    }

    fn user_login(tokens: Arc<ScriptedTokens>) -> ChatLogin {
        ChatLogin::new(IrcLogin::User { login: "HighlightsBot".into(), tokens }, server())
    }

    #[tokio::test]
    async fn a_refused_token_is_refreshed_before_the_next_login() {
        let tokens = Arc::new(ScriptedTokens::default());
        let login = user_login(tokens.clone());
        let first = login.get_credentials().await.unwrap();
        assert_eq!((first.login.as_str(), first.token.as_deref()), ("highlightsbot", Some("t1")));
        // Another connection, no refusal: the same token.
        assert_eq!(login.get_credentials().await.unwrap().token.as_deref(), Some("t1"));
        // The transport saw Twitch's refusal.
        login.server.login_refused.store(true, Ordering::Relaxed);
        assert_eq!(login.get_credentials().await.unwrap().token.as_deref(), Some("t2"));
        assert_eq!(*tokens.rejected.lock().unwrap(), ["t1"]);
        assert!(!login.server.login_refused.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_to_get_a_token_back_off_and_a_pending_refresh_is_kept() {
        let tokens = Arc::new(ScriptedTokens::default());
        let login = user_login(tokens.clone());
        login.get_credentials().await.unwrap();
        login.server.login_refused.store(true, Ordering::Relaxed);
        *tokens.failing.lock().unwrap() = 2;
        let error = login.get_credentials().await.unwrap_err();
        assert_eq!(error.to_string(), "no chat token: Secrets Manager is unreachable");
        // The refusal still needs its refresh; the next attempt waits a second first
        // (twitch-irc would ask again at once).
        assert!(login.server.login_refused.load(Ordering::Relaxed));
        let started = tokio::time::Instant::now();
        login.get_credentials().await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(1_000));
        let started = tokio::time::Instant::now();
        let refreshed = login.get_credentials().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(2_000));
        assert_eq!(refreshed.token.as_deref(), Some("t2"));
    }

    #[tokio::test]
    async fn anonymous_logins_send_no_token() {
        let pair = ChatLogin::new(IrcLogin::Anonymous, server()).get_credentials().await.unwrap();
        assert!(pair.login.starts_with("justinfan") && pair.token.is_none(), "{pair:?}");
    }
}
