use std::fs;
use std::path::PathBuf;

use super::*;

/// A fresh directory of its own for each test, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-analytics-spool-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn batch(events: usize, tag: &str) -> Batch {
    let body: String = (0..events)
        .map(|i| format!("{{\"tag\":\"{tag}\",\"i\":{i}}}\n"))
        .collect();
    Batch::new(body.into_bytes(), events)
}

fn open(dir: &Dir, max_bytes: u64) -> Spool {
    Spool::open(dir.0.clone(), "mcp_logs", max_bytes).unwrap()
}

#[test]
fn a_stored_batch_reads_back_whole_and_goes_once_acknowledged() {
    let dir = Dir::new("round-trip");
    let mut spool = open(&dir, 1 << 20);
    let mut original = batch(3, "a");
    let (stored, claim) = spool.store(&mut original, false).unwrap();
    assert_eq!(
        stored,
        Stored {
            events: 3,
            evicted: 0
        }
    );
    assert!(claim.is_none());
    assert_eq!(spool.waiting(), (3, 1));

    let claimed = spool.claim_oldest();
    let (claim, read) = claimed.next.expect("the file is claimable");
    assert_eq!(read.body, original.body);
    assert_eq!(read.events, 3);
    assert!(!read.maybe_delivered);
    assert!(
        spool.claim_oldest().next.is_none(),
        "a claimed file is nobody else's"
    );
    spool.acknowledge(claim);
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[cfg(unix)]
#[test]
fn files_and_the_directory_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new("private");
    let mut spool = open(&dir, 1 << 20);
    spool.store(&mut batch(1, "a"), false).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.0), 0o700);
    let file = dir.0.join(&dir.files()[0]);
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn files_replay_oldest_first_and_a_released_file_keeps_its_place() {
    let dir = Dir::new("order");
    let mut spool = open(&dir, 1 << 20);
    for tag in ["first", "second", "third"] {
        spool.store(&mut batch(1, tag), false).unwrap();
    }
    let (claim, read) = spool.claim_oldest().next.unwrap();
    assert!(String::from_utf8_lossy(&read.body).contains("first"));
    spool.release(claim, false);
    let (claim, read) = spool.claim_oldest().next.unwrap();
    assert!(String::from_utf8_lossy(&read.body).contains("first"));
    spool.acknowledge(claim);
    let (_claim, read) = spool.claim_oldest().next.unwrap();
    assert!(String::from_utf8_lossy(&read.body).contains("second"));
}

#[test]
fn a_send_under_way_is_recorded_in_the_name_until_released_as_undelivered() {
    let dir = Dir::new("sending");
    let mut spool = open(&dir, 1 << 20);
    spool.store(&mut batch(2, "a"), false).unwrap();
    let (mut claim, _) = spool.claim_oldest().next.unwrap();
    spool.mark_sending(&mut claim);
    assert!(dir.files()[0].contains("-sent."), "{:?}", dir.files());
    // Should this process die now, the next sender knows the rows may be there already.
    drop(claim);
    let (claim, read) = spool.claim_oldest().next.unwrap();
    assert!(read.maybe_delivered);
    // The service answered "not now": it holds nothing.
    spool.release(claim, false);
    assert!(!dir.files()[0].contains("-sent."), "{:?}", dir.files());
    let (_claim, read) = spool.claim_oldest().next.unwrap();
    assert!(!read.maybe_delivered);
}

#[test]
fn a_held_copy_is_nobody_elses_and_marked_as_being_sent() {
    let dir = Dir::new("held");
    let mut spool = open(&dir, 1 << 20);
    let (_, claim) = spool.store(&mut batch(2, "a"), true).unwrap();
    let claim = claim.expect("held");
    assert!(spool.claim_oldest().next.is_none());
    spool.release(claim, true);
    let (_claim, read) = spool.claim_oldest().next.unwrap();
    assert!(read.maybe_delivered);
}

#[test]
fn unreadable_files_are_set_aside_counted_and_never_read_again() {
    let dir = Dir::new("corrupt");
    let mut spool = open(&dir, 1 << 20);
    spool.store(&mut batch(4, "torn"), false).unwrap();
    spool.store(&mut batch(5, "bad-gzip"), false).unwrap();
    // Another datasource's file, whole.
    let mut other = Spool::open(dir.0.clone(), "other_logs", 1 << 20).unwrap();
    other.store(&mut batch(7, "other"), false).unwrap();
    spool.store(&mut batch(6, "whole"), false).unwrap();
    let names = dir.files();
    // A torn write: the file cut short.
    let torn = dir.0.join(&names[0]);
    let bytes = fs::read(&torn).unwrap();
    fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    // Not gzip at all.
    fs::write(dir.0.join(&names[1]), b"{\"not\":\"gzip\"}\n").unwrap();

    let claimed = spool.claim_oldest();
    assert_eq!(claimed.set_aside, 4 + 5 + 7);
    let (_claim, read) = claimed.next.expect("the whole file is next");
    assert!(String::from_utf8_lossy(&read.body).contains("whole"));
    let set_aside = dir
        .files()
        .iter()
        .filter(|name| name.ends_with(SET_ASIDE))
        .count();
    assert_eq!(set_aside, 3, "{:?}", dir.files());
    assert_eq!(spool.waiting(), (6, 1));
}

