//! The disk spool: batches that cannot be delivered now (the service is down or asks to wait,
//! or the process is exiting), kept as the request bodies they would be (gzip'd NDJSON), one
//! file per batch, until a later delivery, by this process or another copy of the server, is
//! acknowledged. Only the worker touches it, never a handler.
//!
//! - Whole files only: a file is written under a temporary name, synced, then renamed, so a
//!   crash leaves either a whole file or one that is never read (and is cleaned up later).
//! - One sender per file: a process sends a file only while it holds the file's exclusive lock,
//!   and deletes it, acknowledged, before letting go. A file opened just before another process
//!   deleted it is recognized (its path no longer leads to it) and skipped. So an acknowledged
//!   file is never sent again; a crash between the answer and the delete may send it twice,
//!   which its name records (see [`name`]) and `Stats::maybe_duplicated` counts.
//! - Bounded: over the budget, the oldest files go first, counted; a file that cannot be read
//!   back (torn, bad gzip, another datasource's) is set aside, counted, and never retried.
//! - Private: directories are created readable by the owner only, and so are files. They hold
//!   rows only, never the token.

mod location;
mod name;
mod replay;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flate2::read::GzDecoder;

pub(crate) use location::{DIR_VARIABLE, default_dir};
use name::{EXTENSION, FileName, PARTIAL, SET_ASIDE};
pub(crate) use replay::Replay;

use crate::batch::Batch;
use crate::diag;

/// A partial file older than this, and unlocked, was left by a writer that died.
const PARTIAL_FILE_AGE: Duration = Duration::from_secs(60);

/// A spool directory, for one datasource.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    datasource: String,
    max_bytes: u64,
    /// Tells apart the files this process writes.
    sequence: u64,
}

/// A spooled file this process holds: nobody else sends it until it is released.
#[derive(Debug)]
pub(crate) struct Claim {
    /// Open, and exclusively locked, until the claim ends.
    file: File,
    path: PathBuf,
    name: FileName,
}

/// What [`Spool::claim_oldest`] found.
pub(crate) struct Claimed {
    /// The oldest file nobody else holds, and its rows, ready to send.
    pub(crate) next: Option<(Claim, Batch)>,
    /// Rows of files found unreadable on the way, set aside.
    pub(crate) set_aside: usize,
}

/// A file written: rows kept, and rows of older files evicted to make room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) events: usize,
    pub(crate) evicted: usize,
}

impl Claim {
    /// Rows in the claimed file.
    pub(crate) fn events(&self) -> usize {
        self.name.events
    }
}

