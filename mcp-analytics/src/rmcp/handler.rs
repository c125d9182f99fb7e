//! `Instrumented<S>` is a `ServerHandler`: each method forwards to the wrapped server's, inside
//! the row of its request. Methods that answer nothing a client asked (`get_info`,
//! `get_tool`, ...) forward unrecorded. Every method of rmcp's trait is forwarded, defaults
//! included, so that the wrapper answers exactly as the server would.

#![expect(
    deprecated,
    reason = "subscribe and unsubscribe are forwarded for legacy clients"
)]

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CancelledNotificationParam,
    CompleteRequestParams, CompleteResult, CustomNotification, CustomRequest, CustomResult,
    DiscoverResult, GetPromptRequestParams, GetPromptResponse, GetSkillRequestParams,
    GetSkillResult, GetTaskParams, GetTaskResult, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListSkillsResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ReadResourceDirectoryRequestParams, ReadResourceDirectoryResult, ReadResourceRequestParams,
    ReadResourceResponse, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    SubscriptionFilter, Tool, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::agent;
use super::facts;
use super::facts::Incoming;
use super::listing::{listed, page};
use super::server::{Instrumented, link_spanning, link_tool_call};
use super::sites::Method;
use super::spanning;
use crate::rows::request::Client;

impl<S: ServerHandler> ServerHandler for Instrumented<S> {
    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::Ping, (&context).into(), None);
        self.serve(call, self.inner().ping(context), |_, _| {})
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::Initialize, (&context).into(), None);
        let client = Arc::new(Client {
            name: request.client_info.name.as_str().into(),
            version: request.client_info.version.as_str().into(),
        });
        let requested = facts::protocol_text(request.protocol_version.as_str());
        let body = self.inner().initialize(request, context);
        self.serve_handshake(call, client, requested, body)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, ErrorData> {
        self.inner().negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner().supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::Discover, (&context).into(), None);
        self.serve(call, self.inner().discover(context), |_, _| {})
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::Complete, (&context).into(), None);
        self.serve(call, self.inner().complete(request, context), |_, _| {})
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::SetLevel, (&context).into(), None);
        self.serve(call, self.inner().set_level(request, context), |_, _| {})
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, ErrorData>> + MaybeSendFuture + '_ {
        let mut call =
            self.connection()
                .begin(Method::GetPrompt, (&context).into(), Some(&request.name));
        self.record_arguments(&mut call, request.arguments.as_ref());
        let resumes = request.request_state.clone();
        let body = self.inner().get_prompt(request, context);
        self.serve(call, body, move |answer, row| {
            let asks = match answer {
                GetPromptResponse::InputRequired(asks) => Some(asks),
                _ => None,
            };
            link_spanning(row, resumes.as_deref(), asks);
        })
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::ListPrompts, (&context).into(), None);
        let page = page(request.as_ref());
        let sites = self.connection().settings().sites;
        self.serve(
            call,
            self.inner().list_prompts(request, context),
            move |answer, row| {
                let names = answer.prompts.iter().map(|prompt| prompt.name.as_str());
                listed(sites, Method::ListPrompts, page.as_deref(), names, row);
            },
        )
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::ListResources, (&context).into(), None);
        let page = page(request.as_ref());
        let sites = self.connection().settings().sites;
        self.serve(
            call,
            self.inner().list_resources(request, context),
            move |answer, row| {
                let names = answer
                    .resources
                    .iter()
                    .map(|resource| resource.uri.as_str());
                listed(sites, Method::ListResources, page.as_deref(), names, row);
            },
        )
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, ErrorData>> + MaybeSendFuture + '_
    {
        let call = self
            .connection()
            .begin(Method::ListResourceTemplates, (&context).into(), None);
        let page = page(request.as_ref());
        let sites = self.connection().settings().sites;
        let body = self.inner().list_resource_templates(request, context);
        self.serve(call, body, move |answer, row| {
            let names = answer
                .resource_templates
                .iter()
                .map(|template| template.uri_template.as_str());
            listed(
                sites,
                Method::ListResourceTemplates,
                page.as_deref(),
                names,
                row,
            );
        })
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, ErrorData>> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::ReadResource, (&context).into(), Some(&request.uri));
        let resumes = request.request_state.clone();
        let body = self.inner().read_resource(request, context);
        self.serve(call, body, move |answer, row| {
            let asks = match answer {
                ReadResourceResponse::InputRequired(asks) => Some(asks),
                _ => None,
            };
            link_spanning(row, resumes.as_deref(), asks);
        })
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner().accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::Listen, context.request_context().into(), None);
        self.serve(call, self.inner().listen(context), |_, _| {})
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::Subscribe, (&context).into(), Some(&request.uri));
        self.serve(call, self.inner().subscribe(request, context), |_, _| {})
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::Unsubscribe, (&context).into(), Some(&request.uri));
        self.serve(call, self.inner().unsubscribe(request, context), |_, _| {})
    }

    fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + MaybeSendFuture + '_ {
        // The agent-facing options (off by default) take what they added out of the arguments,
        // before the server sees them, and keep what the agent said for the row.
        let settings = self.connection().settings();
        let (agent, said) = agent::Call::take(
            &settings.agent,
            settings.sites,
            &mut request,
            &context.meta.0,
            |name| self.inner().get_tool(name),
        );
        let mut call = self.connection().begin_said(
            agent.method(),
            (&context).into(),
            Some(&request.name),
            said,
        );
        self.record_arguments(&mut call, request.arguments.as_ref());
        let resumes = request.request_state.clone();
        let body = agent.answer(move || self.inner().call_tool(request, context));
        self.serve(call, body, move |answer, row| {
            link_tool_call(row, resumes.as_deref(), answer);
        })
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::ListTools, (&context).into(), None);
        let page = page(request.as_ref());
        let first_page = page.is_none();
        let settings = self.connection().settings();
        let sites = settings.sites;
        let listing = self.serve(
            call,
            self.inner().list_tools(request, context),
            move |answer, row| {
                let names = answer.tools.iter().map(|tool| &*tool.name);
                listed(sites, Method::ListTools, page.as_deref(), names, row);
            },
        );
        // What the server listed is recorded; the agent-facing options (off by default) add to
        // what the client sees.
        agent::advertise(&settings.agent, sites, first_page, listing, |name| {
            self.inner().get_tool(name)
        })
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner().get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self.connection().begin(
            Method::CustomRequest,
            (&context).into(),
            Some(&request.method),
        );
        self.serve(
            call,
            self.inner().on_custom_request(request, context),
            |_, _| {},
        )
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::Cancelled, Incoming::notification(&context), None);
        self.notified(call, self.inner().on_cancelled(notification, context))
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::Progress, Incoming::notification(&context), None);
        self.notified(call, self.inner().on_progress(notification, context))
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let call =
            self.connection()
                .begin(Method::Initialized, Incoming::notification(&context), None);
        self.notified(call, self.inner().on_initialized(context))
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let call = self.connection().begin(
            Method::RootsListChanged,
            Incoming::notification(&context),
            None,
        );
        self.notified(call, self.inner().on_roots_list_changed(context))
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let name = notification.method.clone();
        let call = self.connection().begin(
            Method::CustomNotification,
            Incoming::notification(&context),
            Some(&name),
        );
        self.notified(
            call,
            self.inner().on_custom_notification(notification, context),
        )
    }

    fn get_info(&self) -> ServerConfig {
        self.inner().get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::GetTask, (&context).into(), None);
        let end_site = self.connection().settings().sites.site(Method::TaskEnd);
        self.serve(
            call,
            self.inner().get_task(request, context),
            move |answer, _| {
                spanning::task_polled(answer, end_site);
            },
        )
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::UpdateTask, (&context).into(), None);
        self.serve(call, self.inner().update_task(request, context), |_, _| {})
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::CancelTask, (&context).into(), None);
        self.serve(call, self.inner().cancel_task(request, context), |_, _| {})
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::ListSkills, (&context).into(), None);
        self.serve(call, self.inner().list_skills(request, context), |_, _| {})
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, ErrorData>> + MaybeSendFuture + '_ {
        let call = self
            .connection()
            .begin(Method::GetSkill, (&context).into(), Some(&request.uri));
        self.serve(call, self.inner().get_skill(request, context), |_, _| {})
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, ErrorData>> + MaybeSendFuture + '_
    {
        let call = self.connection().begin(
            Method::ReadResourceDirectory,
            (&context).into(),
            Some(&request.uri),
        );
        self.serve(
            call,
            self.inner().read_resource_directory(request, context),
            |_, _| {},
        )
    }
}
