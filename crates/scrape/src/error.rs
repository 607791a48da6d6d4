//! Why a scrape configuration is rejected.

use osprey_model::TenantError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("a scrape config has an empty job_name; give every scrape config a unique job_name")]
    EmptyJobName,
    #[error("found multiple scrape configs with job name {0:?}; job names must be unique")]
    DuplicateJob(String),
    #[error("scrape interval of job {0:?} is zero; set scrape_interval to a positive duration such as 15s")]
    ZeroInterval(String),
    #[error("scrape timeout of job {0:?} is zero; set scrape_timeout to a positive duration such as 10s")]
    ZeroTimeout(String),
    #[error("scrape timeout greater than scrape interval for scrape config with job name {0:?}")]
    TimeoutOverInterval(String),
    #[error("job {job:?}: scheme must be \"http\" or \"https\", got {scheme:?}")]
    BadScheme { job: String, scheme: String },
    #[error(
        "job {0:?}: at most one of basic_auth, authorization, bearer_token & bearer_token_file must be configured"
    )]
    ConflictingAuth(String),
    #[error("job {0:?}: at most one of basic_auth password & password_file must be configured")]
    ConflictingPassword(String),
    #[error("job {0:?}: at most one of authorization credentials & credentials_file must be configured")]
    ConflictingCredentials(String),
    #[error("job {0:?}: authorization type cannot be set to \"basic\", use \"basic_auth\" instead")]
    BasicAuthorizationType(String),
    #[error("job {job:?}: path name {pattern:?} is not valid for file discovery; files must end in .json, .yml or .yaml and may use * only in the last path element")]
    BadFileSdPattern { job: String, pattern: String },
    #[error("job {job:?}: {source}")]
    BadTenant { job: String, source: TenantError },
    #[error("job {job:?}: fallback_scrape_protocol {protocol:?} is not supported; use PrometheusText0.0.4, PrometheusText1.0.0, OpenMetricsText0.0.1 or OpenMetricsText1.0.0")]
    BadFallbackProtocol { job: String, protocol: String },
    #[error("job {0:?}: tls_config cert_file and key_file must be given together")]
    CertWithoutKey(String),
    #[error("cannot create the HTTP client for scraping: {0}")]
    SharedHttpClient(String),
    #[error("job {job:?}: cannot set up the HTTP client: {reason}")]
    HttpClient { job: String, reason: String },
}