impl Spool {
    /// Opens (creating it if need be) the spool at `dir` for `datasource`'s batches, keeping
    /// at most `max_bytes` on disk.
    pub(crate) fn open(dir: PathBuf, datasource: &str, max_bytes: u64) -> io::Result<Self> {
        create_private_dir(&dir)?;
        Ok(Self {
            dir,
            datasource: datasource.to_owned(),
            max_bytes,
            sequence: 0,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `batch` (gzip'd) as one file, evicting the oldest files first if it would not fit
    /// the budget. With `hold`, the file is returned claimed: the caller is still sending it.
    /// A batch larger than the whole budget is not written: an error.
    pub(crate) fn store(
        &mut self,
        batch: &mut Batch,
        hold: bool,
    ) -> io::Result<(Stored, Option<Claim>)> {
        let body = batch.compressed().ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, "the batch cannot be compressed")
        })?;
        let size = body.len() as u64;
        if size > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "a batch of {size} bytes is larger than the spool's budget of {} bytes",
                    self.max_bytes
                ),
            ));
        }
        let evicted = self.make_room(size);
        self.sequence += 1;
        let name = FileName::new(self.sequence, batch.events, &self.datasource)
            .with_maybe_delivered(batch.maybe_delivered || hold);
        let file = self.write_whole(&name, &body)?;
        let stored = Stored {
            events: batch.events,
            evicted,
        };
        let claim = hold.then(|| Claim {
            file,
            path: self.dir.join(name.to_string()),
            name,
        });
        Ok((stored, claim))
    }

    /// Writes `body` under a temporary name, syncs it, and renames it to `name`; returns the
    /// file, still locked.
    fn write_whole(&self, name: &FileName, body: &Bytes) -> io::Result<File> {
        // The time too, not only pid and sequence: a process killed mid-write leaves its partial
        // file for a minute, and a restart with the same pid (PID 1 in a container) counts its
        // sequence from 1 again.
        let partial = self.dir.join(format!(
            "{PARTIAL}{}-{}-{}",
            name.pid, name.sequence, name.created
        ));
        let mut file = create_private_file(&partial)?;
        let written = lock_exclusive(&file)
            .and_then(|()| file.write_all(body))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&partial, self.dir.join(name.to_string())));
        if let Err(error) = written {
            let _ = fs::remove_file(&partial);
            return Err(error);
        }
        // The rename is durable once the directory is: without this, a power cut could lose
        // the file although it was synced.
        sync_dir(&self.dir);
        Ok(file)
    }

    /// Evicts the oldest files nobody holds until `incoming` more bytes fit; returns the rows
    /// evicted. Files set aside go first, then spooled ones, oldest first.
    fn make_room(&self, incoming: u64) -> usize {
        let listing = self.list();
        let mut total = listing.bytes;
        let mut evicted = 0;
        let victims = listing.set_aside.into_iter().map(|path| (path, 0)).chain(
            listing
                .files
                .into_iter()
                .map(|(path, name)| (path, name.events)),
        );
        for (path, events) in victims {
            if total + incoming <= self.max_bytes {
                break;
            }
            let Ok(size) = fs::metadata(&path).map(|meta| meta.len()) else {
                continue;
            };
            // Only a file nobody is sending may go: lock it, check it is still there, delete.
            if let Some(file) = open_unheld(&path)
                && still_at(&file, &path)
                && fs::remove_file(&path).is_ok()
            {
                total = total.saturating_sub(size);
                evicted += events;
            }
        }
        if evicted > 0 {
            static EVICTED: diag::Once = diag::Once::new();
            EVICTED.report(format_args!(
                "the spool at {} is full ({} bytes): its oldest events are discarded to make room \
                 (reported once; see mcp_analytics::stats())",
                self.dir.display(),
                self.max_bytes
            ));
        }
        evicted
    }

    /// Claims the oldest spooled file nobody else holds, reading it back whole; files that
    /// cannot be read back are set aside on the way.
    pub(crate) fn claim_oldest(&self) -> Claimed {
        let mut set_aside = 0;
        for (path, name) in self.list().files {
            let Some(file) = open_unheld(&path) else {
                continue;
            };
            if !still_at(&file, &path) {
                continue;
            }
            let claim = Claim { file, path, name };
            match self.read_back(&claim) {
                Ok(batch) => {
                    return Claimed {
                        next: Some((claim, batch)),
                        set_aside,
                    };
                }
                Err(why) => {
                    set_aside += claim.name.events;
                    self.set_aside(claim, &why);
                }
            }
        }
        Claimed {
            next: None,
            set_aside,
        }
    }

    /// The claimed file's rows, if it is whole and this datasource's.
    fn read_back(&self, claim: &Claim) -> Result<Batch, String> {
        if claim.name.datasource != self.datasource {
            return Err(format!(
                "it holds rows of datasource `{}`, not `{}`",
                claim.name.datasource, self.datasource
            ));
        }
        let mut gzipped = Vec::new();
        (&claim.file)
            .read_to_end(&mut gzipped)
            .map_err(|error| format!("it cannot be read: {error}"))?;
        let mut body = Vec::with_capacity(gzipped.len() * 6);
        // The gzip trailer's CRC and length catch a torn or altered file.
        GzDecoder::new(&gzipped[..])
            .read_to_end(&mut body)
            .map_err(|error| format!("it is not whole gzip: {error}"))?;
        let lines = body.iter().filter(|&&b| b == b'\n').count();
        if lines != claim.name.events || body.last() != Some(&b'\n') {
            return Err(format!(
                "it holds {lines} lines where its name says {}",
                claim.name.events
            ));
        }
        let mut batch = Batch::from_spool(body, Bytes::from(gzipped), lines);
        batch.maybe_delivered = claim.name.maybe_delivered;
        Ok(batch)
    }

    /// Renames an unreadable file out of the replay's way, once said on stderr.
    fn set_aside(&self, claim: Claim, why: &str) {
        static SET_ASIDE_ONCE: diag::Once = diag::Once::new();
        SET_ASIDE_ONCE.report(format_args!(
            "set aside the spooled file {}: {why} (reported once; see mcp_analytics::stats())",
            claim.path.display()
        ));
        let mut aside = claim.path.clone().into_os_string();
        aside.push(SET_ASIDE);
        if fs::rename(&claim.path, &aside).is_err() {
            // It cannot even be renamed: delete it rather than meet it again.
            let _ = fs::remove_file(&claim.path);
        }
    }

    /// The claimed file was delivered (or refused for good): deleted, before its lock goes.
    pub(crate) fn acknowledge(&self, claim: Claim) {
        if let Err(error) = fs::remove_file(&claim.path) {
            static UNDELETABLE: diag::Once = diag::Once::new();
            UNDELETABLE.report(format_args!(
                "cannot delete the delivered spool file {}: {error}; it may be sent again",
                claim.path.display()
            ));
        }
        drop(claim);
    }

    /// Lets go of a claimed file that was not delivered, recording whether a send of it may
    /// have reached the service all the same.
    pub(crate) fn release(&self, claim: Claim, maybe_delivered: bool) {
        if claim.name.maybe_delivered != maybe_delivered {
            let renamed = claim.name.with_maybe_delivered(maybe_delivered);
            let _ = fs::rename(&claim.path, self.dir.join(renamed.to_string()));
        }
        drop(claim);
    }

    /// Marks a claimed file as being sent: should this process die before the answer, the
    /// next one to send it knows the service may hold its rows.
    pub(crate) fn mark_sending(&self, claim: &mut Claim) {
        if !claim.name.maybe_delivered {
            let renamed = claim.name.with_maybe_delivered(true);
            let path = self.dir.join(renamed.to_string());
            if fs::rename(&claim.path, &path).is_ok() {
                claim.path = path;
                claim.name.maybe_delivered = true;
            }
        }
    }

    /// Rows in files waiting to be sent, and how many files.
    pub(crate) fn waiting(&self) -> (usize, usize) {
        let files = self.list().files;
        (files.iter().map(|(_, name)| name.events).sum(), files.len())
    }

    /// What the directory holds, oldest first; partial files of dead writers are removed.
    fn list(&self) -> Listing {
        let mut listing = Listing::default();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return listing;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if file_name.starts_with(PARTIAL) {
                remove_if_abandoned(&path, &meta);
                continue;
            }
            listing.bytes += meta.len();
            if let Some(name) = FileName::parse(&file_name) {
                listing.files.push((path, name));
            } else if file_name.ends_with(SET_ASIDE) && file_name.contains(EXTENSION) {
                listing.set_aside.push(path);
            }
        }
        listing.files.sort_by_key(|(_, name)| name.age_key());
        listing.set_aside.sort();
        listing
    }
}

