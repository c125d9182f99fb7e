//! Calls that span requests, on protocol 2026-07-28: a call answered `input_required` resumes
//! in a later request that brings its `requestState` back; a call that became a task (SEP-2663)
//! ends when `tasks/get` first reports a final status. Each row links to the others of its call,
//! and the last one knows the call's total duration.
//!
//! What links them lives in two small maps, bounded: a call that never resumes, or a task never
//! polled to its end, is forgotten once newer ones push it out. Over stateless HTTP behind
//! several server processes, a call may resume in another process: its rows still link (the
//! digests are the same everywhere), only the total duration is unknown there.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{GetTaskResult, TaskPayload};
use serde_json::Value;

use crate::rows::call::{CallRow, Callsite, Details, ErrorType, Link, Outcome};
use crate::rows::request::Origin;
use crate::rows::session::SessionId;
use crate::rows::text::{MAX_ERROR_LEN, bounded_str};

/// How many open continuations and open tasks are remembered, each.
const REMEMBERED: usize = 4096;

/// A map that forgets its oldest entry when full.
struct Bounded<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.entries.remove(&oldest);
        }
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let value = self.entries.remove(key)?;
        self.order.retain(|kept| kept != key);
        Some(value)
    }
}

/// A short, stable digest of a `requestState`: links the rows of a call without recording the
/// state itself, which is the server's own and may hold anything. FNV-1a, 64 bits, in hex.
pub(super) fn digest(state: &str) -> Box<str> {
    let hash = state.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}").into()
}

/// A call that became a task, until its end is seen.
struct OpenTask {
    callsite: &'static Callsite,
    tool: Option<Arc<str>>,
    started: u64,
    session: Option<SessionId>,
    origin: Option<Arc<Origin>>,
}

static CONTINUATIONS: Mutex<Option<Bounded<Box<str>, u64>>> = Mutex::new(None);
static TASKS: Mutex<Option<Bounded<String, OpenTask>>> = Mutex::new(None);

fn with<K: Hash + Eq + Clone, V, R>(
    map: &Mutex<Option<Bounded<K, V>>>,
    f: impl FnOnce(&mut Bounded<K, V>) -> R,
) -> R {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    f(map.get_or_insert_with(Bounded::new))
}

/// A request that brings back `state` resumes a call: links its row to the call's, and when
/// this request ends the call (no new `input_required`), gives the call's total duration.
pub(super) fn resumed(link: &mut Link, state: &str, ends: bool, ended_at: u64) {
    let key = digest(state);
    let first = with(&CONTINUATIONS, |map| {
        if ends {
            map.remove(&key)
        } else {
            map.entries.get(&key).copied()
        }
    });
    if ends && let Some(first) = first {
        let clock = crate::clock::clock();
        link.total_duration_ns = Some(clock.delta_as_nanos(first, ended_at));
    }
    link.resumes = Some(key);
}

/// An answer asked for input, handing the client `state`: remembered, with when the call
/// started (its first request's start).
pub(super) fn asked_for_input(link: &mut Link, state: &str, call_started: u64) {
    let key = digest(state);
    with(&CONTINUATIONS, |map| map.insert(key.clone(), call_started));
    link.continuation = Some(key);
}

/// The first start of the call `resumes` continues, or `started` if none is known.
pub(super) fn call_started(resumes: Option<&str>, started: u64) -> u64 {
    resumes
        .and_then(|state| {
            with(&CONTINUATIONS, |map| {
                map.entries.get(&digest(state)).copied()
            })
        })
        .unwrap_or(started)
}

/// A call became the task `task_id`: remembered until `tasks/get` reports its end.
pub(super) fn task_started(task_id: &str, row: &CallRow) {
    let details = row.details.as_deref();
    let open = OpenTask {
        callsite: row.callsite,
        tool: details.and_then(|details| details.name.clone()),
        started: row.started,
        session: row.session.clone(),
        origin: details.and_then(|details| details.origin.clone()),
    };
    with(&TASKS, |map| map.insert(task_id.to_owned(), open));
}

/// What `tasks/get` answered: when it reports a task's final status for the first time, the row
/// of the task's end, with its outcome (a completed task whose tool result has `isError` is an
/// error), is recorded.
pub(super) fn task_polled(answer: &GetTaskResult, end_site: &'static Callsite) {
    let task = &answer.task;
    let (outcome, error_type) = match &task.payload {
        TaskPayload::Completed { result } => match result.get("isError").and_then(Value::as_bool) {
            Some(true) => (Outcome::Error, Some(ErrorType::Tool)),
            _ => (Outcome::Ok, None),
        },
        TaskPayload::Failed { error } => {
            let code = error.get("code").and_then(Value::as_i64);
            let code = code.and_then(|code| i32::try_from(code).ok());
            let kind = code.map_or(ErrorType::Tool, ErrorType::JsonRpc);
            (Outcome::Error, Some(kind))
        }
        TaskPayload::Cancelled => (Outcome::Cancelled, None),
        // Still running, or a status this version does not know.
        _ => return,
    };
    let message = task.task.status_message.as_deref();
    let error = message
        .filter(|_| outcome.is_failure())
        .map(|message| bounded_str(message, MAX_ERROR_LEN).into());
    if let Some(mut ended) = task_ended(&task.task.task_id, outcome, error, end_site) {
        if let Some(details) = ended.details.as_deref_mut() {
            details.error_type = error_type;
        }
        crate::global::push_call(ended);
    }
}

/// `tasks/get` reported a final status of `task_id`: the row of the task's end, once, if the
/// task was started here.
fn task_ended(
    task_id: &str,
    outcome: Outcome,
    error: Option<Box<str>>,
    end_site: &'static Callsite,
) -> Option<CallRow> {
    let open = with(&TASKS, |map| map.remove(&task_id.to_owned()))?;
    let clock = crate::clock::clock();
    let now = clock.raw();
    let duration_ns = clock.delta_as_nanos(open.started, now);
    Some(CallRow {
        callsite: end_site,
        session: open.session,
        details: Some(Box::new(Details {
            name: open.tool.or_else(|| Some(Arc::from(open.callsite.name))),
            error,
            origin: open.origin,
            link: Some(Box::new(Link {
                task_id: Some(task_id.into()),
                total_duration_ns: Some(duration_ns),
                ..Link::default()
            })),
            ..Details::default()
        })),
        started: open.started,
        duration_ns,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_and_short() {
        assert_eq!(&*digest(""), "cbf29ce484222325");
        assert_eq!(digest("state-1"), digest("state-1"));
        assert_ne!(digest("state-1"), digest("state-2"));
    }

    #[test]
    fn a_bounded_map_forgets_its_oldest() {
        let mut map = Bounded::new();
        for i in 0..REMEMBERED + 10 {
            map.insert(i, i);
        }
        assert_eq!(map.entries.len(), REMEMBERED);
        assert!(!map.entries.contains_key(&0));
        assert_eq!(map.remove(&(REMEMBERED + 9)), Some(REMEMBERED + 9));
    }
}
