//! Configuration: the builder, the environment (`TB_API_URL`, `TB_WRITE_TOKEN`, `TB_DATASOURCE`),
//! and a `.env` file in the working directory, read the way the template's Python example does.
//!
//! Precedence, highest first: builder calls, process environment, `.env`, defaults.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::Error;
use crate::batch::Limits;
use crate::diag;

/// Tinybird's default region, used when only a token is configured.
pub const DEFAULT_API_URL: &str = "https://api.tinybird.co";
/// The template's landing datasource.
pub const DEFAULT_DATASOURCE: &str = "mcp_logs";
/// How many events may wait for the worker unless [`Builder::queue_capacity`] says otherwise:
/// at 50,000 calls a second, a third of a second of calls, or 1 MiB of memory.
///
/// ```
/// assert_eq!(mcp_analytics::DEFAULT_QUEUE_CAPACITY, 16_384);
/// ```
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;

const ENV_API_URL: &str = "TB_API_URL";
const ENV_TOKEN: &str = "TB_WRITE_TOKEN";
const ENV_DATASOURCE: &str = "TB_DATASOURCE";

/// The Events API's request limit on the free plan; paid plans allow 100 MB.
const MAX_REQUEST_BYTES: usize = 10_000_000;

/// A write token. It is never printed: not by `Debug`, not in errors, not in diagnostics.
#[derive(Clone)]
pub(crate) struct Token(String);

impl Token {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Sets up analytics: where events go and how they are batched. Made by
/// [`builder()`](crate::builder); every setting has a default.
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
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            api_url: None,
            token: None,
            datasource: None,
            read_env: true,
            dotenv: Some(PathBuf::from(".env")),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            limits: Limits {
                max_events: 25_000,
                max_bytes: 4 << 20,
                max_age: Duration::from_secs(1),
            },
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(3),
            max_attempts: 8,
            max_requests_per_second: 50,
            wait_for_ack: false,
            gzip: true,
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
            .finish()
    }
}

impl Builder {
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

    /// Whether to read `TB_*` variables from the environment and `.env`. Default: true.
    ///
    /// ```
    /// // Configured in code only, whatever the environment says.
    /// let builder = mcp_analytics::builder().from_env(false);
    /// # drop(builder);
    /// ```
    pub fn from_env(mut self, read: bool) -> Self {
        self.read_env = read;
        self
    }

    /// The dotenv file to read besides the environment, or `None` for none. Default: `.env` in
    /// the working directory; a missing file is fine.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().dotenv_path(Some("config/analytics.env"));
    /// # drop(builder);
    /// ```
    pub fn dotenv_path(mut self, path: Option<impl Into<PathBuf>>) -> Self {
        self.dotenv = path.map(Into::into);
        self
    }

    /// How many events may wait for the worker; more are dropped and counted. Default:
    /// [`DEFAULT_QUEUE_CAPACITY`]. Memory: 64 bytes an event, allocated up front (a failed
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

    /// Most events in one request. Default: 25000. With the default byte limit (4 MiB), a
    /// typical call's row (about 330 bytes) closes a batch on bytes first, at about 12,700
    /// events: at 50 requests a second, about 630,000 events a second.
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
    /// the free plan). Default: 4 MiB.
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

    /// Longest the [`Guard`](crate::Guard)'s drop waits to deliver what is queued. Default: 3 s.
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

    /// Starts analytics; on any problem, says so once on stderr and stays disabled (events are
    /// counted as dropped). Never panics. A second call while running warns and returns an
    /// inert guard.
    ///
    /// ```
    /// let _analytics = mcp_analytics::builder().datasource("mcp_logs").init();
    /// ```
    pub fn init(self) -> crate::Guard {
        crate::lifecycle::init(self)
    }

    /// Starts analytics, or says why not. On error nothing changes: events recorded so far keep
    /// waiting in the queue for a successful `init`.
    ///
    /// ```
    /// match mcp_analytics::builder().from_env(false).try_init() {
    ///     Ok(_analytics) => { /* serve */ }
    ///     Err(mcp_analytics::Error::MissingToken) => eprintln!("analytics off: no token"),
    ///     Err(error) => eprintln!("analytics off: {error}"),
    /// }
    /// ```
    pub fn try_init(self) -> Result<crate::Guard, Error> {
        crate::lifecycle::try_init(self)
    }

