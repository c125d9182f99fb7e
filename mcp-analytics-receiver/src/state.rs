//! The state shared by [`crate::Receiver`] (the test's side) and the server thread.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use tokio::sync::watch;

use crate::{RequestLog, Row, Scripted};

/// What the receiver accepts; fixed at build time.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) token: String,
    pub(crate) datasources: Vec<String>,
    pub(crate) max_body_bytes: usize,
    /// Whether accepted rows are stored, or only counted.
    pub(crate) keep_rows: bool,
    /// Whether NDJSON lines are only counted, not parsed against the schema.
    pub(crate) count_only: bool,
}

/// A validated [`Scripted`]: checked when scripted, so a bad status or header value fails the
/// test that scripted it instead of surfacing later inside the server.
#[derive(Debug)]
pub(crate) enum Planned {
    Answer {
        status: StatusCode,
        retry_after: Option<HeaderValue>,
        body: String,
    },
    Accept,
    Delay(Duration),
    Hang,
    Reset,
}

impl Planned {
    /// Panics (with the caller's location) on a status code outside 200..=599 (HTTP has no other
    /// final statuses) or a `Retry-After` that is not a valid header value.
    #[track_caller]
    pub(crate) fn new(scripted: Scripted) -> Planned {
        match scripted {
            Scripted::Status {
                status,
                retry_after,
                body,
            } => Planned::Answer {
                status: StatusCode::from_u16(status)
                    .ok()
                    .filter(|status| (200..=599).contains(&status.as_u16()))
                    .unwrap_or_else(|| panic!("Scripted::Status: invalid status code {status}")),
                retry_after: retry_after.map(|value| {
                    HeaderValue::try_from(value.as_str()).unwrap_or_else(|_| {
                        panic!("Scripted::Status: invalid Retry-After value {value:?}")
                    })
                }),
                body,
            },
            Scripted::Accept => Planned::Accept,
            Scripted::Delay(delay) => Planned::Delay(delay),
            Scripted::Hang => Planned::Hang,
            Scripted::Reset => Planned::Reset,
        }
    }
}

/// Everything the test thread and the server thread share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    store: Mutex<Store>,
    /// Notified whenever a request is logged (and so possibly rows added), and when the server
    /// thread exits.
    changed: Condvar,
    /// Flips to `true` once, when the receiver shuts down.
    shutdown: watch::Sender<bool>,
    /// Whether the test wants the endpoint up; see [`Availability`].
    availability: watch::Sender<Availability>,
}

/// What [`crate::Receiver::go_down`] and [`crate::Receiver::go_up`] ask of the server thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Availability {
    /// Whether the endpoint should listen and serve.
    pub(crate) up: bool,
    /// How many times it was taken down: a request in flight compares it with the value it
    /// started under, so that it notices a down-and-up-again it did not see happen.
    pub(crate) downs: u64,
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) rows: Vec<Row>,
    /// Rows accepted so far, kept or not (see [`Config::keep_rows`]).
    pub(crate) accepted_rows: usize,
    pub(crate) requests: Vec<RequestLog>,
    pub(crate) script: VecDeque<Planned>,
    /// Set when the server thread ends, however it ends; see [`ExitNotice`].
    pub(crate) server_exited: bool,
    /// Whether the server thread holds a listening socket (reported by the server thread).
    pub(crate) listening: bool,
    /// Accepted connections not yet closed.
    pub(crate) open_connections: usize,
    /// A socket bound by [`crate::Receiver::go_up`] on the caller's thread (so that a bind error
    /// is the caller's), for the server thread to listen on.
    pub(crate) handoff: Option<TcpListener>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        Shared {
            config,
            store: Mutex::default(),
            changed: Condvar::new(),
            shutdown: watch::Sender::new(false),
            availability: watch::Sender::new(Availability { up: true, downs: 0 }),
        }
    }

    /// Locks the store. Every update is a single push or pop, so even a poisoned lock holds
    /// consistent data: recover it rather than cascade one panic into every later call.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until `done` holds or `timeout` elapses, and returns the store locked either way.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Store) -> bool,
    ) -> MutexGuard<'_, Store> {
        self.changed
            .wait_timeout_while(self.lock(), timeout, |store| !done(store))
            .map(|(store, _)| store)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0)
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) async fn shutdown_requested(&self) {
        // The sender lives as long as `self`, so this only returns once the flag is set.
        let _ = self.shutdown.subscribe().wait_for(|&stop| stop).await;
    }

    /// Changes the store under its lock, then wakes the waiters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Store)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    pub(crate) fn availability(&self) -> Availability {
        *self.availability.borrow()
    }

    /// Sets whether the endpoint should be up; `false` counts one more time down. Returns
    /// whether that changed anything.
    pub(crate) fn want_up(&self, up: bool) -> bool {
        self.availability.send_if_modified(|wanted| {
            if wanted.up == up {
                return false;
            }
            wanted.up = up;
            if !up {
                wanted.downs += 1;
            }
            true
        })
    }

    pub(crate) fn watch_availability(&self) -> watch::Receiver<Availability> {
        self.availability.subscribe()
    }

    /// Completes once the endpoint has gone down after `downs` downs (i.e. at least once more);
    /// never otherwise.
    pub(crate) async fn went_down_since(&self, downs: u64) {
        // The sender lives as long as `self`, so this only returns once it happened.
        let _ = self
            .availability
            .subscribe()
            .wait_for(|wanted| wanted.downs != downs)
            .await;
    }

    pub(crate) fn next_planned(&self) -> Option<Planned> {
        self.lock().script.pop_front()
    }

    /// Logs a request and appends the rows it got accepted, then wakes the waiters.
    pub(crate) fn record(&self, entry: RequestLog, rows: Vec<Row>) {
        let mut store = self.lock();
        store.accepted_rows += entry.rows;
        store.requests.push(entry);
        store.rows.extend(rows);
        drop(store);
        self.changed.notify_all();
    }
}

/// Marks the server thread as exited when dropped, so that a panic counts too. Lets
/// [`crate::Receiver`] join the thread with a timeout, through the store's condition variable.
pub(crate) struct ExitNotice(pub(crate) Arc<Shared>);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        self.0.lock().server_exited = true;
        self.0.changed.notify_all();
    }
}
