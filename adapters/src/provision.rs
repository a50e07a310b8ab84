//! Idempotent creation of the AWS resources the system needs, for the local emulator (and
//! LocalStack). Production resources are created by the CDK app from the same names.
//!
//! Running it twice is safe: existing resources are kept (and completed, e.g. a missing stream
//! or TTL on the highlights table); only secrets given explicitly are overwritten. Secret
//! values are never logged or put in errors.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::resources::{Resources, keys};

/// What to create beyond the names.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Shards per Kinesis stream.
    pub shards: u32,
    /// Contents for the Twitch app credentials secret (`{"client_id","client_secret"}`).
    pub twitch_app: Option<SecretValue>,
    /// Contents for the Twitch user token secret (`{"access_token","refresh_token",...}`).
    pub user_token: Option<SecretValue>,
    /// How long to wait for a resource to become active.
    pub ready_timeout: Duration,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self { shards: 1, twitch_app: None, user_token: None, ready_timeout: Duration::from_secs(60) }
    }
}

/// A secret's contents; `Debug` does not show them.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// Accepts a JSON object (the shape Secrets Manager consumers expect).
    pub fn from_json(text: String) -> Result<Self, &'static str> {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(_)) => Ok(Self(text)),
            _ => Err("a secret must be a JSON object"),
        }
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Existed,
    /// Existed, and was completed or given new contents.
    Updated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub kind: &'static str,
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot {action} {resource}: {message}")]
    Aws { action: &'static str, resource: String, message: String },
    #[error("{resource} did not become active within {seconds} s")]
    NotReady { resource: String, seconds: u64 },
}

fn aws_error<E: std::error::Error + 'static>(
    action: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> ProvisionError {
    let resource = resource.to_owned();
    move |error| ProvisionError::Aws { action, resource, message: DisplayErrorContext(&error).to_string() }
}

/// Creates or completes every resource in `resources`.
pub async fn provision(
    config: &SdkConfig,
    resources: &Resources,
    options: &ProvisionOptions,
) -> Result<Vec<Provisioned>, ProvisionError> {
    let kinesis = aws_sdk_kinesis::Client::new(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let mut report = Vec::new();
    for stream in [&resources.chat_stream, &resources.lifecycle_stream] {
        report.push(kinesis_stream(&kinesis, &stream.name, options).await?);
    }
    report.push(broadcaster_keyed_table(&dynamodb, &resources.detector_state_table.name, options).await?);
    report.push(broadcaster_keyed_table(&dynamodb, &resources.channel_settings_table.name, options).await?);
    report.push(highlights_table(&dynamodb, &resources.highlights_table.name, options).await?);
    for queue in
        [&resources.detector_dlq, &resources.lifecycle_dlq, &resources.clipper_dlq, &resources.announcer_dlq]
    {
        report.push(dead_letter_queue(&sqs, &queue.name).await?);
    }
    report.push(secret(&secrets, &resources.twitch_app_secret.name, options.twitch_app.as_ref()).await?);
    report
        .push(secret(&secrets, &resources.twitch_user_token_secret.name, options.user_token.as_ref()).await?);
    for user in &resources.database_users {
        report.push(database_user_secret(&secrets, user).await?);
    }
    Ok(report)
}

/// A database login user's secret, created with a random password when missing and never
/// changed afterwards (the migration step sets the user's password from it).
async fn database_user_secret(
    client: &aws_sdk_secretsmanager::Client,
    user: &crate::resources::DatabaseUser,
) -> Result<Provisioned, ProvisionError> {
    let name = &user.secret.name;
    if secret_exists(client, name).await? {
        return Ok(Provisioned { kind: "secret", name: name.clone(), outcome: Outcome::Existed });
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| ProvisionError::Aws {
        action: "generate a password for",
        resource: name.clone(),
        message: error.to_string(),
    })?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let contents = SecretValue(serde_json::json!({"username": user.user, "password": password}).to_string());
    secret(client, name, Some(&contents)).await
}

/// Polls `check` until it says ready, up to `timeout`.
async fn wait_until<F, Fut>(resource: &str, timeout: Duration, mut check: F) -> Result<(), ProvisionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, ProvisionError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProvisionError::NotReady {
                resource: resource.to_owned(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

async fn kinesis_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    options: &ProvisionOptions,
) -> Result<Provisioned, ProvisionError> {
    let shards = i32::try_from(options.shards.max(1)).unwrap_or(i32::MAX);
    let outcome = match client.create_stream().stream_name(name).shard_count(shards).send().await {
        Ok(_) => Outcome::Created,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
            Outcome::Existed
        }
        Err(error) => return Err(aws_error("create Kinesis stream", name)(error)),
    };
    wait_until(name, options.ready_timeout, || async {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(aws_error("describe Kinesis stream", name))?;
        Ok(summary.stream_description_summary().is_some_and(|s| s.stream_status() == &StreamStatus::Active))
    })
    .await?;
    Ok(Provisioned { kind: "kinesis stream", name: name.to_owned(), outcome })
}

fn key(
    name: &str,
    key_type: KeyType,
    attribute_type: ScalarAttributeType,
) -> (AttributeDefinition, KeySchemaElement) {
    (
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(attribute_type)
            .build()
            .expect("name and type are set"),
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("name and type are set"),
    )
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: Vec<(AttributeDefinition, KeySchemaElement)>,
    stream: Option<StreamSpecification>,
    options: &ProvisionOptions,
) -> Result<Outcome, ProvisionError> {
    let (definitions, schema): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(schema))
        .set_stream_specification(stream)
        .send()
        .await;
    let outcome = match created {
        Ok(_) => Outcome::Created,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
            Outcome::Existed
        }
        Err(error) => return Err(aws_error("create DynamoDB table", name)(error)),
    };
    wait_until(name, options.ready_timeout, || async {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(aws_error("describe DynamoDB table", name))?;
        Ok(described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active))
    })
    .await?;
    Ok(outcome)
}

