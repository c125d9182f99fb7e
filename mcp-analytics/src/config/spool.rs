//! The builder's settings for the disk spool: whether there is one, where, and how large it may
//! grow.

use std::path::PathBuf;

use super::Builder;
use super::env::Env;
use crate::diag;
use crate::error::Error;
use crate::spool;

/// Smallest `spool_max_bytes`: room for a few batches of a busy server.
const MIN_SPOOL_BYTES: u64 = 1 << 20;

/// What the builder holds for the spool.
#[derive(Debug, Clone)]
pub(super) struct SpoolOptions {
    enabled: bool,
    dir: Option<PathBuf>,
    max_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            max_bytes: Builder::DEFAULT_SPOOL_MAX_BYTES,
        }
    }
}

/// The spool the worker opens: a checked configuration.
#[derive(Debug, Clone)]
pub(crate) struct SpoolSettings {
    pub(crate) dir: PathBuf,
    pub(crate) datasource: String,
    pub(crate) max_bytes: u64,
}

impl SpoolOptions {
    /// The spool for `datasource`'s batches, if any: the builder's directory, else
    /// `MCP_ANALYTICS_SPOOL_DIR`, else the platform's cache directory (when it has one, and
    /// `implicit` allows it: not for deliveries to memory, which tests use).
    pub(super) fn resolve(
        &self,
        env: &Env,
        datasource: &str,
        implicit: bool,
    ) -> Result<Option<SpoolSettings>, Error> {
        if self.max_bytes < MIN_SPOOL_BYTES {
            return Err(Error::InvalidSetting {
                setting: "spool_max_bytes",
                reason: format!("must be at least {MIN_SPOOL_BYTES} bytes"),
            });
        }
        if !self.enabled {
            return Ok(None);
        }
        let dir = match self.dir.clone() {
            Some(dir) => Some(dir),
            None if !implicit => return Ok(None),
            None => env
                .get(spool::DIR_VARIABLE)
                .map(PathBuf::from)
                .or_else(|| spool::default_dir(datasource)),
        };
        let Some(dir) = dir else {
            diag::report(format_args!(
                "no cache directory (no home directory?): events that cannot be delivered now \
                 are not spooled to disk; set {} to spool them",
                spool::DIR_VARIABLE
            ));
            return Ok(None);
        };
        Ok(Some(SpoolSettings {
            dir,
            datasource: datasource.to_owned(),
            max_bytes: self.max_bytes,
        }))
    }
}

impl Builder {
    /// The spool's budget unless [`Builder::spool_max_bytes`] says otherwise: 64 MiB, millions
    /// of events as the compressed request bodies the spool keeps.
    ///
    /// ```
    /// assert_eq!(mcp_analytics::Builder::DEFAULT_SPOOL_MAX_BYTES, 64 << 20);
    /// ```
    pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 << 20;

    /// Whether events that cannot be delivered now go to a disk spool, to be delivered later,
    /// by this process or the next run of the server. Default: true.
    ///
    /// What goes there: a batch the Events API would not take after every retry (or whose
    /// `Retry-After` is too long); during an outage, what would otherwise overflow the queue;
    /// and, at shutdown, everything not yet delivered, written at once, before a last
    /// delivery is tried in the time left. Spooled files are sent again, oldest first, at start
    /// and whenever the Events API answers again, each by one process only, and deleted once
    /// acknowledged. Only the worker thread touches the disk, never a handler. With `false`,
    /// such events are dropped and counted in [`Stats::failed`](crate::Stats::failed).
    ///
    /// ```
    /// // Nothing on disk, ever.
    /// let builder = mcp_analytics::builder().spool(false);
    /// assert!(format!("{builder:?}").contains("enabled: false"));
    /// ```
    pub fn spool(mut self, enabled: bool) -> Self {
        self.spool.enabled = enabled;
        self
    }

    /// The spool's directory (overrides `MCP_ANALYTICS_SPOOL_DIR`). Default: the platform's
    /// cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS,
    /// `%LOCALAPPDATA%` on Windows) under `mcp-analytics/<executable name>/<datasource>`.
    /// Created if missing, readable by its owner only. Every copy of the server may share
    /// it; give each server and datasource a directory of its own: a file of another
    /// datasource is set aside, not sent.
    ///
    /// ```
    /// let builder = mcp_analytics::builder().spool_dir("/var/cache/my-server/analytics");
    /// # drop(builder);
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool.dir = Some(dir.into());
        self
    }

    /// Most bytes the spool keeps on disk; past it, the oldest files are deleted, and their
    /// events counted in [`Stats::discarded`](crate::Stats::discarded). At least 1 MiB.
    /// Default: [`Builder::DEFAULT_SPOOL_MAX_BYTES`].
    ///
    /// ```
    /// let builder = mcp_analytics::builder().spool_max_bytes(16 << 20);
    /// # drop(builder);
    /// ```
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool.max_bytes = bytes;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(builder: &Builder, implicit: bool) -> Result<Option<SpoolSettings>, Error> {
        builder.spool.resolve(&Env::default(), "mcp_logs", implicit)
    }

    #[test]
    fn the_spool_is_where_the_builder_says_or_in_the_cache_directory() {
        let dir = PathBuf::from("/tmp/analytics-spool");
        let given = Builder::default().spool_dir(&dir).spool_max_bytes(2 << 20);
        let settings = resolve(&given, true).unwrap().expect("a spool");
        assert_eq!(settings.dir, dir);
        assert_eq!(settings.datasource, "mcp_logs");
        assert_eq!(settings.max_bytes, 2 << 20);

        let default = resolve(&Builder::default(), true).unwrap();
        assert_eq!(
            default.map(|settings| settings.dir),
            spool::default_dir("mcp_logs"),
            "the platform's cache directory, when there is one"
        );
        assert_eq!(
            resolve(&Builder::default(), false).unwrap().map(|s| s.dir),
            None,
            "deliveries to memory spool only where told"
        );
        assert!(
            resolve(&given, false).unwrap().is_some(),
            "told: even to memory"
        );
    }

    #[test]
    fn the_spool_can_be_turned_off_and_its_budget_is_checked() {
        let off = Builder::default().spool_dir("/tmp/x").spool(false);
        assert!(resolve(&off, true).unwrap().is_none());
        let tiny = Builder::default().spool_max_bytes(1000);
        let error = resolve(&tiny, true).unwrap_err();
        assert!(error.to_string().contains("spool_max_bytes"), "{error}");
    }
}
