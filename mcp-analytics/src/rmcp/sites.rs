//! The callsites of the server wrapper: one per MCP method it records, made at compile time in
//! the server's crate by `instrument!`, so that its rows carry the server's name and version, as
//! the attributes' rows do, and cost a pointer each.

use rmcp::model::{
    CallToolRequestMethod, CancelTaskMethod, CancelledNotificationMethod, CompleteRequestMethod,
    ConstString, DiscoverRequestMethod, GetPromptRequestMethod, GetSkillRequestMethod,
    GetTaskMethod, InitializeResultMethod, InitializedNotificationMethod, ListPromptsRequestMethod,
    ListResourceTemplatesRequestMethod, ListResourcesRequestMethod, ListSkillsRequestMethod,
    ListToolsRequestMethod, PingRequestMethod, ProgressNotificationMethod,
    ReadResourceDirectoryRequestMethod, ReadResourceRequestMethod,
    RootsListChangedNotificationMethod, SetLevelRequestMethod, SubscribeRequestMethod,
    SubscriptionsListenRequestMethod, UnsubscribeRequestMethod, UpdateTaskMethod,
};

use crate::rows::call::{Callsite, Kind};

/// What the wrapper records, each with its row's kind, name (the MCP method, for requests and
/// notifications) and function (the `ServerHandler` method that serves it).
macro_rules! methods {
    ($($variant:ident => $kind:ident, $name:expr, $function:literal;)*) => {
        /// One recorded MCP method, or a session's or task's event, or an agent's report.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(super) enum Method {
            $($variant,)*
        }

        const METHODS: &[(Kind, &str, &str)] = &[$((Kind::$kind, $name, $function),)*];
    };
}

methods! {
    Initialize => Request, InitializeResultMethod::VALUE, "initialize";
    Discover => Request, DiscoverRequestMethod::VALUE, "discover";
    Ping => Request, PingRequestMethod::VALUE, "ping";
    Complete => Request, CompleteRequestMethod::VALUE, "complete";
    SetLevel => Request, SetLevelRequestMethod::VALUE, "set_level";
    GetPrompt => Prompt, GetPromptRequestMethod::VALUE, "get_prompt";
    ListPrompts => Request, ListPromptsRequestMethod::VALUE, "list_prompts";
    ListResources => Request, ListResourcesRequestMethod::VALUE, "list_resources";
    ListResourceTemplates => Request, ListResourceTemplatesRequestMethod::VALUE,
        "list_resource_templates";
    ReadResource => Resource, ReadResourceRequestMethod::VALUE, "read_resource";
    Listen => Request, SubscriptionsListenRequestMethod::VALUE, "listen";
    Subscribe => Request, SubscribeRequestMethod::VALUE, "subscribe";
    Unsubscribe => Request, UnsubscribeRequestMethod::VALUE, "unsubscribe";
    CallTool => Tool, CallToolRequestMethod::VALUE, "call_tool";
    ListTools => Request, ListToolsRequestMethod::VALUE, "list_tools";
    CustomRequest => Request, "", "on_custom_request";
    GetTask => Request, GetTaskMethod::VALUE, "get_task";
    UpdateTask => Request, UpdateTaskMethod::VALUE, "update_task";
    CancelTask => Request, CancelTaskMethod::VALUE, "cancel_task";
    ListSkills => Request, ListSkillsRequestMethod::VALUE, "list_skills";
    GetSkill => Request, GetSkillRequestMethod::VALUE, "get_skill";
    ReadResourceDirectory => Request, ReadResourceDirectoryRequestMethod::VALUE,
        "read_resource_directory";
    Cancelled => Notification, CancelledNotificationMethod::VALUE, "on_cancelled";
    Progress => Notification, ProgressNotificationMethod::VALUE, "on_progress";
    Initialized => Notification, InitializedNotificationMethod::VALUE, "on_initialized";
    RootsListChanged => Notification, RootsListChangedNotificationMethod::VALUE,
        "on_roots_list_changed";
    CustomNotification => Notification, "", "on_custom_notification";
    SessionStart => Session, "start", "";
    SessionEnd => Session, "end", "";
    TaskEnd => Task, "", "call_tool";
    // A `tools/call` of the tool the wrapper adds and answers (`missing_capability_tool`).
    MissingCapability => MissingCapability, "", "call_tool";
}

/// The wrapper's callsites for one server crate. Made by `instrument!` as a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct ServerSites {
    sites: [Callsite; METHODS.len()],
}

impl ServerSites {
    /// `crate_name` and `crate_version` are the server crate's `CARGO_PKG_NAME` and
    /// `CARGO_PKG_VERSION`.
    pub const fn new(crate_name: &'static str, crate_version: &'static str) -> Self {
        let placeholder = Callsite::new(Kind::Request, "", "", crate_name, crate_version);
        let mut sites = [placeholder; METHODS.len()];
        let mut i = 0;
        while i < METHODS.len() {
            let (kind, name, function) = METHODS[i];
            sites[i] = Callsite::new(kind, name, function, crate_name, crate_version);
            i += 1;
        }
        Self { sites }
    }

    pub(super) fn site(&'static self, method: Method) -> &'static Callsite {
        &self.sites[method as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITES: ServerSites = ServerSites::new("my-server", "1.2.3");

    #[test]
    fn each_method_has_its_own_callsite() {
        let call = SITES.site(Method::CallTool);
        assert_eq!(
            (call.kind, call.name, call.fn_name),
            (Kind::Tool, "tools/call", "call_tool")
        );
        let list = SITES.site(Method::ListTools);
        assert_eq!((list.kind, list.name), (Kind::Request, "tools/list"));
        let report = SITES.site(Method::MissingCapability);
        assert_eq!(
            (report.kind, report.fn_name),
            (Kind::MissingCapability, "call_tool")
        );
        let end = SITES.site(Method::TaskEnd);
        assert_eq!(
            (end.kind, end.crate_name, end.crate_version),
            (Kind::Task, "my-server", "1.2.3")
        );
    }
}
