//! Configuration: the public [`Builder`], resolved with the environment and a `.env` file into
//! the checked [`Config`] the worker runs with.
//!
//! Precedence, highest first: builder calls, process environment, `.env`, defaults.

mod capture;
mod env;
mod spool;
mod token;
mod url;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::batch::Limits;
use crate::delivery::http;
use crate::diag;
use crate::error::Error;
pub(crate) use spool::SpoolSettings;
pub(crate) use token::Token;

/// Sets up analytics: where events go and how they are batched. Made by
/// [`builder()`](crate::builder); every setting has a default. `init` also chains a panic hook
/// in front of yours: set your own before `init` (see [`Builder::panic_messages`]).
///
/// ```
/// use std::time::Duration;
///
/// let _analytics = mcp_analytics::builder()
///     .datasource("mcp_logs")
///     .max_batch_age(Duration::from_millis(500))
///     .shutdown_timeout(Duration::from_secs(2))
///     .init();
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `init()` or `try_init()`"]
pub struct Builder {
    api_url: Option<String>,
    token: Option<String>,
    datasource: Option<String>,
    read_env: bool,
    dotenv: Option<PathBuf>,
    queue_capacity: usize,
    limits: Limits,
    request_timeout: Duration,
    connect_timeout: Duration,
    shutdown_timeout: Duration,
    max_attempts: u32,
    max_requests_per_second: u32,
    wait_for_ack: bool,
    gzip: bool,
    capture: capture::CaptureOptions,
    spool: spool::SpoolOptions,
    panic_messages: bool,
    #[cfg(feature = "testing")]
    pub(crate) memory: Option<crate::delivery::memory::InMemory>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            api_url: None,
            token: None,
            datasource: None,
            read_env: true,
            dotenv: Some(PathBuf::from(".env")),
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            limits: Limits {
                max_events: 25_000,
                max_bytes: 8 << 20,
                max_age: Duration::from_secs(1),
            },
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_millis(1500),
            max_attempts: 8,
            max_requests_per_second: 50,
            wait_for_ack: false,
            gzip: true,
            capture: capture::CaptureOptions::default(),
            spool: spool::SpoolOptions::default(),
            panic_messages: true,
            #[cfg(feature = "testing")]
            memory: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("datasource", &self.datasource)
            .field("read_env", &self.read_env)
            .field("dotenv", &self.dotenv)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch_events", &self.limits.max_events)
            .field("max_batch_bytes", &self.limits.max_bytes)
            .field("max_batch_age", &self.limits.max_age)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("wait_for_ack", &self.wait_for_ack)
            .field("gzip", &self.gzip)
            .field("capture", &self.capture)
            .field("spool", &self.spool)
            .field("panic_messages", &self.panic_messages)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Tinybird's default region, used when only a token is configured.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::Builder::DEFAULT_API_URL, "https://api.tinybird.co");
    /// ```
    pub const DEFAULT_API_URL: &str = "https://api.tinybird.co";

    /// The template's landing datasource.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::Builder::DEFAULT_DATASOURCE, "mcp_logs");
    /// ```
    pub const DEFAULT_DATASOURCE: &str = "mcp_logs";

    /// How many events may wait for the worker unless [`Builder::queue_capacity`] says
    /// otherwise: at 50,000 calls a second, a third of a second of calls, or 1 MiB of memory.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::Builder::DEFAULT_QUEUE_CAPACITY, 16_384);
    /// ```
    pub const DEFAULT_QUEUE_CAPACITY: usize = crate::global::DEFAULT_CAPACITY;

    /// The Events API base URL, e.g. `https://api.us-east.aws.tinybird.co` (overrides
    /// `TB_API_URL`). A trailing slash is fine. Default: `https://api.tinybird.co`.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().api_url("https://api.us-east.tinybird.co/");
    /// # drop(builder);
    /// ```
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// The token with `DATASOURCE:APPEND` scope (overrides `TB_WRITE_TOKEN`).
    ///
    /// ```
    /// let builder = mcp_analytics::builder().token("p.eyJ1Ijo...");
    /// assert!(!format!("{builder:?}").contains("p.eyJ1Ijo"));
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The datasource events land in (overrides `TB_DATASOURCE`). Default: `mcp_logs`, the
    /// template's.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().datasource("mcp_events");
    /// # drop(builder);
    /// ```
    pub fn datasource(mut self, name: impl Into<String>) -> Self {
        self.datasource = Some(name.into());
        self
    }

    /// Whether to read the `TB_*` variables from the process environment and the dotenv file.
    /// Default: true. With `false`, only what the builder is given counts.
    ///
    /// ```
    /// // Configured in code only, whatever the environment says.
    /// let builder = mcp_analytics::builder().read_env(false).token("p.example");
    /// # drop(builder);
    /// ```
    pub fn read_env(mut self, read: bool) -> Self {
        self.read_env = read;
        self
    }

