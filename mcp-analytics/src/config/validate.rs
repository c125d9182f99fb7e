//! Range checks: a setting that cannot work is refused at `init`, naming the setting, rather
//! than misbehaving later.

use super::Builder;
use crate::error::Error;

/// The Events API's request limit on the free plan; paid plans allow 100 MB.
const MAX_REQUEST_BYTES: usize = 10_000_000;

fn invalid(setting: &'static str, reason: &str) -> Result<(), Error> {
    Err(Error::InvalidSetting {
        setting,
        reason: reason.to_owned(),
    })
}

/// Every numeric setting within its range.
pub(super) fn ranges(builder: &Builder) -> Result<(), Error> {
    if builder.queue_capacity == 0 {
        return invalid("queue_capacity", "must be at least 1");
    }
    if builder.limits.max_events == 0 {
        return invalid("max_batch_events", "must be at least 1");
    }
    if !(64 << 10..=MAX_REQUEST_BYTES).contains(&builder.limits.max_bytes) {
        return invalid("max_batch_bytes", "must be from 65536 to 10000000");
    }
    if builder.limits.max_age.is_zero() {
        return invalid("max_batch_age", "must be more than zero");
    }
    if builder.request_timeout.is_zero() {
        return invalid("request_timeout", "must be more than zero");
    }
    if builder.connect_timeout.is_zero() {
        return invalid("connect_timeout", "must be more than zero");
    }
    if builder.max_attempts == 0 {
        return invalid("max_attempts", "must be at least 1");
    }
    if builder.max_requests_per_second == 0 {
        return invalid("max_requests_per_second", "must be at least 1");
    }
    Ok(())
}

/// Tinybird datasource names: letters, digits and underscores, not starting with a digit.
pub(super) fn datasource(name: &str) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let base = || Builder::default().read_env(false).token("t");
        let refused = |builder: Builder, setting: &str| match builder.resolve() {
            Err(Error::InvalidSetting { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("{setting}: {other:?}"),
        };
        refused(base().queue_capacity(0), "queue_capacity");
        refused(base().max_batch_events(0), "max_batch_events");
        refused(base().max_batch_bytes(1024), "max_batch_bytes");
        refused(base().max_batch_bytes(20_000_000), "max_batch_bytes");
        refused(base().max_batch_age(Duration::ZERO), "max_batch_age");
        refused(base().request_timeout(Duration::ZERO), "request_timeout");
        refused(base().connect_timeout(Duration::ZERO), "connect_timeout");
        refused(base().max_attempts(0), "max_attempts");
        refused(base().max_requests_per_second(0), "max_requests_per_second");
        refused(base().datasource("mcp-logs"), "datasource");
        refused(base().datasource(""), "datasource");
    }
}