#[test]
fn over_budget_the_oldest_files_go_first_and_are_counted() {
    let dir = Dir::new("budget");
    // Incompressible rows, so that each file is about 40 KiB.
    let noisy = |tag: &str| {
        let body: String = (0..100)
            .map(|i| {
                let noise: String = (0..400)
                    .map(|_| char::from(b'a' + fastrand::u8(..26)))
                    .collect();
                format!("{{\"tag\":\"{tag}\",\"i\":{i},\"noise\":\"{noise}\"}}\n")
            })
            .collect();
        Batch::new(body.into_bytes(), 100)
    };
    let mut spool = open(&dir, 1 << 20);
    spool.store(&mut noisy("b0"), false).unwrap();
    let size = fs::metadata(dir.0.join(&dir.files()[0])).unwrap().len();
    // Room for two files and a half.
    let budget = size * 5 / 2;
    let mut spool = open(&dir, budget);
    let mut evicted = 0;
    for tag in ["b1", "b2", "b3"] {
        evicted += spool.store(&mut noisy(tag), false).unwrap().0.evicted;
    }
    assert_eq!(evicted, 200, "two files of 100 rows made room");
    assert_eq!(spool.waiting(), (200, 2));
    let total: u64 = dir
        .files()
        .iter()
        .map(|name| fs::metadata(dir.0.join(name)).unwrap().len())
        .sum();
    assert!(total <= budget, "{total} > {budget}");
    let (_claim, read) = spool.claim_oldest().next.unwrap();
    assert!(String::from_utf8_lossy(&read.body).contains("b2"));
}

#[test]
fn a_batch_larger_than_the_budget_is_refused_with_a_clear_error() {
    let dir = Dir::new("too-large");
    let mut spool = open(&dir, 64);
    let error = spool.store(&mut batch(50, "x"), false).unwrap_err();
    assert!(
        error.to_string().contains("larger than the spool's budget"),
        "{error}"
    );
    assert!(dir.files().is_empty());
}

#[test]
fn a_file_held_by_its_sender_is_not_evicted() {
    let dir = Dir::new("held-eviction");
    let mut spool = open(&dir, 1 << 20);
    let (_, held) = spool.store(&mut batch(10, "held"), true).unwrap();
    let size = fs::metadata(dir.0.join(&dir.files()[0])).unwrap().len();
    // Room for one file only: the held one stays, so the new one does not fit the budget,
    // but it is written all the same (the budget is kept as far as the holders allow).
    let mut tight = Spool::open(dir.0.clone(), "mcp_logs", size + size / 2).unwrap();
    let (stored, _) = tight.store(&mut batch(10, "new"), false).unwrap();
    assert_eq!(stored.evicted, 0);
    assert_eq!(dir.files().len(), 2);
    drop(held);
}

#[test]
fn partial_files_of_dead_writers_are_removed_and_never_read() {
    let dir = Dir::new("partial");
    let spool = open(&dir, 1 << 20);
    let partial = dir.0.join(format!("{PARTIAL}1-1"));
    fs::write(&partial, b"half a file").unwrap();
    let old = SystemTime::now() - PARTIAL_FILE_AGE * 2;
    File::options()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let fresh = dir.0.join(format!("{PARTIAL}1-2"));
    fs::write(&fresh, b"being written").unwrap();
    assert!(spool.claim_oldest().next.is_none());
    assert_eq!(
        dir.files(),
        vec![format!("{PARTIAL}1-2")],
        "the fresh one may be in use"
    );
}

#[test]
fn a_partial_file_of_a_dead_process_with_the_same_pid_does_not_block_writes() {
    // A server killed mid-write and restarted at once with the same pid (PID 1 in a container,
    // say) counts its files from 1 again.
    let dir = Dir::new("pid-reuse");
    let mut spool = open(&dir, 1 << 20);
    for sequence in 1..=3 {
        let left = dir
            .0
            .join(format!("{PARTIAL}{}-{sequence}", std::process::id()));
        fs::write(&left, b"half a file").unwrap();
    }
    for tag in ["a", "b", "c"] {
        let stored = spool.store(&mut batch(2, tag), false);
        assert!(stored.is_ok(), "{stored:?}");
    }
    assert_eq!(spool.waiting(), (6, 3));
}