    /// The dotenv file to read besides the environment. Default: `.env` in the working
    /// directory; a missing file is fine.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().dotenv_path("config/analytics.env");
    /// # drop(builder);
    /// ```
    pub fn dotenv_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dotenv = Some(path.into());
        self
    }

    /// Reads no dotenv file, only the process environment.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().no_dotenv();
    /// # drop(builder);
    /// ```
    pub fn no_dotenv(mut self) -> Self {
        self.dotenv = None;
        self
    }

    /// How many events may wait for the worker; more are dropped and counted. Default:
    /// [`Builder::DEFAULT_QUEUE_CAPACITY`]. Memory: 64 bytes an event, allocated up front (a failed
    /// call's error text, a name computed at call time or a known client take one more small
    /// allocation while queued).
    ///
    /// ```
    /// let builder = mcp_analytics::builder().queue_capacity(65_536);
    /// # drop(builder);
    /// ```
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Most events in one request. Default: 25000. With the default byte limit (8 MiB), a
    /// typical call's row (about 330 bytes) closes a batch on this count first: at 50 requests
    /// a second, 1,250,000 events a second, more than one worker thread encodes.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().max_batch_events(1_000);
    /// # drop(builder);
    /// ```
    pub fn max_batch_events(mut self, events: usize) -> Self {
        self.limits.max_events = events;
        self
    }

    /// Most uncompressed bytes in one request, from 64 KiB to 10 MB (the Events API's limit on
    /// the free plan, which it stays under even before compression). Default: 8 MiB.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().max_batch_bytes(1 << 20);
    /// # drop(builder);
    /// ```
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_bytes = bytes;
        self
    }

    /// Longest an event waits in an open batch before the batch is sent. Default: 1 s.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().max_batch_age(std::time::Duration::from_millis(200));
    /// # drop(builder);
    /// ```
    pub fn max_batch_age(mut self, age: Duration) -> Self {
        self.limits.max_age = age;
        self
    }

    /// Longest one request may take, connection included. Default: 10 s.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().request_timeout(std::time::Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Longest a connection may take to open. Default: 5 s.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().connect_timeout(std::time::Duration::from_secs(2));
    /// # drop(builder);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest the [`Guard`](crate::Guard)'s drop waits to deliver what is queued. Default:
    /// 1.5 s, within the grace period MCP clients give a stdio server between closing its
    /// stdin and killing it (2 s for the official Python and TypeScript SDKs). With the spool
    /// (the default), what is undelivered is written to disk first, in milliseconds, and the
    /// time left goes to delivering it; without it, what is still undelivered at the deadline
    /// is lost.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().shutdown_timeout(std::time::Duration::from_secs(1));
    /// # drop(builder);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Most attempts per request, the first included, before its events count as failed.
    /// Default: 8, which rides out about 15 to 25 s of outage (backoff 200 ms doubling to 10 s,
    /// jittered).
    ///
    /// ```
    /// let builder = mcp_analytics::builder().max_attempts(3);
    /// # drop(builder);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Most requests started per second. Default: 50, half the Events API's limit per
    /// datasource, leaving room for other producers.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().max_requests_per_second(10);
    /// # drop(builder);
    /// ```
    pub fn max_requests_per_second(mut self, requests: u32) -> Self {
        self.max_requests_per_second = requests;
        self
    }

    /// Ask the Events API to answer only once rows are written (`wait=true`). Slower, but a
    /// success then means stored. Default: false.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().wait_for_ack(true);
    /// # drop(builder);
    /// ```
    pub fn wait_for_ack(mut self, wait: bool) -> Self {
        self.wait_for_ack = wait;
        self
    }

    /// Compress request bodies with gzip. Default: true.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().gzip(false);
    /// # drop(builder);
    /// ```
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Record a panic's message as the `error` of the panicking call's row (the outcome is
    /// `panic` either way). Default: true. The message is the payload of `panic!` (a literal or
    /// formatted text; any other payload, as `panic_any(42)`, has none), cut like error texts;
    /// mind that it may say more than an error would.
    ///
    /// It comes from a panic hook that `init` installs in front of the one set before (yours,
    /// or the default one printing to stderr), which then runs exactly as before: set your own
    /// hook before `init`. A hook set after `init` replaces ours, and messages are no longer
    /// recorded, unless it calls the one [`std::panic::take_hook`] returns, as ours does.
    ///
    /// ```
    /// // The `panic` outcome only, whatever the panic says.
    /// let builder = mcp_analytics::builder().panic_messages(false);
    /// assert!(format!("{builder:?}").contains("panic_messages: false"));
    /// ```
    pub fn panic_messages(mut self, record: bool) -> Self {
        self.panic_messages = record;
        self
    }

    /// Resolves the builder, the environment and `.env` into a checked configuration.
    pub(crate) fn resolve(self) -> Result<Config, Error> {
        validate::ranges(&self)?;
        let env = env::Env::read(self.read_env, self.dotenv.as_deref())?;
        let datasource = self
            .datasource
            .clone()
            .or_else(|| env.get(env::DATASOURCE))
            .unwrap_or_else(|| Self::DEFAULT_DATASOURCE.to_owned());
        validate::datasource(&datasource)?;
        let target = self.target(&env, &datasource)?;
        #[cfg(feature = "testing")]
        let implicit_spool = !matches!(target, Target::Memory(_));
        #[cfg(not(feature = "testing"))]
        let implicit_spool = true;
        Ok(Config {
            spool: self.spool.resolve(&env, &datasource, implicit_spool)?,
            target,
            capture: self.capture.resolve()?,
            before_send: self.capture.before_send.clone(),
            queue_capacity: self.queue_capacity,
            limits: self.limits,
            shutdown_timeout: self.shutdown_timeout,
            panic_messages: self.panic_messages,
        })
    }

    /// Where rows go: the Events API, with its URL and token from the builder, the environment
    /// or `.env`; or, in tests, memory.
    fn target(&self, env: &env::Env, datasource: &str) -> Result<Target, Error> {
        #[cfg(feature = "testing")]
        if let Some(memory) = &self.memory {
            return Ok(Target::Memory(memory.clone()));
        }
        let token = self
            .token
            .clone()
            .or_else(|| env.get(env::TOKEN))
            .ok_or(Error::MissingToken)?;
        let token = Token::new(token)?;
        let api_url = self
            .api_url
            .clone()
            .or_else(|| env.get(env::API_URL))
            .unwrap_or_else(|| Self::DEFAULT_API_URL.to_owned());
        let events_url = url::events_url(&api_url, datasource, self.wait_for_ack)?;
        if events_url.scheme_str() == Some("http") && !url::is_loopback(&events_url) {
            diag::report(format_args!(
                "the API URL uses http:// to a non-loopback host: the write token travels unencrypted"
            ));
        }
        let options = http::Options {
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            max_attempts: self.max_attempts,
            min_request_interval: Duration::from_secs(1) / self.max_requests_per_second,
            gzip: self.gzip,
        };
        Ok(Target::EventsApi {
            events_url,
            token,
            options,
        })
    }
}

