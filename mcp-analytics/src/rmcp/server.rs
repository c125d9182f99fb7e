//! [`Instrumented`]: any rmcp `ServerHandler`, with every request it serves recorded.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use rmcp::ErrorData;
use std::borrow::Cow;

use rmcp::model::{
    CallToolResponse, Extensions, GetPromptResponse, InitializeResult, InputRequiredResult,
    ReadResourceResponse,
};

use super::agent;
use super::connection::Connection;
use super::facts;
use super::settings::{RequestInfo, Settings};
use super::sites::ServerSites;
use super::spanning;
use crate::Dimensions;
use crate::capture;
use crate::clock;
use crate::instrument::{Ending, ServingCall};
use crate::rows::call::{CallRow, ErrorType, Link, Outcome};
use crate::rows::outcome::{CallOutcome, ErrorText};
use crate::rows::request::Client;
use crate::rows::text::{MAX_ERROR_LEN, bounded, bounded_str};

/// An rmcp server with every request it serves recorded: made by
/// [`instrument!`](crate::rmcp::instrument).
///
/// It is a `ServerHandler` itself, and answers every request exactly as the server it wraps:
/// serve it wherever the server was served (stdio, streamable HTTP). Each request becomes one row
/// (see the README's table): handler calls (`tools/call`, `prompts/get`, `resources/read`) as
/// calls of their tool, prompt or resource, the other requests and the client's notifications as
/// rows of their own, and, where the transport has sessions, each session's start and end.
///
/// rmcp makes one server per connection (stdio: the process; stateful HTTP: each session;
/// stateless HTTP: each request), and so does a clone of an `Instrumented`: a clone shares the
/// server's settings, not its connection.
///
/// ```
/// use rmcp::{ServerHandler, model::ServerConfig};
///
/// #[derive(Clone)]
/// struct Server;
///
/// impl ServerHandler for Server {
///     fn get_info(&self) -> ServerConfig {
///         ServerConfig::default()
///     }
/// }
///
/// let server: mcp_analytics::rmcp::Instrumented<Server> = mcp_analytics::rmcp::instrument!(Server);
/// assert!(server.inner().get_info().capabilities.tools.is_none());
/// ```
pub struct Instrumented<S> {
    inner: S,
    connection: Connection,
}

impl<S> Instrumented<S> {
    /// Called by [`instrument!`](crate::rmcp::instrument) only.
    #[doc(hidden)]
    pub fn __new(inner: S, sites: &'static ServerSites) -> Self {
        Self {
            inner,
            connection: Connection::new(Arc::new(Settings::new(sites))),
        }
    }