    /// Resolves the builder, the environment and `.env` into a checked configuration.
    pub(crate) fn resolve(self) -> Result<Config, Error> {
        let mut file = HashMap::new();
        if self.read_env
            && let Some(path) = &self.dotenv
        {
            file = read_dotenv(path)?;
        }
        let lookup = |key: &str| -> Option<String> {
            if !self.read_env {
                return None;
            }
            std::env::var(key)
                .ok()
                .or_else(|| file.get(key).cloned())
                .filter(|value| !value.trim().is_empty())
        };

        let token = self
            .token
            .clone()
            .or_else(|| lookup(ENV_TOKEN))
            .ok_or(Error::MissingToken)?;
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidToken);
        }
        let api_url = self
            .api_url
            .clone()
            .or_else(|| lookup(ENV_API_URL))
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        let datasource = self
            .datasource
            .clone()
            .or_else(|| lookup(ENV_DATASOURCE))
            .unwrap_or_else(|| DEFAULT_DATASOURCE.to_owned());

        check_datasource(&datasource)?;
        self.check_ranges()?;
        let events_url = events_url(&api_url, &datasource, self.wait_for_ack)?;
        if events_url.scheme() == "http" && !is_loopback(&events_url) {
            diag::report(format_args!(
                "the API URL uses http:// to a non-loopback host: the write token travels unencrypted"
            ));
        }

        Ok(Config {
            events_url,
            token: Token(token),
            queue_capacity: self.queue_capacity,
            limits: self.limits,
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_attempts: self.max_attempts,
            min_request_interval: Duration::from_secs(1) / self.max_requests_per_second,
            gzip: self.gzip,
        })
    }

    fn check_ranges(&self) -> Result<(), Error> {
        let invalid = |setting, reason: &str| {
            Err(Error::InvalidSetting {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.queue_capacity == 0 {
            return invalid("queue_capacity", "must be at least 1");
        }
        if self.limits.max_events == 0 {
            return invalid("max_batch_events", "must be at least 1");
        }
        if !(64 << 10..=MAX_REQUEST_BYTES).contains(&self.limits.max_bytes) {
            return invalid("max_batch_bytes", "must be from 65536 to 10000000");
        }
        if self.limits.max_age.is_zero() {
            return invalid("max_batch_age", "must be more than zero");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return invalid("request_timeout", "timeouts must be more than zero");
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.max_requests_per_second == 0 {
            return invalid("max_requests_per_second", "must be at least 1");
        }
        Ok(())
    }
}

/// A checked configuration, owned by the worker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) events_url: Url,
    pub(crate) token: Token,
    pub(crate) queue_capacity: usize,
    pub(crate) limits: Limits,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) min_request_interval: Duration,
    pub(crate) gzip: bool,
}

/// Tinybird datasource names: letters, digits and underscores, not starting with a digit.
fn check_datasource(name: &str) -> Result<(), Error> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSetting {
            setting: "datasource",
            reason: format!("`{name}` is not a datasource name (letters, digits and `_`)"),
        })
    }
}

/// `{base}/v0/events?name={datasource}`, from a base URL as users of the template write it.
fn events_url(base: &str, datasource: &str, wait: bool) -> Result<Url, Error> {
    let shown = shown_url(base);
    let invalid = |reason: String| Error::InvalidUrl {
        url: shown.clone(),
        reason,
    };
    let mut url = Url::parse(base.trim()).map_err(|error| {
        if base.contains("://") {
            invalid(error.to_string())
        } else {
            invalid(format!(
                "{error}; write it with its scheme, e.g. https://{}",
                base.trim()
            ))
        }
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "it must not carry a query or fragment: give the token with TB_WRITE_TOKEN".to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry credentials".to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{path}/v0/events"));
    url.query_pairs_mut().append_pair("name", datasource);
    if wait {
        url.query_pairs_mut().append_pair("wait", "true");
    }
    Ok(url)
}