/// A checked configuration, owned by the worker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) target: Target,
    /// What the recording threads need to make captured values safe.
    pub(crate) capture: crate::capture::Settings,
    /// The user's hook on every row, run by the worker.
    pub(crate) before_send: Option<crate::before_send::BeforeSend>,
    pub(crate) queue_capacity: usize,
    pub(crate) limits: Limits,
    /// Where undeliverable batches wait, if anywhere.
    pub(crate) spool: Option<SpoolSettings>,
    pub(crate) shutdown_timeout: Duration,
    /// Whether a panicking call's row carries the panic's message.
    pub(crate) panic_messages: bool,
}

/// Where the worker delivers batches.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Tinybird's Events API.
    EventsApi {
        events_url: ::http::Uri,
        token: Token,
        options: http::Options,
    },
    /// Memory, for tests (feature `testing`).
    #[cfg(feature = "testing")]
    Memory(crate::delivery::memory::InMemory),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls"))]
    fn events_url(builder: Builder) -> String {
        match builder.resolve().unwrap().target {
            Target::EventsApi { events_url, .. } => events_url.to_string(),
            #[cfg(feature = "testing")]
            Target::Memory(_) => unreachable!("no memory target was set"),
        }
    }

    #[test]
    #[cfg(any(feature = "rustls", feature = "rustls-aws-lc", feature = "native-tls"))]
    fn a_token_alone_ships_to_the_default_region() {
        assert_eq!(
            events_url(Builder::default().read_env(false).token("p.token")),
            "https://api.tinybird.co/v0/events?name=mcp_logs"
        );
    }

    #[test]
    fn tokens_never_show_in_debug() {
        // A local URL, which builds without a TLS feature accept too.
        let builder = Builder::default()
            .token("p.secret-token")
            .api_url("http://localhost:7181");
        assert!(!format!("{builder:?}").contains("secret"));
        let config = builder.read_env(false).resolve().unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn without_a_token_nothing_starts() {
        assert!(matches!(
            Builder::default().read_env(false).resolve(),
            Err(Error::MissingToken)
        ));
        assert!(matches!(
            Builder::default()
                .read_env(false)
                .token("p.abc def")
                .resolve(),
            Err(Error::InvalidToken)
        ));
    }
}
