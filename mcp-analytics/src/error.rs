//! The crate's error type.

use std::time::Duration;

/// What can go wrong setting analytics up or flushing it.
///
/// No variant ever carries the write token.
///
/// ```
/// let error = mcp_analytics::builder()
///     .api_url("api.tinybird.co")
///     .token("p.example")
///     .try_init()
///     .unwrap_err();
/// assert!(matches!(error, mcp_analytics::Error::InvalidUrl { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No write token in the builder, `TB_WRITE_TOKEN` or `.env`.
    #[error(
        "no Tinybird write token: set TB_WRITE_TOKEN (environment or .env) or call Builder::token"
    )]
    MissingToken,
    /// The token cannot be sent in an HTTP header.
    #[error("the Tinybird write token is empty or contains whitespace or control characters")]
    InvalidToken,
    /// The API URL cannot be used.
    #[error("the Tinybird API URL `{url}` is not usable: {reason}")]
    InvalidUrl {
        /// The URL as given, without any query string.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The builder method or environment variable.
        setting: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The `.env` file exists but cannot be read.
    #[error("cannot read .env: {0}")]
    Dotenv(String),
    /// Analytics is already running; shut it down before initializing again.
    #[error("mcp-analytics is already initialized")]
    AlreadyInitialized,
    /// `flush` was called before `init`.
    #[error("mcp-analytics is not initialized: call mcp_analytics::init() first")]
    NotInitialized,
    /// The background worker could not be started.
    #[error("cannot start the mcp-analytics worker: {0}")]
    Worker(#[source] std::io::Error),
    /// Flush or shutdown did not finish in time.
    #[error("{undelivered} events were not delivered within {timeout:?}")]
    Timeout {
        /// Events recorded but neither delivered nor given up on when time ran out.
        undelivered: u64,
        /// The time that was allowed.
        timeout: Duration,
    },
}