/// A table with one item per broadcaster (detector state, channel settings).
async fn broadcaster_keyed_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    options: &ProvisionOptions,
) -> Result<Provisioned, ProvisionError> {
    let keys = vec![key(keys::BROADCASTER_ID, KeyType::Hash, ScalarAttributeType::S)];
    let outcome = create_table(client, name, keys, None, options).await?;
    Ok(Provisioned { kind: "dynamodb table", name: name.to_owned(), outcome })
}

/// The outbox of detections: a NEW_IMAGE stream feeds the clipper; TTL expires old items.
async fn highlights_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    options: &ProvisionOptions,
) -> Result<Provisioned, ProvisionError> {
    let new_images = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .expect("enabled is set");
    let keys = vec![
        key(keys::BROADCASTER_ID, KeyType::Hash, ScalarAttributeType::S),
        key(keys::PEAK_AT, KeyType::Range, ScalarAttributeType::N),
    ];
    let mut outcome = create_table(client, name, keys, Some(new_images.clone()), options).await?;

    let described = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(aws_error("describe DynamoDB table", name))?;
    let has_stream =
        described.table().and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled());
    if !has_stream {
        client
            .update_table()
            .table_name(name)
            .stream_specification(new_images)
            .send()
            .await
            .map_err(aws_error("enable the stream of", name))?;
        outcome = Outcome::Updated;
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(aws_error("describe the TTL of", name))?;
    let ttl_on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !ttl_on {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(keys::EXPIRES_AT)
                    .build()
                    .expect("both fields are set"),
            )
            .send()
            .await
            .map_err(aws_error("enable TTL on", name))?;
        if outcome == Outcome::Existed {
            outcome = Outcome::Updated;
        }
    }
    Ok(Provisioned { kind: "dynamodb table", name: name.to_owned(), outcome })
}

/// Dead-letter queue of one consumer: records that exhausted their retries wait here 14 days.
async fn dead_letter_queue(client: &aws_sdk_sqs::Client, name: &str) -> Result<Provisioned, ProvisionError> {
    let outcome = match client.get_queue_url().queue_name(name).send().await {
        Ok(_) => Outcome::Existed,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => {
            client
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
                .send()
                .await
                .map_err(aws_error("create SQS queue", name))?;
            Outcome::Created
        }
        Err(error) => return Err(aws_error("look up SQS queue", name)(error)),
    };
    Ok(Provisioned { kind: "sqs queue", name: name.to_owned(), outcome })
}

async fn secret_exists(client: &aws_sdk_secretsmanager::Client, name: &str) -> Result<bool, ProvisionError> {
    match client.describe_secret().secret_id(name).send().await {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            Ok(false)
        }
        Err(error) => Err(aws_error("look up secret", name)(error)),
    }
}

/// A secret, created as `{}` unless contents are given; given contents replace the current ones.
async fn secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: Option<&SecretValue>,
) -> Result<Provisioned, ProvisionError> {
    let exists = secret_exists(client, name).await?;
    let outcome = match (exists, value) {
        (false, value) => {
            let contents = value.map_or("{}", |v| v.0.as_str());
            client
                .create_secret()
                .name(name)
                .secret_string(contents)
                .send()
                .await
                .map_err(aws_error("create secret", name))?;
            Outcome::Created
        }
        (true, Some(value)) => {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(&value.0)
                .send()
                .await
                .map_err(aws_error("update secret", name))?;
            Outcome::Updated
        }
        (true, None) => Outcome::Existed,
    };
    Ok(Provisioned { kind: "secret", name: name.to_owned(), outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_json_objects_and_never_shown() {
        let value = SecretValue::from_json(r#"{"access_token":"hunter2"}"#.into()).unwrap();
        assert!(!format!("{value:?}").contains("hunter2"));
        assert!(SecretValue::from_json("hunter2".into()).is_err());
        assert!(SecretValue::from_json("[1]".into()).is_err());
    }
}