/// The URL as an error may show it: without query, fragment or credentials, any of which may
/// hold a token pasted in by mistake.
fn shown_url(base: &str) -> String {
    let base = base.trim().split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => base.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The `TB_*` entries of a dotenv file; a missing file is an empty one. Parse errors name the
/// line, never its content: that line may hold the token.
fn read_dotenv(path: &std::path::Path) -> Result<HashMap<String, String>, Error> {
    let entries = match dotenvy::from_path_iter(path) {
        Ok(entries) => entries,
        Err(error) if error.not_found() => return Ok(HashMap::new()),
        Err(dotenvy::Error::Io(error)) => {
            return Err(Error::Dotenv(format!("{}: {error}", path.display())));
        }
        Err(_) => return Err(Error::Dotenv(format!("{}: unreadable", path.display()))),
    };
    let mut found = HashMap::new();
    for (index, entry) in entries.enumerate() {
        match entry {
            Ok((key, value)) if key.starts_with("TB_") => {
                found.insert(key, value);
            }
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(_, _)) => {
                return Err(Error::Dotenv(format!(
                    "{}: entry {} cannot be parsed",
                    path.display(),
                    index + 1
                )));
            }
            Err(dotenvy::Error::Io(error)) => {
                return Err(Error::Dotenv(format!("{}: {error}", path.display())));
            }
            Err(_) => {
                return Err(Error::Dotenv(format!(
                    "{}: entry {} cannot be read",
                    path.display(),
                    index + 1
                )));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str) -> Result<String, Error> {
        events_url(base, "mcp_logs", false).map(String::from)
    }

    #[test]
    fn base_urls_are_taken_as_the_template_writes_them() {
        let expected = "https://api.tinybird.co/v0/events?name=mcp_logs";
        assert_eq!(url("https://api.tinybird.co").unwrap(), expected);
        assert_eq!(url("https://api.tinybird.co/").unwrap(), expected);
        assert_eq!(url(" https://api.tinybird.co ").unwrap(), expected);
        assert_eq!(
            url("http://localhost:7181").unwrap(),
            "http://localhost:7181/v0/events?name=mcp_logs"
        );
        assert_eq!(
            url("https://proxy.example/tinybird/").unwrap(),
            "https://proxy.example/tinybird/v0/events?name=mcp_logs"
        );
        assert_eq!(
            events_url("http://127.0.0.1:1", "logs", true)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/v0/events?name=logs&wait=true"
        );
    }

    #[test]
    fn malformed_urls_are_clear_errors_without_their_query() {
        for (base, reason) in [
            ("api.tinybird.co", "write it with its scheme"),
            ("ftp://api.tinybird.co", "scheme must be http or https"),
            (
                "https://api.tinybird.co/?token=p.secret",
                "must not carry a query",
            ),
            (
                "https://user:p.secret@api.tinybird.co",
                "must not carry credentials",
            ),
            (
                "https://p.secret@api.tinybird.co/x",
                "must not carry credentials",
            ),
            ("https://", ""),
        ] {
            let error = url(base).unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{base}: {text}");
            assert!(text.contains(reason), "{base}: {text}");
            assert!(!text.contains("p.secret"), "{text}");
        }
    }

    #[test]
    fn a_token_alone_ships_to_the_default_region() {
        let config = Builder::default()
            .from_env(false)
            .token("p.token")
            .resolve()
            .unwrap();
        assert_eq!(
            config.events_url.as_str(),
            "https://api.tinybird.co/v0/events?name=mcp_logs"
        );
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let builder = Builder::default().token("p.secret-token");
        assert!(!format!("{builder:?}").contains("secret"));
        let config = builder.from_env(false).resolve().unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let base = || Builder::default().from_env(false).token("t");
        let refused = |builder: Builder, setting: &str| match builder.resolve() {
            Err(Error::InvalidSetting { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("{setting}: {other:?}"),
        };
        refused(base().queue_capacity(0), "queue_capacity");
        refused(base().max_batch_events(0), "max_batch_events");
        refused(base().max_batch_bytes(1024), "max_batch_bytes");
        refused(base().max_batch_bytes(20_000_000), "max_batch_bytes");
        refused(base().max_batch_age(Duration::ZERO), "max_batch_age");
        refused(base().max_attempts(0), "max_attempts");
        refused(base().max_requests_per_second(0), "max_requests_per_second");
        refused(base().datasource("mcp-logs"), "datasource");
        refused(base().datasource(""), "datasource");
    }

    #[test]
    fn tokens_with_whitespace_are_refused() {
        let resolve = |token: &str| Builder::default().from_env(false).token(token).resolve();
        assert!(matches!(resolve("p.abc def"), Err(Error::InvalidToken)));
        assert!(matches!(resolve(""), Err(Error::InvalidToken)));
        assert!(matches!(
            Builder::default().from_env(false).resolve(),
            Err(Error::MissingToken)
        ));
    }

    #[test]
    fn dotenv_supplies_what_the_environment_lacks_and_hides_bad_lines() {
        let dir = std::env::temp_dir().join(format!("mcp-analytics-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.env");
        std::fs::write(
            &good,
            "# comment\nTB_WRITE_TOKEN=p.from-file\nTB_DATASOURCE=from_file\nOTHER=1\n",
        )
        .unwrap();
        let entries = read_dotenv(&good).unwrap();
        assert_eq!(
            entries.get("TB_WRITE_TOKEN").map(String::as_str),
            Some("p.from-file")
        );
        assert_eq!(
            entries.get("TB_DATASOURCE").map(String::as_str),
            Some("from_file")
        );
        assert!(!entries.contains_key("OTHER"));

        let bad = dir.join("bad.env");
        std::fs::write(
            &bad,
            "TB_API_URL=https://api.tinybird.co\nTB_WRITE_TOKEN='p.secret\n",
        )
        .unwrap();
        let error = read_dotenv(&bad).unwrap_err().to_string();
        assert!(error.contains("cannot be parsed"), "{error}");
        assert!(!error.contains("p.secret"), "{error}");

        assert!(read_dotenv(&dir.join("missing.env")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