    /// A new connection with these settings changed: a builder method's.
    fn with_settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::clone(self.connection.settings());
        change(&mut settings);
        self.connection = Connection::new(Arc::new(settings));
        self
    }

    /// Groups requests into sessions by what `session` reads off a request's extensions, where
    /// rmcp puts the HTTP request's `http::request::Parts` (and, in them, what your auth
    /// middleware inserted): an authenticated subject, a header of your own. Consulted first, for
    /// every request; `None` or an empty id falls back to the transport's rule (the
    /// `mcp-session-id` header, the process on stdio, else no session).
    ///
    /// Stateless streamable HTTP servers, and every request of a 2026-07-28 client over HTTP,
    /// have no session otherwise.
    ///
    /// ```
    /// use rmcp::{ServerHandler, model::ServerConfig};
    ///
    /// # #[derive(Clone)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// let server = mcp_analytics::rmcp::instrument!(Server).session_by(|extensions| {
    ///     let parts = extensions.get::<http::request::Parts>()?;
    ///     let user = parts.headers.get("x-user-id")?.to_str().ok()?;
    ///     Some(format!("user-{user}"))
    /// });
    /// # drop(server);
    /// ```
    pub fn session_by(
        self,
        session: impl Fn(&Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with_settings(|settings| settings.session_by = Some(Arc::new(session)))
    }

    /// Reads each request's user and fields: what `dimensions` returns for a request is
    /// recorded on its row, and inherited by the calls and attributes inside it (whose own
    /// `user = ..` and `fields(..)`, and a [`Dimensions`] scope's, come first). The user is how
    /// calls are attributed to the person they act for: the subject your auth middleware put
    /// in the HTTP request's extensions, a header, or a `_meta` member your clients send.
    /// Recorded as given, or hashed with [`Builder::hash_users`](crate::Builder::hash_users).
    ///
    /// Called for every request and notification, on the thread that serves it: keep it cheap.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// use mcp_analytics::Dimensions;
    ///
    /// /// What an auth middleware inserted into the HTTP request's extensions.
    /// #[derive(Clone)]
    /// struct Claims {
    ///     sub: String,
    ///     org: String,
    /// }
    ///
    /// let server = mcp_analytics::rmcp::instrument!(Server).dimensions_by(|request| {
    ///     match request.http().and_then(|parts| parts.extensions.get::<Claims>()) {
    ///         Some(claims) => Dimensions::new().user(&claims.sub).field("org", claims.org.clone()),
    ///         None => Dimensions::new(),
    ///     }
    /// });
    /// # drop(server);
    /// ```
    pub fn dimensions_by(
        self,
        dimensions: impl Fn(&RequestInfo<'_>) -> Dimensions + Send + Sync + 'static,
    ) -> Self {
        self.with_settings(|settings| settings.dimensions_by = Some(Arc::new(dimensions)))
    }

    /// Records the arguments of each handler call (`tools/call`, `prompts/get`) as the client
    /// sent them, under the record key `arguments`. Off by default: arguments are what users
    /// typed and agents chose, and may be personal data.
    ///
    /// What is recorded is redacted first, on the thread that serves the request, before it is
    /// queued: credential-like keys, then secrets and personal data inside strings, then your
    /// own [`Builder::redact_with`](crate::Builder::redact_with) hook, then the size bound
    /// ([`Builder::capture_limit`](crate::Builder::capture_limit)). Nothing is recorded before
    /// `init`, when the rules are not known yet.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// let server = mcp_analytics::rmcp::instrument!(Server)
    ///     .capture_arguments(true)
    ///     .capture_results(true);
    /// # drop(server);
    /// ```
    pub fn capture_arguments(self, capture: bool) -> Self {
        self.with_settings(|settings| settings.capture_arguments = capture)
    }

    /// Records the result of each handler call (a tool's `CallToolResult`, a prompt's
    /// messages) under the record key `result`, redacted as
    /// [`capture_arguments`](Self::capture_arguments) says. Off by default.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// let server = mcp_analytics::rmcp::instrument!(Server).capture_results(true);
    /// # drop(server);
    /// ```
    pub fn capture_results(self, capture: bool) -> Self {
        self.with_settings(|settings| settings.capture_results = capture)
    }

    /// Asks the agent why it calls each tool, and records its answer as the call's `intent`.
    ///
    /// **Off by default**: it changes what the server advertises. Each tool of a `tools/list`
    /// answer gets one more, required, argument, `context`, described to the agent as the
    /// purpose of the call in 15 to 25 words, without personal details. On each `tools/call`
    /// the wrapper takes `context` out of the arguments before the server sees them, and
    /// records it, redacted and cut to [`MAX_INTENT_LEN`](crate::limits::MAX_INTENT_LEN), as the
    /// row's `intent`. A client that states the user's intent itself (SEP-2817's `_meta`
    /// `io.modelcontextprotocol/aiInvocation` `userIntent`) is taken at its word first, for
    /// every tool.
    ///
    /// A tool that declares `context` itself keeps it as its own data (it reaches the tool, and
    /// is not recorded), and a tool whose input schema is composed at its top (`oneOf`,
    /// `anyOf`, `allOf`, `$ref`) is left as it is. The wrapper knows what it added to a tool
    /// from the server's listings in this process, else from the server's `get_tool` (which
    /// rmcp's `#[tool_handler]` implements); a tool that neither names keeps its arguments.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone, Debug)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// let server = mcp_analytics::rmcp::instrument!(Server).intent_argument(true);
    /// // Its `Debug` says which agent-facing options are on.
    /// assert!(format!("{server:?}").contains("intent: true, conversations: false"));
    /// ```
    pub fn intent_argument(self, on: bool) -> Self {
        self.with_settings(|settings| settings.agent.intent = on)
    }

    /// Groups one agent's calls into a conversation, recorded as each call's `conversation`,
    /// where no session does (stateless streamable HTTP, every 2026-07-28 HTTP request).
    ///
    /// **Off by default**: it changes what the server advertises and answers. Each tool of a
    /// `tools/list` answer gets one more, optional, argument, `conversation_id`. A call that
    /// brings none (or one the wrapper could not have made: only the UUIDv7 handles it hands
    /// out are taken, so that made-up ids like `conv-1` never merge two agents) is given a new
    /// handle: its successful result ends with one more text block, `{"conversation_id":"…"}`,
    /// which the agent is asked to pass back on its next calls. The wrapper takes
    /// `conversation_id` out of the arguments before the server sees them.
    ///
    /// A request with no session of its own has its conversation as its `session`, so that
    /// the template's session metrics count conversations; in a session (stdio, stateful HTTP)
    /// calls keep their session and carry `conversation` too. A call whose result does not
    /// hand its new handle over (a failure, an answer asking for input) is a conversation of
    /// its own. The same rules as [`intent_argument`](Self::intent_argument)'s decide which
    /// tools get the argument.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone, Debug)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// use std::sync::Arc;
    ///
    /// use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    /// use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    ///
    /// // No sessions: what groups one agent's calls is its conversation.
    /// let service = StreamableHttpService::new(
    ///     || Ok(mcp_analytics::rmcp::instrument!(Server).conversations(true)),
    ///     Arc::new(LocalSessionManager::default()),
    ///     StreamableHttpServerConfig::default().with_legacy_session_mode(false),
    /// );
    /// # drop(service);
    /// let server = mcp_analytics::rmcp::instrument!(Server).conversations(true);
    /// assert!(format!("{server:?}").contains("conversations: true"));
    /// ```
    pub fn conversations(self, on: bool) -> Self {
        self.with_settings(|settings| settings.agent.conversations = on)
    }

    /// Lists one more tool, named `name` (`get_more_tools` when blank), which the agent is
    /// told to call when no listed tool can do what its user asked, saying what it looked for
    /// (one required string argument, `context`).
    ///
    /// **Off by default**: it changes what the server advertises and answers. The wrapper
    /// answers the tool itself, with a short acknowledgement; the server never sees the call.
    /// Its row is of a kind of its own, `missing_capability` (`name` the tool's, `intent` the
    /// report, redacted and cut), which the template does not count as a call of a tool. A
    /// server that has a tool of that name (listed, or known to its `get_tool`) keeps it: the
    /// wrapper then neither lists nor answers its own.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone, Debug)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// let server = mcp_analytics::rmcp::instrument!(Server).missing_capability_tool("suggest_a_tool");
    /// assert!(format!("{server:?}").contains(r#"missing_capability_tool: Some("suggest_a_tool")"#));
    /// // A blank name is the usual one.
    /// let server = mcp_analytics::rmcp::instrument!(Server).missing_capability_tool(" ");
    /// assert!(format!("{server:?}").contains(r#"Some("get_more_tools")"#));
    /// ```
    pub fn missing_capability_tool(self, name: impl Into<String>) -> Self {
        let name = agent::Options::tool_name(name.into());
        self.with_settings(|settings| settings.agent.missing_capability_tool = Some(name))
    }

    /// The wrapped server.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// assert_eq!(mcp_analytics::rmcp::instrument!(Server).inner(), &Server);
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped server, unwrapped. The connection ends here: a session started is recorded
    /// as ended.
    ///
    /// ```
    /// # use rmcp::{ServerHandler, model::ServerConfig};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Server;
    /// # impl ServerHandler for Server {
    /// #     fn get_info(&self) -> ServerConfig { ServerConfig::default() }
    /// # }
    /// assert_eq!(mcp_analytics::rmcp::instrument!(Server).into_inner(), Server);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    pub(super) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The arguments of a handler call, onto its row when the server is told to capture them.
    pub(super) fn record_arguments(
        &self,
        call: &mut ServingCall,
        arguments: Option<&impl serde::Serialize>,
    ) {
        if self.connection.settings().capture_arguments
            && let Some(arguments) = arguments
            && let Ok(arguments) = serde_json::to_value(arguments)
        {
            call.capture(|captured| captured.arguments = capture::value(arguments));
        }
    }

    /// Runs `body` as the request `call` records, and records it when it ends; `more` adds to
    /// the row what only this request's answer tells.
    pub(super) async fn serve<T: Answer>(
        &self,
        call: ServingCall,
        body: impl Future<Output = Result<T, ErrorData>>,
        more: impl FnOnce(&T, &mut CallRow),
    ) -> Result<T, ErrorData> {
        let (result, mut row) = answered(call, body).await;
        if let Ok(answer) = &result {
            more(answer, &mut row);
            if self.connection.settings().capture_results
                && let Some(captured) = answer.result().and_then(capture::value)
                && let Some(details) = row.details.as_deref_mut()
            {
                details.captured.get_or_insert_default().result = Some(captured);
            }
        }
        self.connection.record(row);
        result
    }

    /// Runs an `initialize` (`body`) of `client`, who asked for protocol `requested`, recorded
    /// as `call`; the connection remembers the client and the protocol agreed.
    pub(super) async fn serve_handshake(
        &self,
        call: ServingCall,
        client: Arc<Client>,
        requested: Cow<'static, str>,
        body: impl Future<Output = Result<InitializeResult, ErrorData>>,
    ) -> Result<InitializeResult, ErrorData> {
        let (result, row) = answered(call, body).await;
        let negotiated = result.as_ref().map_or(requested, |answer| {
            facts::protocol_text(answer.protocol_version.as_str())
        });
        self.connection.record_initialize(row, client, negotiated);
        result
    }

    /// Runs a notification's `body`, recorded as `call`.
    pub(super) async fn notified(&self, call: ServingCall, body: impl Future<Output = ()>) {
        call.serve(body).await;
        self.connection.record(call.end(Ending::OK));
    }
}

impl<S: Clone> Clone for Instrumented<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            connection: Connection::new(Arc::clone(self.connection.settings())),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Instrumented<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("inner", &self.inner)
            .field("agent", &self.connection.settings().agent)
            .finish_non_exhaustive()
    }
}

