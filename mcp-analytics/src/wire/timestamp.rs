//! The `timestamp` column, `YYYY-MM-DD HH:MM:SS.mmm` in UTC: what ClickHouse's
//! `DateTime`/`DateTime64` columns parse.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::clock;

/// One simultaneous reading of the monotonic clock and the system clock.
#[derive(Clone, Copy)]
struct Anchor {
    ticks: u64,
    system: SystemTime,
}

impl Anchor {
    fn now() -> Self {
        Self {
            ticks: clock().raw(),
            system: SystemTime::now(),
        }
    }

    /// Checked arithmetic: a system clock set absurdly far off clamps rather than panics.
    fn at(&self, ticks: u64) -> SystemTime {
        let shifted = if ticks >= self.ticks {
            self.system.checked_add(clock().delta(self.ticks, ticks))
        } else {
            self.system.checked_sub(clock().delta(ticks, self.ticks))
        };
        shifted.unwrap_or(self.system)
    }
}

/// Maps the hot path's clock ticks to wall-clock time, so the hot path reads only the monotonic
/// clock.
///
/// The mapping of a tick must not depend on when its row is encoded: a session's start and end
/// rows carry the same tick, the end row minutes later, and must get the same timestamp. A fresh
/// anchor for every batch would not do that: the monotonic clock's calibrated rate is off from
/// the system clock's by a little, which moves an old tick's mapping across a millisecond. So
/// anchors are kept, a new one taken only when the system clock has moved away from the last
/// one's mapping by `REANCHOR_AFTER` (drift, or a stepped clock), and a tick is always mapped
/// through the last anchor taken before it.
#[derive(Clone)]
pub(crate) struct WallClock {
    /// Oldest first; never empty.
    anchors: VecDeque<Anchor>,
}

/// How far the system clock may move from the last anchor's mapping before a new anchor is
/// taken: below the timestamps' millisecond, so they stay that close to the system clock.
const REANCHOR_AFTER: Duration = Duration::from_micros(500);

/// How many anchors are kept: at the drift of a poorly calibrated clock (a few parts in ten
/// thousand), one every few seconds, so about an hour of ticks keep their own anchor; older ones
/// are mapped through the oldest kept.
const MAX_ANCHORS: usize = 1024;

impl WallClock {
    pub(crate) fn now() -> Self {
        Self {
            anchors: VecDeque::from([Anchor::now()]),
        }
    }

    /// Takes a new anchor if the system clock has moved away from the last one's mapping.
    pub(crate) fn refresh(&mut self) {
        self.push(Anchor::now());
    }

    fn push(&mut self, fresh: Anchor) {
        let apart = self.anchors.back().map_or(Duration::MAX, |last| {
            let mapped = last.at(fresh.ticks);
            match fresh.system.duration_since(mapped) {
                Ok(ahead) => ahead,
                Err(behind) => behind.duration(),
            }
        });
        if apart >= REANCHOR_AFTER {
            if self.anchors.len() == MAX_ANCHORS {
                self.anchors.pop_front();
            }
            self.anchors.push_back(fresh);
        }
    }

    /// The wall-clock time of `ticks`, through the last anchor taken at or before it (the oldest
    /// kept for a tick older than all of them).
    pub(crate) fn at(&self, ticks: u64) -> SystemTime {
        let after = self.anchors.partition_point(|anchor| anchor.ticks <= ticks);
        match self.anchors.get(after.saturating_sub(1)) {
            Some(anchor) => anchor.at(ticks),
            None => Anchor::now().at(ticks),
        }
    }
}

/// Writes `timestamp` columns. The calendar part costs more than the rest of a line, and rows
/// in a batch mostly share their second, so the last second's text is kept.
#[derive(Default)]
pub(crate) struct TimestampWriter {
    second: Option<u64>,
    /// `YYYY-MM-DD HH:MM:SS` of `second`.
    text: String,
}

