//! What a spooled file says of itself, in its name: when and by whom it was written, how many
//! rows it holds, for which datasource, and whether a send of it may already have reached the
//! service. The name is all the metadata there is: the content stays exactly the request body,
//! so that replaying a file is sending it.
//!
//! `{created}-{pid}-{sequence}-{events}[-sent].{datasource}.ndjson.gz`, `created` in nanoseconds
//! since the Unix epoch, zero-padded so that names sort oldest first.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// How every spooled file's name ends.
pub(crate) const EXTENSION: &str = ".ndjson.gz";
/// How a file set aside as unreadable ends: it is never read again, only evicted.
pub(crate) const SET_ASIDE: &str = ".bad";
/// How a file being written starts: never read, removed once its writer is gone.
pub(crate) const PARTIAL: &str = ".partial-";

/// The marker of a file whose send was under way when its holder let go of it or died.
const SENT: &str = "sent";

/// A spooled file's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileName {
    /// When it was written, in nanoseconds since the Unix epoch: files replay oldest first.
    pub(crate) created: u128,
    pub(crate) pid: u32,
    /// Tells apart the files one process writes within the clock's resolution.
    pub(crate) sequence: u64,
    /// Rows in the file: counted when the file is evicted or set aside unread.
    pub(crate) events: usize,
    /// A send of the file was under way when its last holder let go (or died): the service
    /// may hold its rows already, so delivering it again may duplicate them.
    pub(crate) maybe_delivered: bool,
    pub(crate) datasource: String,
}

impl FileName {
    /// The name of a file written now by this process.
    pub(crate) fn new(sequence: u64, events: usize, datasource: &str) -> Self {
        Self {
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos()),
            pid: std::process::id(),
            sequence,
            events,
            maybe_delivered: false,
            datasource: datasource.to_owned(),
        }
    }

    /// The name it parses as, if it is a spooled file's.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let (stem, datasource) = name.strip_suffix(EXTENSION)?.split_once('.')?;
        let mut parts = stem.split('-');
        let created = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let events = parts.next()?.parse().ok()?;
        let maybe_delivered = match parts.next() {
            None => false,
            Some(SENT) => true,
            Some(_) => return None,
        };
        let plain = |text: &str| {
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        (parts.next().is_none() && plain(datasource)).then(|| Self {
            created,
            pid,
            sequence,
            events,
            maybe_delivered,
            datasource: datasource.to_owned(),
        })
    }

    /// The same file, marked (or not) as maybe delivered.
    pub(crate) fn with_maybe_delivered(&self, maybe_delivered: bool) -> Self {
        Self {
            maybe_delivered,
            ..self.clone()
        }
    }

    /// The order files replay and are evicted in: oldest first.
    pub(crate) fn age_key(&self) -> (u128, u32, u64) {
        (self.created, self.pid, self.sequence)
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:020}-{}-{}-{}",
            self.created, self.pid, self.sequence, self.events
        )?;
        if self.maybe_delivered {
            write!(f, "-{SENT}")?;
        }
        write!(f, ".{}{EXTENSION}", self.datasource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_oldest_first() {
        let first = FileName::new(0, 170, "mcp_logs");
        let second = FileName::new(1, 3, "mcp_logs").with_maybe_delivered(true);
        for name in [&first, &second] {
            assert_eq!(FileName::parse(&name.to_string()).as_ref(), Some(name));
        }
        assert!(second.to_string().contains("-3-sent.mcp_logs.ndjson.gz"));
        assert!(first.age_key() < second.age_key());
        assert!(first.to_string() < second.to_string(), "names sort by age");
    }

    #[test]
    fn other_files_are_not_taken_for_spooled_ones() {
        for name in [
            "notes.txt",
            ".partial-1-2",
            "1-2-3-4.mcp_logs.ndjson.gz.bad",
            "1-2-3.mcp_logs.ndjson.gz",
            "1-2-3-4-maybe.mcp_logs.ndjson.gz",
            "1-2-3-4.mcp/logs.ndjson.gz",
            "1-2-3-4..ndjson.gz",
            "x-2-3-4.mcp_logs.ndjson.gz",
        ] {
            assert_eq!(FileName::parse(name), None, "{name}");
        }
    }
}
