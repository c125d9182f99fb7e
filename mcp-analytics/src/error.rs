//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong setting analytics up, flushing or shutting it down.
///
/// No variant ever carries the write token, and neither does any of their sources.
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
        /// The URL as given, without query, fragment or credentials.
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
    /// The dotenv file exists but cannot be read or parsed. Its content is never quoted: the
    /// line at fault may hold the token.
    #[error("cannot read {}{}", path.display(), match entry {
        Some(entry) => format!(": entry {entry} cannot be parsed"),
        None => String::new(),
    })]
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The entry at fault, counting from 1, when one is.
        entry: Option<usize>,
        /// The I/O error, when reading failed.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Analytics is already running; shut it down before initializing again.
    #[error("mcp-analytics is already initialized")]
    AlreadyInitialized,
    /// `flush` was called before `init`.
    #[error("mcp-analytics is not initialized: call mcp_analytics::init() first")]
    NotInitialized,
    /// The background worker could not be started.
    #[error("cannot start the mcp-analytics worker")]
    Worker(#[source] std::io::Error),
    /// The HTTP client could not be set up (its TLS configuration, say).
    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The worker is gone (it stopped without being shut down): nothing can be flushed.
    #[error("the mcp-analytics worker is gone: events are no longer delivered")]
    WorkerGone,
    /// Flush or shutdown did not finish in time.
    #[error("{undelivered} events were not delivered within {timeout:?}")]
    Timeout {
        /// Events recorded but not delivered when time ran out. After a shutdown they are
        /// counted as failed.
        undelivered: u64,
        /// The time that was allowed.
        timeout: Duration,
    },
}
