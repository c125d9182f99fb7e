//! Where the spool lives unless told: the platform's cache directory (`$XDG_CACHE_HOME` or
//! `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), under
//! `mcp-analytics/<app>/<datasource>`. The app is the running executable's name: every copy of
//! a server shares its spool, and two servers never share one.

use std::path::PathBuf;

/// The environment variable that moves the spool.
pub(crate) const DIR_VARIABLE: &str = "MCP_ANALYTICS_SPOOL_DIR";

/// The default spool directory for `datasource`; `None` where the platform has no cache
/// directory (no home directory).
pub(crate) fn default_dir(datasource: &str) -> Option<PathBuf> {
    Some(
        dirs::cache_dir()?
            .join("mcp-analytics")
            .join(app_name())
            .join(datasource),
    )
}

/// The executable's file name without its extension, reduced to characters that are safe in
/// a path on every platform.
fn app_name() -> String {
    let name = std::env::current_exe()
        .ok()
        .and_then(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.trim_start_matches('.') {
        "" => "server".to_owned(),
        name => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dir_is_per_app_and_datasource() {
        let Some(dir) = default_dir("mcp_logs") else {
            return; // No home directory: nothing to check.
        };
        let app = app_name();
        assert!(
            dir.ends_with(format!("mcp-analytics/{app}/mcp_logs")),
            "{dir:?}"
        );
        assert!(!app.is_empty() && !app.starts_with('.'));
    }
}
