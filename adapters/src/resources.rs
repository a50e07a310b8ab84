//! Names of every AWS resource and the environment variables that carry them, from
//! `config/resources.json` (also read by the CDK app, so local and deployed names agree).

use std::collections::BTreeMap;

use serde::Deserialize;

const RESOURCES_JSON: &str = include_str!("../../config/resources.json");

#[derive(Deserialize)]
struct File {
    kinesis: BTreeMap<String, Entry>,
    dynamodb: BTreeMap<String, Entry>,
    sqs: BTreeMap<String, Entry>,
    secrets: BTreeMap<String, Entry>,
    database_users: BTreeMap<String, UserEntry>,
}

#[derive(Deserialize, Clone)]
struct Entry {
    name: String,
    env: String,
}

#[derive(Deserialize, Clone)]
struct UserEntry {
    name: String,
    env: String,
    user: String,
    role: String,
    url_env: String,
}

/// One named resource: its name and the environment variable that may override it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub env: String,
}

/// A component's own PostgreSQL login user: a member of one group role (its rights, from the
/// migrations), with its password in its own secret (`{"username","password"}`, the shape RDS
/// Proxy reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUser {
    /// The component: `api`, `ingester`, `clipper` or `lifecycle`.
    pub component: String,
    pub user: String,
    /// The group role (NOLOGIN) whose rights the user gets.
    pub role: String,
    pub secret: Named,
    /// The variable that carries the user's connection string in local runs
    /// (`.local/stack/env`).
    pub url_env: String,
}

/// Every resource the system uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub chat_stream: Named,
    pub lifecycle_stream: Named,
    pub detector_state_table: Named,
    /// Each channel's own detector settings (`highlights channel set`).
    pub channel_settings_table: Named,
    pub highlights_table: Named,
    pub detector_dlq: Named,
    pub lifecycle_dlq: Named,
    pub clipper_dlq: Named,
    pub announcer_dlq: Named,
    pub twitch_app_secret: Named,
    pub twitch_user_token_secret: Named,
    /// One per component that connects to PostgreSQL, in a stable order.
    pub database_users: Vec<DatabaseUser>,
}

/// Key attributes of the DynamoDB tables (fixed by the code that reads them, so not configurable).
pub mod keys {
    pub const BROADCASTER_ID: &str = "broadcaster_id";
    pub const PEAK_AT: &str = "peak_at";
    pub const EXPIRES_AT: &str = "expires_at";
}

impl Resources {
    /// The names as written in `config/resources.json`.
    pub fn defaults() -> Self {
        let file: File = serde_json::from_str(RESOURCES_JSON).expect("config/resources.json is valid");
        let pick = |group: &BTreeMap<String, Entry>, key: &str| {
            let entry = group.get(key).unwrap_or_else(|| panic!("config/resources.json lacks {key}")).clone();
            Named { name: entry.name, env: entry.env }
        };
        Self {
            chat_stream: pick(&file.kinesis, "chat_messages"),
            lifecycle_stream: pick(&file.kinesis, "stream_lifecycle"),
            detector_state_table: pick(&file.dynamodb, "detector_state"),
            channel_settings_table: pick(&file.dynamodb, "channel_settings"),
            highlights_table: pick(&file.dynamodb, "highlights"),
            detector_dlq: pick(&file.sqs, "detector_dlq"),
            lifecycle_dlq: pick(&file.sqs, "lifecycle_dlq"),
            clipper_dlq: pick(&file.sqs, "clipper_dlq"),
            announcer_dlq: pick(&file.sqs, "announcer_dlq"),
            twitch_app_secret: pick(&file.secrets, "twitch_app"),
            twitch_user_token_secret: pick(&file.secrets, "twitch_user_token"),
            database_users: file
                .database_users
                .into_iter()
                .map(|(component, entry)| DatabaseUser {
                    component,
                    user: entry.user,
                    role: entry.role,
                    secret: Named { name: entry.name, env: entry.env },
                    url_env: entry.url_env,
                })
                .collect(),
        }
    }

    /// The login user of `component` (`api`, `ingester`, `clipper`, `lifecycle`).
    pub fn database_user(&self, component: &str) -> Option<&DatabaseUser> {
        self.database_users.iter().find(|user| user.component == component)
    }

    /// The defaults, each overridden by its environment variable when that is set.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// The defaults, each overridden by `lookup(env var)` when it answers.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut resources = Self::defaults();
        for named in resources.all_mut() {
            if let Some(value) = lookup(&named.env).filter(|v| !v.is_empty()) {
                named.name = value;
            }
        }
        resources
    }

    /// The same resources with `-suffix` appended to every name: isolated sets for tests that
    /// share one emulator.
    pub fn with_suffix(mut self, suffix: &str) -> Self {
        for named in self.all_mut() {
            named.name = format!("{}-{suffix}", named.name);
        }
        self
    }

    /// `(environment variable, name)` for every resource, in a stable order.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.all().map(|n| (n.env.clone(), n.name.clone())).collect()
    }

    fn all(&self) -> impl Iterator<Item = &Named> {
        let fixed = [
            &self.chat_stream,
            &self.lifecycle_stream,
            &self.detector_state_table,
            &self.channel_settings_table,
            &self.highlights_table,
            &self.detector_dlq,
            &self.lifecycle_dlq,
            &self.clipper_dlq,
            &self.announcer_dlq,
            &self.twitch_app_secret,
            &self.twitch_user_token_secret,
        ];
        fixed.into_iter().chain(self.database_users.iter().map(|user| &user.secret))
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Named> {
        let fixed = [
            &mut self.chat_stream,
            &mut self.lifecycle_stream,
            &mut self.detector_state_table,
            &mut self.channel_settings_table,
            &mut self.highlights_table,
            &mut self.detector_dlq,
            &mut self.lifecycle_dlq,
            &mut self.clipper_dlq,
            &mut self.announcer_dlq,
            &mut self.twitch_app_secret,
            &mut self.twitch_user_token_secret,
        ];
        fixed.into_iter().chain(self.database_users.iter_mut().map(|user| &mut user.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_shared_file() {
        let resources = Resources::defaults();
        assert_eq!(resources.chat_stream.name, "chat-messages");
        assert_eq!(resources.lifecycle_stream.name, "stream-lifecycle");
        assert_eq!(resources.detector_state_table.name, "detector-state");
        assert_eq!(resources.channel_settings_table.name, "channel-settings");
        assert_eq!(resources.highlights_table.name, "highlights");
        assert_eq!(resources.env_pairs().len(), 15);
        assert_eq!(resources.announcer_dlq.name, "announcer-dlq");
        let api = resources.database_user("api").unwrap();
        assert_eq!((api.user.as_str(), api.role.as_str()), ("highlights_api", "highlights_reader"));
        let roles: Vec<_> = resources.database_users.iter().map(|u| u.role.as_str()).collect();
        assert!(roles.iter().all(|role| role.starts_with("highlights_")), "{roles:?}");
    }

    #[test]
    fn environment_overrides_and_suffixes() {
        let resources =
            Resources::from_lookup(|key| (key == "CHAT_STREAM_NAME").then(|| "chat-test".to_owned()));
        assert_eq!(resources.chat_stream.name, "chat-test");
        assert_eq!(resources.highlights_table.name, "highlights");
        let suffixed = resources.with_suffix("t1");
        assert_eq!(suffixed.chat_stream.name, "chat-test-t1");
        assert_eq!(suffixed.twitch_app_secret.name, "twitch-highlights/twitch-app-t1");
    }
}
