//! One connection of the wrapped server: what rmcp builds a server for. Over stdio that is the
//! process; over stateful streamable HTTP one `mcp-session-id` session; over stateless HTTP (and
//! every 2026-07-28 HTTP request) a single request. It remembers the client's handshake, records
//! the session's start and end, and gives every request its origin.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::agent::Said;
use super::facts::{self, Handshake, Incoming};
use super::settings::{RequestInfo, Settings};
use super::sites::{Method, ServerSites};
use crate::clock;
use crate::global;
use crate::instrument::ServingCall;
use crate::rows::call::{CallRow, Details, Outcome};
use crate::rows::request::{Client, Origin, Transport};
use crate::rows::served::ServedRequest;
use crate::rows::session::SessionId;

pub(super) struct Connection {
    settings: Arc<Settings>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// This connection's `initialize`: who the client is, and the protocol agreed.
    handshake: Option<Handshake>,
    /// The last client a request's `_meta` named, shared by the next requests of that client.
    meta_client: Option<Arc<Client>>,
    /// Once the connection is known to be a session: its id and start.
    session: Option<Started>,
    /// The `initialize` of a stateful HTTP session, whose id the server gives the client only
    /// in the answer: held until the next request brings the id.
    pending: Option<CallRow>,
}

struct Started {
    /// `None`: the process session (a pipe).
    id: Option<SessionId>,
    started: u64,
    origin: Arc<Origin>,
}

impl Connection {
    pub(super) fn new(settings: Arc<Settings>) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    pub(super) fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the row of a request (or notification) of `method`, naming `name` if it names a
    /// tool, prompt or resource.
    pub(super) fn begin(
        &self,
        method: Method,
        incoming: Incoming<'_>,
        name: Option<&str>,
    ) -> ServingCall {
        self.begin_said(method, incoming, name, Said::default())
    }

    /// [`begin`](Self::begin), with what the agent `said` of the request (a `tools/call`, with
    /// the agent-facing options on).
    pub(super) fn begin_said(
        &self,
        method: Method,
        incoming: Incoming<'_>,
        name: Option<&str>,
        said: Said,
    ) -> ServingCall {
        let parts = incoming.parts();
        let site = self.settings.sites.site(method);
        let session = match self
            .settings
            .session_by
            .as_deref()
            .and_then(|by| by(incoming.extensions))
        {
            Some(id) if !id.is_empty() => Some(SessionId::from(id)),
            _ => facts::session(parts),
        };
        let mut state = self.state();
        let meta_client = facts::meta_client(incoming.meta, state.meta_client.as_ref());
        if let Some(client) = &meta_client {
            state.meta_client = Some(Arc::clone(client));
        }
        let handshake = if facts::handshake_applies(parts) {
            if state.handshake.is_none() {
                // A session restored from a session store by another server instance: rmcp
                // restored the handshake, which this connection did not see. Read once.
                state.handshake = Handshake::of(incoming.peer);
            }
            state.handshake.clone()
        } else {
            None
        };
        let mut origin = incoming.origin(meta_client, handshake);
        if let Some(dimensions_by) = &self.settings.dimensions_by {
            let method = site.kind.handler_method().unwrap_or(site.name);
            let request = RequestInfo {
                method: if method.is_empty() {
                    name.unwrap_or("")
                } else {
                    method
                },
                incoming: &incoming,
            };
            let (user, fields) = dimensions_by(&request).resolve_for_request();
            origin.user = user;
            origin.fields = fields;
        }
        origin.intent = said.intent;
        origin.conversation = said.conversation;
        let origin = Arc::new(origin);
        let in_session = origin.transport == Some(Transport::Pipe)
            || session.as_ref().is_some_and(|id| !id.is_none_session());
        // An `initialize` starts its session once it is answered, knowing the client.
        if in_session && method != Method::Initialize {
            self.session_known(&mut state, session.clone(), &origin, None);
        }
        drop(state);
        // A request in no session of its own (stateless HTTP) is in its agent's conversation,
        // where the agent carries one: the template's session metrics then count conversations.
        // Not a session of the connection's: it neither starts nor ends with it.
        let session = match (session, &origin.conversation) {
            (Some(id), Some(conversation)) if id.is_none_session() => {
                Some(SessionId::from(Arc::clone(conversation)))
            }
            (session, _) => session,
        };
        let served = Arc::new(ServedRequest::new(session, origin, site.kind));
        ServingCall::start(site, served, name)
    }