impl TimestampWriter {
    pub(crate) fn write(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        // Times before 1970 only come from a badly wrong clock; clamp rather than fail.
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.text.clear();
            let (year, month, day) = civil_from_days(secs / 86_400);
            let second_of_day = secs % 86_400;
            let _ = write!(
                self.text,
                "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
                second_of_day / 3600,
                second_of_day / 60 % 60,
                second_of_day % 60,
            );
        }
        out.extend_from_slice(self.text.as_bytes());
        let millis = since_epoch.subsec_millis();
        let digit = |value: u32| b'0' + (value % 10) as u8;
        out.extend_from_slice(&[b'.', digit(millis / 100), digit(millis / 10), digit(millis)]);
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(time: SystemTime) -> String {
        let mut out = Vec::new();
        TimestampWriter::default().write(time, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_match_httpdate_to_the_second() {
        // Cross-checks the civil-date arithmetic against an independent implementation over
        // 400 years of instants, leap days and century rules included.
        let mut secs: u64 = 0;
        while secs < 400 * 365 * 86_400 {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            let ours = timestamp(time);
            let theirs = httpdate::HttpDate::from(time).to_string(); // "Sun, 06 Nov 1994 08:49:37 GMT"
            let reparsed = httpdate::parse_http_date(&theirs).unwrap();
            assert_eq!(reparsed, time);
            let (date, clock) = ours.split_once(' ').unwrap();
            let mut parts = date.split('-');
            let (year, month, day) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let expected = format!(
                "{day} {} {year} {}",
                months[month.parse::<usize>().unwrap() - 1],
                &clock[..8]
            );
            assert!(theirs.contains(&expected), "{ours} vs {theirs}");
            secs += 86_400 * 7 + 3_607; // walks every weekday and time of day
        }
    }

    #[test]
    fn a_tick_maps_to_the_same_time_whenever_it_is_encoded() {
        let mut wall = WallClock::now();
        let before = clock().raw();
        let first = wall.at(before);
        // The system clock steps a second ahead: the next refresh takes a new anchor...
        let stepped = Anchor {
            ticks: clock().raw(),
            system: SystemTime::now() + Duration::from_secs(1),
        };
        wall.push(stepped);
        assert_eq!(wall.anchors.len(), 2);
        // ...which maps the ticks after it, and leaves the earlier ones where they were.
        assert_eq!(wall.at(before), first);
        let after = stepped.ticks + 1;
        assert_eq!(wall.at(after), stepped.at(after));
        // A reading that agrees with the last anchor adds none.
        wall.push(Anchor {
            ticks: stepped.ticks,
            system: stepped.system,
        });
        assert_eq!(wall.anchors.len(), 2);
    }

    #[test]
    fn anchors_are_bounded_and_old_ticks_use_the_oldest_kept() {
        let mut wall = WallClock::now();
        let start = wall.anchors[0];
        for step in 1..=MAX_ANCHORS as u64 + 10 {
            wall.push(Anchor {
                ticks: start.ticks + step * 1_000_000,
                system: start.system + Duration::from_secs(step),
            });
        }
        assert_eq!(wall.anchors.len(), MAX_ANCHORS);
        let oldest = wall.anchors[0];
        assert_eq!(wall.at(start.ticks), oldest.at(start.ticks));
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let time = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(timestamp(time), "2025-11-24 16:00:00.123");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000");
    }

    #[test]
    fn the_kept_second_follows_the_clock_both_ways() {
        let mut writer = TimestampWriter::default();
        let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(1_764_000_000_000 + millis);
        let mut out = Vec::new();
        for millis in [5, 999, 1_000, 61_042, 7, 86_400_000] {
            writer.write(at(millis), &mut out);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-11-24 16:00:00.005 2025-11-24 16:00:00.999 2025-11-24 16:00:01.000 \
             2025-11-24 16:01:01.042 2025-11-24 16:00:00.007 2025-11-25 16:00:00.000 "
        );
    }
}
