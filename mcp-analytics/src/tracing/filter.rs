//! Which lines the layer ships. By default, your crate's at `INFO` and every other crate's at
//! `WARN`: an SDK's own `INFO` lines (rmcp's as it starts, one of them a `Debug` dump of the
//! client's handshake, and on notifications, cancellations and its end) would otherwise outnumber
//! yours. Or, given, the rules of a [`Targets`], in place of both.
//!
//! Every check is made per event, so each stays cheap: one compare of levels drops most lines
//! before their target is read, and the default rule is two prefix compares, with no allocation.

use tracing_core::{Level, LevelFilter};
use tracing_subscriber::filter::Targets;

/// The crate whose lines are never shipped: ours. It writes its diagnostics to stderr, not
/// through `tracing`; should one of its dependencies' events ever carry its target, shipping
/// could feed itself.
const OURS: &str = "mcp_analytics";

#[derive(Debug, Clone)]
pub(super) struct Filter {
    /// Your package's name (`CARGO_PKG_NAME`, with its `-`): the root of its library's and its
    /// default binary's module paths, where `-` is `_`.
    package: &'static str,
    /// The root of the module path where `layer!()` is written: the crate being compiled, when
    /// that is not the package's library (a binary in `src/bin/`, an example, a test).
    here: &'static str,
    own: LevelFilter,
    others: LevelFilter,
    /// `Layer::with_targets`: these rules instead of `own` and `others`.
    targets: Option<Targets>,
    /// The most verbose level any rule ships.
    most_verbose: LevelFilter,
}

impl Filter {
    pub(super) const fn new(package: &'static str, module_path: &'static str) -> Self {
        Self {
            package,
            here: crate_root(module_path),
            own: LevelFilter::INFO,
            others: LevelFilter::WARN,
            targets: None,
            most_verbose: LevelFilter::INFO,
        }
    }

    pub(super) fn own(&mut self, level: LevelFilter) {
        self.own = level;
        self.update_most_verbose();
    }

    pub(super) fn others(&mut self, level: LevelFilter) {
        self.others = level;
        self.update_most_verbose();
    }

    pub(super) fn targets(&mut self, targets: Targets) {
        self.targets = Some(targets);
        self.update_most_verbose();
    }

    fn update_most_verbose(&mut self) {
        self.most_verbose = match &self.targets {
            // The default level, when the rules set one, is a directive without a target, which
            // `iter` leaves out.
            Some(targets) => targets
                .iter()
                .map(|(_, level)| level)
                .chain(targets.default_level())
                .max()
                .unwrap_or(LevelFilter::OFF),
            None => self.own.max(self.others),
        };
    }

    /// Whether some rule ships lines at `level`: if not, the line's target need not be read.
    #[inline]
    pub(super) fn may_ship(&self, level: &Level) -> bool {
        self.most_verbose >= *level
    }

    /// Whether a line of `target` at `level` is shipped.
    #[inline]
    pub(super) fn ships(&self, target: &str, level: &Level) -> bool {
        if in_crate(target, OURS) {
            return false;
        }
        match &self.targets {
            Some(targets) => targets.would_enable(target, level),
            None => {
                let own = in_crate(target, self.here) || in_crate(target, self.package);
                let threshold = if own { self.own } else { self.others };
                threshold >= *level
            }
        }
    }
}

/// The first segment of a module path: `my_server` for `my_server::tools`.
const fn crate_root(module_path: &'static str) -> &'static str {
    let bytes = module_path.as_bytes();
    let mut end = 0;
    while end < bytes.len() && bytes[end] != b':' {
        end += 1;
    }
    module_path.split_at(end).0
}

/// Whether `target` is in the crate `name`, as module paths name it: `name` itself or a path
/// under it (`my_server`, `my_server::tools`), not another crate that starts alike
/// (`my_server_extra`). A `-` in `name` (a package's name) stands for the `_` of module paths.
#[inline]
fn in_crate(target: &str, name: &str) -> bool {
    let (target, name) = (target.as_bytes(), name.as_bytes());
    target.len() >= name.len()
        && target
            .iter()
            .zip(name)
            .all(|(&t, &n)| t == n || (n == b'-' && t == b'_'))
        && matches!(target.get(name.len()), None | Some(b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_is_matched_on_whole_path_segments() {
        assert!(in_crate("my_server", "my-server"));
        assert!(in_crate("my_server::tools::weather", "my-server"));
        assert!(in_crate("my_server::tools", "my_server"));
        assert!(!in_crate("my_server_extra", "my-server"));
        assert!(!in_crate("my_server_extra::x", "my_server"));
        assert!(!in_crate("my", "my-server"));
        assert!(
            !in_crate("my-server", "my_server"),
            "`_` never stands for `-`"
        );
        assert!(!in_crate("rmcp::service", "my-server"));
        assert_eq!(crate_root("my_server::tools"), "my_server");
        assert_eq!(crate_root("logs"), "logs");
    }

    #[test]
    fn the_default_is_your_crate_at_info_and_the_others_at_warn() {
        let filter = Filter::new("my-server", "my_server_bin::setup");
        for own in [
            "my_server",
            "my_server::tools",
            "my_server_bin",
            "my_server_bin::x",
        ] {
            assert!(filter.ships(own, &Level::INFO), "{own}");
            assert!(!filter.ships(own, &Level::DEBUG), "{own}");
        }
        for other in ["rmcp::service", "my_server_extra", "hyper", "log"] {
            assert!(!filter.ships(other, &Level::INFO), "{other}");
            assert!(filter.ships(other, &Level::WARN), "{other}");
        }
        assert!(
            !filter.ships("mcp_analytics::worker", &Level::ERROR),
            "never ours"
        );
        assert!(filter.may_ship(&Level::INFO) && !filter.may_ship(&Level::DEBUG));
    }

    #[test]
    fn targets_replace_the_default_and_set_the_most_verbose_level() {
        let mut filter = Filter::new("my-server", "my_server");
        filter.others(LevelFilter::ERROR);
        filter.own(LevelFilter::DEBUG);
        assert!(filter.may_ship(&Level::DEBUG) && !filter.may_ship(&Level::TRACE));
        filter.targets("rmcp=info,my_server=trace".parse().unwrap());
        assert!(filter.may_ship(&Level::TRACE));
        assert!(filter.ships("rmcp::service", &Level::INFO));
        assert!(filter.ships("my_server::db", &Level::TRACE));
        assert!(!filter.ships("hyper", &Level::ERROR), "no default: off");
        filter.targets("warn".parse().unwrap());
        assert!(filter.may_ship(&Level::WARN) && !filter.may_ship(&Level::INFO));
        assert!(filter.ships("hyper", &Level::WARN));
        assert!(!filter.ships("mcp_analytics", &Level::ERROR), "never ours");
    }
}