    /// The connection turned out to be a session: its start is recorded once, with a held
    /// `initialize` now that its session is known. A session starts with its `initialize`
    /// (held, or `handshake`, the start of the one being recorded), else now.
    fn session_known(
        &self,
        state: &mut State,
        id: Option<SessionId>,
        origin: &Arc<Origin>,
        handshake: Option<u64>,
    ) {
        if state.session.is_some() {
            return;
        }
        let pending = state.pending.take();
        let started = pending
            .as_ref()
            .map(|row| row.started)
            .or(handshake)
            .unwrap_or_else(clock::ticks);
        // The session's rows name its client and protocol, not the request that started it,
        // nor what its agent said of that request.
        let origin = Arc::new(Origin {
            request_id: None,
            intent: None,
            conversation: None,
            ..Origin::clone(origin)
        });
        let start = Started {
            id,
            started,
            origin,
        };
        global::push_call(session_row(
            self.settings.sites,
            Method::SessionStart,
            &start,
            0,
        ));
        if let Some(mut initialize) = pending {
            initialize.session = start.id.clone();
            global::push_call(initialize);
        }
        state.session = Some(start);
    }

    /// Records the row of a request that ended.
    pub(super) fn record(&self, row: CallRow) {
        global::push_call(row);
    }

    /// Records the row of an `initialize` that ended, and remembers who the client is. Over
    /// HTTP without a session id yet, the row waits for the session's next request.
    pub(super) fn record_initialize(
        &self,
        mut row: CallRow,
        client: Arc<Client>,
        negotiated: Cow<'static, str>,
    ) {
        let handshake = Handshake {
            client,
            protocol: negotiated,
        };
        // The handshake says who the client is, which no request before it did.
        if let Some(details) = row.details.as_deref_mut() {
            let known = details.origin.as_deref().cloned().unwrap_or_default();
            details.origin = Some(Arc::new(Origin {
                client: Some(Arc::clone(&handshake.client)),
                protocol_version: Some(handshake.protocol.clone()),
                ..known
            }));
        }
        let mut state = self.state();
        state.handshake = Some(handshake);
        let origin = row
            .details
            .as_ref()
            .and_then(|details| details.origin.clone());
        let without_session = row.session.as_ref().is_some_and(SessionId::is_none_session);
        match origin {
            Some(origin) if !without_session => {
                self.session_known(&mut state, row.session.clone(), &origin, Some(row.started));
                global::push_call(row);
            }
            // Over HTTP, no session id yet: stateful HTTP gives it in the answer, and the
            // client's next request brings it; a stateless request never has one.
            _ if state.session.is_none() => state.pending = Some(row),
            _ => global::push_call(row),
        }
    }
}

impl Drop for Connection {
    /// The connection ended: rmcp dropped the server it built for it. A session's end is
    /// recorded with its duration; an `initialize` still held was a stateless request's.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(initialize) = state.pending.take() {
            global::push_call(initialize);
        }
        if let Some(session) = &state.session {
            let clock = clock::clock();
            let duration_ns = clock.delta_as_nanos(session.started, clock.raw());
            global::push_call(session_row(
                self.settings.sites,
                Method::SessionEnd,
                session,
                duration_ns,
            ));
        }
    }
}

/// The row of a session's start or end.
fn session_row(
    sites: &'static ServerSites,
    method: Method,
    session: &Started,
    duration_ns: u64,
) -> CallRow {
    CallRow {
        callsite: sites.site(method),
        session: session.id.clone(),
        details: Some(Box::new(Details {
            origin: Some(Arc::clone(&session.origin)),
            ..Details::default()
        })),
        started: session.started,
        duration_ns,
        outcome: Outcome::Ok,
    }
}