#[derive(Default)]
struct Listing {
    /// Spooled files, oldest first.
    files: Vec<(PathBuf, FileName)>,
    /// Files set aside.
    set_aside: Vec<PathBuf>,
    /// Bytes of every file counted against the budget: the two above, and any other file.
    bytes: u64,
}

/// Opens `path` and locks it, unless it is gone or another process holds it.
fn open_unheld(path: &Path) -> Option<File> {
    let file = File::open(path).ok()?;
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(TryLockError::WouldBlock | TryLockError::Error(_)) => None,
    }
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        // A file this process just created: nobody else can hold it yet.
        Err(TryLockError::WouldBlock) => Err(io::Error::other("a new spool file is locked")),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

/// Whether `path` still leads to `file`: another process may have deleted it (and another
/// file may have taken its name) between this one's open and its lock.
fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(held), Ok(named)) => same_file(&held, &named),
        _ => false,
    }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    // Without inode numbers: a deleted file cannot be opened on these platforms while another
    // process holds it open, and names are never reused, so size and age tell enough.
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// Removes a partial file whose writer died: old, and not locked.
fn remove_if_abandoned(path: &Path, meta: &fs::Metadata) {
    let old = meta
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > PARTIAL_FILE_AGE);
    if old && open_unheld(path).is_some() {
        let _ = fs::remove_file(path);
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).read(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes a rename in `dir` durable. Best effort: not every platform can sync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests;
