//! Building the AWS SDK configuration once per process.
//!
//! In production everything comes from the environment and the default credential chain; the
//! SDK honours `AWS_ENDPOINT_URL` (and per-service `AWS_ENDPOINT_URL_KINESIS`, ...), which is how
//! the same binaries reach LocalStack or the no-Docker emulator. Tests pass [`LocalAws`]
//! explicitly instead of mutating the process environment.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// An AWS-compatible endpoint with static test credentials (the local emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAws {
    pub endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Configuration from the environment (region, credentials, optional endpoint override).
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for an explicit local endpoint.
pub async fn local(settings: &LocalAws) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&settings.endpoint_url)
        .region(Region::new(settings.region.clone()))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            &settings.access_key_id,
            &settings.secret_access_key,
            None,
            None,
            "highlights-local",
        ))
        .load()
        .await
}