/// Runs `body` as the request `call` records, and ends its row as the answer says.
async fn answered<T: Answer>(
    call: ServingCall,
    body: impl Future<Output = Result<T, ErrorData>>,
) -> (Result<T, ErrorData>, CallRow) {
    let result = call.serve(body).await;
    let ending = match &result {
        Ok(answer) => answer.ending(),
        Err(error) => failed(error),
    };
    let row = call.end(ending);
    (result, row)
}

/// A request answered with a JSON-RPC error.
fn failed(error: &ErrorData) -> Ending {
    Ending {
        outcome: Outcome::Error,
        error: Some(bounded_str(&error.message, MAX_ERROR_LEN).into()),
        error_type: Some(ErrorType::JsonRpc(error.code.0)),
    }
}

/// What an answer says of how its request ended (most are plain successes), and what it
/// holds that a handler call's row may capture.
pub(super) trait Answer {
    fn ending(&self) -> Ending {
        Ending::OK
    }

    /// The handler's result, as JSON: a completed tool call's or prompt's.
    fn result(&self) -> Option<serde_json::Value> {
        None
    }
}

fn input_required() -> Ending {
    Ending {
        outcome: Outcome::InputRequired,
        ..Ending::OK
    }
}

impl Answer for CallToolResponse {
    fn ending(&self) -> Ending {
        match self {
            CallToolResponse::Complete(result) if result.is_error() => Ending {
                outcome: Outcome::Error,
                error: Some(bounded(&ErrorText(result), MAX_ERROR_LEN)),
                error_type: Some(ErrorType::Tool),
            },
            CallToolResponse::Complete(_) => Ending::OK,
            CallToolResponse::InputRequired(_) => input_required(),
            CallToolResponse::Task(_) => Ending {
                outcome: Outcome::Task,
                ..Ending::OK
            },
            _ => Ending::OK,
        }
    }

