//! Building the AWS SDK configuration once per process.
//!
//! In production everything comes from the environment and the default credential chain; the
//! SDK honours `AWS_ENDPOINT_URL` (and per-service `AWS_ENDPOINT_URL_KINESIS`, ...), which is how
//! the same binaries reach LocalStack or the no-Docker emulator. Tests pass [`LocalAws`]
//! explicitly instead of mutating the process environment.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

pub use crate::stack_env::LocalAws;

/// Bounds on every AWS call. The SDK sets only a connect timeout: a request lost in a network
/// partition (a blackhole: no answer, no reset) would wait forever, and the runner, the
/// ingester's producer or a function would stall until restarted. An attempt gives up after
/// 10 s and is retried by the SDK's standard retry policy; a whole operation after 30 s.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// Configuration from the environment (region, credentials, optional endpoint override).
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts()).load().await
}

/// Configuration for an explicit local endpoint.
pub async fn local(settings: &LocalAws) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .endpoint_url(&settings.endpoint_url)
        .region(Region::new(settings.region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &settings.access_key_id,
            &settings.secret_access_key,
            None,
            None,
            "highlights-local",
        ))
        .load()
        .await
}
