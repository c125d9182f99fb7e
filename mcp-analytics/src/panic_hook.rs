//! The panic hook that lets a panicking call's row carry the panic's message.
//!
//! Installed at most once per process, when analytics starts with `Builder::panic_messages` on
//! (the default), in front of the hook that was set before (yours, or the default one that
//! prints to stderr), which then runs exactly as before, after ours. It stays installed: a hook
//! cannot be removed without clobbering one set after it. Whether it records follows a flag
//! instead, set by `init` and cleared by `shutdown`.
//!
//! The hook keeps the message in a thread-local. Only the guard of an instrumented call that
//! drops while its thread unwinds reads it ([`message_since`]), so a panic outside every
//! instrumented call records nothing.
//!
//! Which panic a message belongs to: nothing tells a guard which panic it unwinds from, and a
//! hook runs when a panic starts, not when its unwinding ends (`catch_unwind`). So the message
//! is kept with the clock reading of its panic, and a guard takes it only if that panic came
//! after its call started:
//! - nested calls unwinding from one panic each take the message: it is read, not consumed, and
//!   stays until the thread's next panic replaces it;
//! - a message left by a panic caught before a call started is never taken by that call (its
//!   cancellation does not look; its own panic replaces the message, with nothing when the
//!   payload is not text; a `resume_unwind` finds the message too old);
//! - the limit: `resume_unwind` runs no hook, so a call that resumes an unwinding takes the
//!   message of the last panic on its thread since the call started, if any. That is right when
//!   it resumes what it caught (catch, clean up, resume), and wrong when it resumes another
//!   payload (say one from another thread's `JoinHandle`) after catching a panic of its own. In
//!   the same way, a panic caught by a destructor that runs during an unwinding replaces the
//!   message of the panic being unwound.
//!
//! Async handlers: a future that panics unwinds on the thread that polls it, where the hook
//! runs, and its executor drops it there, inside the same unwinding (tokio drops a panicked
//! task's future within its poll's `catch_unwind`; `block_on` unwinds through it), so the guard
//! reads the thread-local the hook wrote.

use std::any::Any;
use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::capture;
use crate::clock;
use crate::rows::text::MAX_ERROR_LEN;

/// Whether the hook records: analytics runs, with panic messages on.
static RECORDING: AtomicBool = AtomicBool::new(false);
static INSTALLED: Once = Once::new();

/// The message of the last panic on this thread, and when that panic started.
struct Remembered {
    /// Raw clock ticks, as a call's start.
    at: u64,
    message: Box<str>,
}

thread_local! {
    // A `Cell` taken and set back, never borrowed: nothing here can panic inside the hook.
    static LAST: Cell<Option<Remembered>> = const { Cell::new(None) };
}

/// Analytics starts: records panic messages if `record`, installing the hook the first time.
pub(crate) fn start(record: bool) {
    // `set_hook` panics on a panicking thread: an `init` from a destructor that runs while
    // unwinding installs nothing (a later `init` does), and records nothing meanwhile.
    let record = record && (INSTALLED.is_completed() || !std::thread::panicking());
    if record {
        INSTALLED.call_once(install);
    }
    RECORDING.store(record, Relaxed);
}

/// Analytics stops: the hook records nothing until the next start.
pub(crate) fn stop() {
    RECORDING.store(false, Relaxed);
}

/// Chains our hook in front of the current one. A hook set by another thread between the two
/// calls would be lost: `init` runs before a server starts its threads.
fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        remember(info);
        previous(info);
    }));
}

/// Keeps the panic's message on this thread, or forgets the last one: a payload that is not
/// text, or not recording. Never panics (a panic in a hook aborts the process).
fn remember(info: &PanicHookInfo<'_>) {
    let remembered = if RECORDING.load(Relaxed) {
        text_of(info.payload()).map(|text| Remembered {
            at: clock::ticks(),
            message: sanitize(text),
        })
    } else {
        None
    };
    // `try_with`: a thread whose locals are being destroyed keeps nothing.
    let _ = LAST.try_with(|last| last.set(remembered));
}

/// The text of a `panic!` (a `&'static str` for a literal, a `String` when formatted) or of a
/// `panic_any` of either.
fn text_of(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// What a row keeps of a panic's message: every message passes here, once, in the hook.
/// Messages quote what the code was handling (`called unwrap on Err(..)`, a URL, an address):
/// secrets and personal data in them are redacted, as in every captured text, then the text is
/// bounded as error texts are.
fn sanitize(message: &str) -> Box<str> {
    capture::free_text(message, MAX_ERROR_LEN)
}

/// The message of the panic this thread unwinds from, for the guard of a call that started at
/// `started` (raw ticks) and drops while unwinding: only a message of a panic since then.
#[cold]
pub(crate) fn message_since(started: u64) -> Option<Box<str>> {
    if !RECORDING.load(Relaxed) {
        return None;
    }
    LAST.try_with(|last| {
        let remembered = last.take()?;
        let message = (remembered.at >= started).then(|| remembered.message.clone());
        last.set(Some(remembered));
        message
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payloads_only() {
        assert_eq!(text_of(&"literal"), Some("literal"));
        assert_eq!(text_of(&String::from("formatted")), Some("formatted"));
        assert_eq!(text_of(&42_u32), None);
    }

    #[test]
    fn a_message_is_cut_like_an_error_text() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let kept = sanitize(&long);
        assert!(
            kept.len() <= MAX_ERROR_LEN && kept.ends_with('…'),
            "{}",
            kept.len()
        );
        assert_eq!(&*sanitize("short"), "short");
    }
}