    fn result(&self) -> Option<serde_json::Value> {
        match self {
            CallToolResponse::Complete(result) => serde_json::to_value(result).ok(),
            _ => None,
        }
    }
}

impl Answer for GetPromptResponse {
    fn ending(&self) -> Ending {
        match self {
            GetPromptResponse::Complete(_) => Ending::OK,
            GetPromptResponse::InputRequired(_) => input_required(),
            _ => Ending::OK,
        }
    }

    fn result(&self) -> Option<serde_json::Value> {
        match self {
            GetPromptResponse::Complete(result) => serde_json::to_value(result).ok(),
            _ => None,
        }
    }
}

impl Answer for ReadResourceResponse {
    fn ending(&self) -> Ending {
        match self {
            ReadResourceResponse::Complete(_) => Ending::OK,
            ReadResourceResponse::InputRequired(_) => input_required(),
            _ => Ending::OK,
        }
    }
}

macro_rules! plain_answers {
    ($($answer:ty),* $(,)?) => {
        $(impl Answer for $answer {})*
    };
}

plain_answers!(
    (),
    rmcp::model::InitializeResult,
    rmcp::model::DiscoverResult,
    rmcp::model::CompleteResult,
    rmcp::model::ListPromptsResult,
    rmcp::model::ListResourcesResult,
    rmcp::model::ListResourceTemplatesResult,
    rmcp::model::ListToolsResult,
    rmcp::model::CustomResult,
    rmcp::model::GetTaskResult,
    rmcp::model::ListSkillsResult,
    rmcp::model::GetSkillResult,
);

/// A `tools/call`'s row, linked to the other rows of its call: the request it resumes
/// (`resumes`, the `requestState` it brought back), the input its answer asks for, the task it
/// became.
pub(super) fn link_tool_call(row: &mut CallRow, resumes: Option<&str>, answer: &CallToolResponse) {
    let asks = match answer {
        CallToolResponse::InputRequired(asks) => Some(asks),
        _ => None,
    };
    link_spanning(row, resumes, asks);
    if let CallToolResponse::Task(task) = answer {
        spanning::task_started(&task.task.task_id, row);
        if let Some(details) = row.details.as_deref_mut() {
            let link = details.link.get_or_insert_default();
            link.task_id = Some(task.task.task_id.as_str().into());
        }
    }
}

/// A handler-call request that may span requests: links its row to the others of its call.
/// `resumes` is the `requestState` the request brought back, `asks` the one its answer gives.
pub(super) fn link_spanning(
    row: &mut CallRow,
    resumes: Option<&str>,
    asks: Option<&InputRequiredResult>,
) {
    if resumes.is_none() && asks.is_none() {
        return;
    }
    let started = spanning::call_started(resumes, row.started);
    let mut link = Link::default();
    if let Some(asks) = asks {
        let state = asks.request_state.as_deref().unwrap_or_default();
        spanning::asked_for_input(&mut link, state, started);
    }
    if let Some(resumes) = resumes {
        spanning::resumed(&mut link, resumes, asks.is_none(), clock::ticks());
    }
    if let Some(details) = row.details.as_deref_mut() {
        details.link = Some(Box::new(link));
    }
}
