"""`pyro mcp serve` driven by the official MCP Python client (the `mcp`
package), against real guests.

Needs `target/debug/pyro` and the static agent (`make test-python` builds
both). Environments come from the shared test cache
(`target/pyro-test-cache`, built by the Rust tests; `env pull` is instant
when it is installed). Each server gets a private PYRO_STATE_DIR under
target/pyro-test-state. Guests booted: one workspace made through MCP, one
made through the CLI (so each surface sees the other's), and one `vm_run`
(run while a long `workspace_exec` and a `workspace_list` are in flight).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[2]
PYRO = ROOT / "target" / "debug" / "pyro"
CACHE_DIR = Path(os.environ.get("PYRO_TEST_CACHE_DIR", ROOT / "target" / "pyro-test-cache"))
STATE_ROOT = ROOT / "target" / "pyro-test-state"
ENV = "debian:12"

VM_RUN = {"vm_run"}
CORE = VM_RUN | {
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
}
FULL = CORE | {
    "workspace_start",
    "workspace_fork",
    "workspace_stop",
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
}
PROFILES = {"vm-run": VM_RUN, "workspace-core": CORE, "workspace-full": FULL}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def environment_installed() -> None:
    assert PYRO.is_file(), f"{PYRO} is missing: run `make test-python` (it builds it)"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [str(PYRO), "env", "pull", ENV],
        env={**os.environ, "PYRO_CACHE_DIR": str(CACHE_DIR)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"env pull failed:\n{run.stdout}\n{run.stderr}"


class Pyro:
    """One private state dir, and the CLI and MCP server that use it."""

    def __init__(self, workdir: Path) -> None:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        # Short: guest sockets live under it (unix socket path limit).
        self.state = Path(tempfile.mkdtemp(prefix="m", dir=STATE_ROOT))
        self.workdir = workdir

    def env(self) -> dict[str, str]:
        return {"PYRO_STATE_DIR": str(self.state), "PYRO_CACHE_DIR": str(CACHE_DIR)}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PYRO_ACCEL"}
        run = subprocess.run(
            [str(PYRO), *args],
            env={**env, **self.env()},
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check:
            assert run.returncode == 0, f"pyro {' '.join(args)}: {run.returncode}\n{run.stdout}\n{run.stderr}"
        return run

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    @asynccontextmanager
    async def session(self, *extra: str) -> AsyncIterator[ClientSession]:
        params = StdioServerParameters(
            command=str(PYRO),
            args=["mcp", "serve", *extra],
            env=self.env(),
            cwd=str(self.workdir),
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session

    def cleanup(self) -> None:
        listing = self.cli("workspace", "list", "--json", check=False)
        if listing.returncode == 0:
            for w in json.loads(listing.stdout)["workspaces"]:
                self.cli("workspace", "delete", w["workspace_id"], check=False)
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture
def pyro(tmp_path: Path) -> Any:
    workdir = tmp_path / "allowed"
    workdir.mkdir()
    p = Pyro(workdir)
    yield p
    p.cleanup()


def text_of(result: Any) -> str:
    assert len(result.content) == 1, result.content
    return result.content[0].text


async def tool_schemas(session: ClientSession) -> dict[str, Any]:
    return {t.name: t for t in (await session.list_tools()).tools}


# --- no guests -----------------------------------------------------------


@pytest.mark.anyio
async def test_each_profile_lists_exactly_its_tools(pyro: Pyro) -> None:
    for profile, expected in PROFILES.items():
        async with pyro.session("--profile", profile) as s:
            tools = await tool_schemas(s)
        assert set(tools) == expected, profile
        assert len(tools) == len(expected)
        for name, tool in tools.items():
            assert tool.description and len(tool.description) > 80, name
            assert tool.input_schema["type"] == "object", name
            assert tool.output_schema and tool.output_schema["type"] == "object", name
            jsonschema.Draft202012Validator.check_schema(tool.input_schema)
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)
    # The default is workspace-full.
    async with pyro.session() as s:
        init = s.initialize_result
        assert init is not None and init.server_info.name == "pyro_mcp"
        assert set(await tool_schemas(s)) == FULL


def test_bad_serve_options_are_usage_errors(pyro: Pyro) -> None:
    run = pyro.cli("mcp", "serve", "--profile", "bogus", check=False)
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert "unknown MCP profile 'bogus'; expected one of: vm-run, workspace-core, workspace-full" in run.stderr
    run = pyro.cli("mcp", "serve", "--allow-host-path", "no-such-dir", check=False)
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert "--allow-host-path" in run.stderr and "no-such-dir" in run.stderr, run.stderr


def test_help_names_the_default_profile(pyro: Pyro) -> None:
    run = pyro.cli("mcp", "serve", "--help")
    assert "workspace-full" in run.stdout and "default" in run.stdout
    assert "--allow-host-path" in run.stdout


def test_stdout_carries_only_mcp_messages_and_stdin_eof_ends_the_server(pyro: Pyro) -> None:
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "workspace_status", "arguments": {"workspace_id": "ghost"}},
        },
    ]
    started = time.monotonic()
    run = subprocess.run(
        [str(PYRO), "mcp", "serve"],
        input="".join(json.dumps(m) + "\n" for m in messages),
        env={**os.environ, **pyro.env()},
        cwd=pyro.workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 10
    replies = [json.loads(line) for line in run.stdout.splitlines()]
    assert all(r["jsonrpc"] == "2.0" for r in replies), run.stdout
    assert sorted(r["id"] for r in replies) == [1, 2, 3]
    status = next(r for r in replies if r["id"] == 3)
    assert status["result"]["isError"] is True


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every server command line in docs/integrations.md, by client."""
    import re
    import shlex
    import tomllib

    doc = (ROOT / "docs" / "integrations.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    found: list[tuple[str, list[str]]] = []
    for lang, body in blocks:
        if lang == "sh":
            for line in body.splitlines():
                if line.startswith("claude mcp add"):
                    found.append(("claude", shlex.split(line.split(" -- ", 1)[1])))
        elif lang == "toml":
            server = tomllib.loads(body)["mcp_servers"]["pyro"]
            found.append(("codex", [server["command"], *server["args"]]))
        elif lang == "json":
            config = json.loads(body)
            if "mcp" in config:
                found.append(("opencode", config["mcp"]["pyro"]["command"]))
            if "mcpServers" in config:
                server = config["mcpServers"]["pyro"]
                found.append(("generic", [server["command"], *server["args"]]))
    return found


@pytest.mark.anyio
async def test_documented_client_configs_start_the_server(pyro: Pyro, tmp_path: Path) -> None:
    commands = documented_commands()
    assert {client for client, _ in commands} == {"claude", "codex", "opencode", "generic"}
    src = tmp_path / "src"
    src.mkdir()
    for client, argv in commands:
        assert argv[:3] == ["pyro", "mcp", "serve"], (client, argv)
        # Placeholders: the user's source dir and shell expansions.
        args = [str(src) if a in ("/home/me/src", "~/src", "$PWD") else a for a in argv[3:]]
        async with pyro.session(*args) as s:
            names = set(await tool_schemas(s))
        profile = args[args.index("--profile") + 1] if "--profile" in args else "workspace-full"
        assert names == PROFILES[profile], (client, argv)


@pytest.mark.anyio
async def test_errors_are_tool_errors_with_message_and_hint(pyro: Pyro, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no\n")
    (pyro.workdir / "escape").symlink_to(outside)

    async with pyro.session("--profile", "workspace-core") as s:
        r = await s.call_tool("workspace_status", {"workspace_id": "no-such-workspace"})
        assert r.is_error
        text = text_of(r)
        assert text.startswith("Error executing tool workspace_status: workspace 'no-such-workspace' does not exist"), (
            text
        )
        hint = text.split("\n")[1]
        assert "workspace_list" in hint and "pyro " not in hint, text
        assert r.structured_content["code"] == "not_found"
        assert r.structured_content["hint"] == hint

        r = await s.call_tool("workspace_create", {"environment": ENV, "labels": {"bad key!": "v"}})
        assert r.is_error
        assert r.structured_content["code"] == "invalid_argument"
        assert "bad key!" in text_of(r), text_of(r)

        r = await s.call_tool("workspace_create", {"environment": ENV, "seed_path": str(outside)})
        assert r.is_error
        assert r.structured_content["code"] == "invalid_argument"
        text = text_of(r)
        assert "outside the host directories" in text, text
        assert str(pyro.workdir.resolve()) in text, text
        assert "--allow-host-path" in text, text

        # A symlink inside the allowed dir that points out is refused too.
        r = await s.call_tool("workspace_create", {"environment": ENV, "seed_path": "escape"})
        assert r.is_error
        text = text_of(r)
        assert "resolves to" in text and str(outside.resolve()) in text, text

        r = await s.call_tool("workspace_create", {"environment": ENV, "seed_path": "escape/../.."})
        assert r.is_error

        # Wrong params are tool errors naming the field.
        r = await s.call_tool("workspace_list", {"bogus": 1})
        assert r.is_error and "bogus" in text_of(r)

        # An unknown tool, or one the profile does not serve, is a protocol error.
        for name in ["no_such_tool", "workspace_stop"]:
            with pytest.raises(MCPError) as caught:
                await s.call_tool(name, {})
            assert f"unknown tool '{name}'" in str(caught.value)

        # Nothing was created by any of this.
        listing = await s.call_tool("workspace_list", {})
        assert listing.structured_content == {"count": 0, "workspaces": []}


@pytest.mark.anyio
async def test_allow_host_path_widens_what_seed_path_may_read(pyro: Pyro, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    async with pyro.session("--allow-host-path", str(other)) as s:
        # The working directory is no longer allowed on its own...
        r = await s.call_tool("workspace_create", {"environment": ENV, "seed_path": "."})
        assert r.is_error and str(other.resolve()) in text_of(r), text_of(r)
        # ...and an environment that does not exist fails after the path check.
        r = await s.call_tool("workspace_create", {"environment": "nope:1", "seed_path": str(other)})
        assert r.is_error and r.structured_content["code"] == "unknown_environment", text_of(r)


# --- real guests ---------------------------------------------------------


@pytest.mark.anyio
async def test_discovery_flow_concurrency_and_output_schemas(pyro: Pyro) -> None:
    seed = pyro.workdir / "src"
    seed.mkdir()
    (seed / "hello.txt").write_text("hello from the host\n")
    validated: set[str] = set()

    async with pyro.session() as s:
        schemas = await tool_schemas(s)

        async def call(name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
            r = await s.call_tool(name, args, **kw)
            assert not r.is_error, text_of(r)
            jsonschema.validate(r.structured_content, schemas[name].output_schema)
            assert json.loads(text_of(r)) == r.structured_content
            validated.add(name)
            return r.structured_content

        progress: list[str] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        created = await call(
            "workspace_create",
            {"environment": ENV, "name": "mcp-alpha", "labels": {"team": "x"}, "seed_path": "src"},
            progress_callback=on_progress,
        )
        alpha = created["workspace_id"]
        assert created["name"] == "mcp-alpha" and created["labels"] == {"team": "x"}
        assert created["state"] == "started"
        assert created["workspace_seed"]["mode"] == "directory"
        assert created["workspace_seed"]["seed_path"] == str(seed.resolve())
        assert any(m.startswith("boot: ") for m in progress), progress

        # A workspace made by the CLI is in the same store.
        beta = pyro.cli("workspace", "create", ENV, "--name", "cli-beta", "--label", "team=y", "--id-only")
        beta_id = beta.stdout.strip()

        listing = await call("workspace_list", {})
        assert [w["name"] for w in listing["workspaces"]] == ["cli-beta", "mcp-alpha"]
        only_x = await call("workspace_list", {"labels": ["team=x"]})
        assert [w["workspace_id"] for w in only_x["workspaces"]] == [alpha]

        updated = await call(
            "workspace_update",
            {"workspace_id": "mcp-alpha", "name": "mcp-alpha2", "labels": {"owner": "me"}},
        )
        assert updated["name"] == "mcp-alpha2"
        assert updated["labels"] == {"owner": "me", "team": "x"}

        # A string command runs under sh -lc; the seed is in /workspace.
        ran = await call("workspace_exec", {"workspace_id": "mcp-alpha2", "command": "cat hello.txt && echo $((6*7))"})
        assert ran["exit_code"] == 0, ran
        assert ran["stdout"] == "hello from the host\n42\n", ran

        listing = await call("workspace_list", {})
        assert [w["workspace_id"] for w in listing["workspaces"]] == [alpha, beta_id]
        cli_listing = pyro.cli_json("workspace", "list")
        assert [w["workspace_id"] for w in cli_listing["workspaces"]] == [alpha, beta_id]
        assert cli_listing["workspaces"][0]["name"] == "mcp-alpha2"

        status = await call("workspace_status", {"workspace_id": alpha})
        assert status["command_count"] == 1 and status["last_command"]["exit_code"] == 0
        logs = await call("workspace_logs", {"workspace_id": "mcp-alpha2"})
        assert [e["stdout"] for e in logs["entries"]] == ["hello from the host\n42\n"]
        # VMs held by this server (3.x semantics: exec deletes the VM).
        vm = await call("vm_create", {"environment": ENV})
        assert vm["state"] == "created" and vm["execution_mode"] == "pending", vm
        assert (await call("vm_status", {"vm_id": vm["vm_id"]}))["vm_id"] == vm["vm_id"]
        net = await call("vm_network_info", {"vm_id": vm["vm_id"]})
        assert net["network_enabled"] is False, net
        assert (await call("vm_start", {"vm_id": vm["vm_id"]}))["state"] == "started"
        ran_vm = await call("vm_exec", {"vm_id": vm["vm_id"], "command": "echo from-vm"})
        assert ran_vm["stdout"] == "from-vm\n" and ran_vm["cleanup"]["deleted"] is True, ran_vm
        gone = await s.call_tool("vm_status", {"vm_id": vm["vm_id"]})
        assert gone.is_error and "does not exist" in text_of(gone), text_of(gone)
        other = await call("vm_create", {"environment": ENV})
        assert (await call("vm_stop", {"vm_id": other["vm_id"]}))["state"] == "created"
        assert (await call("vm_delete", {"vm_id": other["vm_id"]}))["reason"] == "explicit_delete"
        assert (await call("vm_reap_expired", {}))["count"] == 0
        envs = await call("vm_list_environments", {})
        assert any(e["name"] == ENV and e["installed"] for e in envs["environments"]), envs
        # Starting a started workspace returns it as it is (no reboot).
        started = await call("workspace_start", {"workspace_id": "mcp-alpha2"})
        assert started["state"] == "started"

        # Contents: files, patch, sync, diff, snapshots, export (confined
        # to the allowed directory), reset.
        wrote = await call("workspace_file_write", {"workspace_id": alpha, "path": "notes/a.txt", "text": "one\n"})
        assert wrote["path"] == "/workspace/notes/a.txt" and wrote["mode"] == 0o644, wrote
        read = await call("workspace_file_read", {"workspace_id": "mcp-alpha2", "path": "notes/a.txt"})
        assert (read["content"], read["encoding"], read["truncated"]) == ("one\n", "utf8", False), read
        listed = await call("workspace_file_list", {"workspace_id": alpha, "recursive": True})
        assert "/workspace/notes/a.txt" in [e["path"] for e in listed["entries"]], listed
        patch = "--- a/notes/a.txt\n+++ b/notes/a.txt\n@@ -1 +1 @@\n-one\n+two\n"
        patched = await call("workspace_patch_apply", {"workspace_id": alpha, "patch": patch})
        assert patched["summary"]["modified"] == 1, patched
        stale = await s.call_tool("workspace_patch_apply", {"workspace_id": alpha, "patch": patch})
        assert stale.is_error and "hunk 1" in text_of(stale), text_of(stale)
        (seed / "more.txt").write_text("more\n")
        synced = await call("workspace_sync_push", {"workspace_id": alpha, "source_path": "src", "dest": "synced"})
        assert synced["workspace_sync"]["destination"] == "/workspace/synced", synced
        diff = await call("workspace_diff", {"workspace_id": alpha})
        assert {"notes/a.txt", "synced/more.txt"} <= {e["path"] for e in diff["entries"]}, diff
        assert "+two" in diff["patch"], diff["patch"]
        await call("snapshot_create", {"workspace_id": alpha, "snapshot_name": "cp"})
        snaps = await call("snapshot_list", {"workspace_id": alpha})
        assert [x["snapshot_name"] for x in snaps["snapshots"]] == ["baseline", "cp"], snaps
        await call("workspace_export", {"workspace_id": alpha, "path": "notes/a.txt", "output_path": "out/a.txt"})
        assert (pyro.workdir / "out" / "a.txt").read_text() == "two\n"
        escape = pyro.workdir.parent / "escape.txt"
        outside = await s.call_tool(
            "workspace_export", {"workspace_id": alpha, "path": "notes/a.txt", "output_path": str(escape)}
        )
        assert outside.is_error and "outside" in text_of(outside), text_of(outside)
        assert not escape.exists()
        await call("workspace_exec", {"workspace_id": alpha, "command": "rm -rf notes"})
        reset = await call("workspace_reset", {"workspace_id": alpha, "snapshot": "cp"})
        assert reset["reset_count"] == 1 and reset["command_count"] == 0, reset
        assert reset["workspace_reset"]["snapshot_name"] == "cp", reset
        back = await call("workspace_file_read", {"workspace_id": alpha, "path": "notes/a.txt"})
        assert back["content"] == "two\n", back
        await call("snapshot_delete", {"workspace_id": alpha, "snapshot_name": "cp"})
        await call("workspace_file_write", {"workspace_id": beta_id, "path": "kept.txt", "text": "on disk\n"})
        svc = await call(
            "service_start",
            {
                "workspace_id": alpha,
                "service_name": "web",
                "command": "echo up; touch .web-ready && while true; do sleep 60; done",
                "ready_file": ".web-ready",
            },
        )
        assert svc["state"] == "running" and svc["ready_at"], svc
        both = await s.call_tool(
            "service_start",
            {"workspace_id": alpha, "service_name": "x", "command": "true", "ready_file": "a", "ready_tcp": "h:1"},
        )
        assert both.is_error and "at most one" in text_of(both), text_of(both)
        # alpha has no network: publishing is refused with the policy named.
        unpublished = await s.call_tool(
            "service_start",
            {"workspace_id": alpha, "service_name": "p", "command": "true", "published_ports": [{"guest_port": 8000}]},
        )
        assert unpublished.is_error and "egress+published-ports" in text_of(unpublished), text_of(unpublished)
        services = await call("service_list", {"workspace_id": alpha})
        assert services["running_count"] == 1, services
        assert (await call("service_status", {"workspace_id": alpha, "service_name": "web"}))["state"] == "running"
        svc_logs = await call("service_logs", {"workspace_id": alpha, "service_name": "web"})
        assert svc_logs["stdout"] == "up\n", svc_logs
        stopped_svc = await call("service_stop", {"workspace_id": alpha, "service_name": "web"})
        assert stopped_svc["state"] == "stopped", stopped_svc
        shell = await call("shell_open", {"workspace_id": alpha})
        sid = shell["shell_id"]
        await call("shell_write", {"workspace_id": alpha, "shell_id": sid, "input": "cd /tmp; X=4; echo v=$((X*2))"})
        out = await call("shell_read", {"workspace_id": alpha, "shell_id": sid, "plain": True, "wait_for_idle_ms": 500})
        assert "v=8" in out["output"] and out["next_cursor"] > 0, out
        await call("shell_write", {"workspace_id": alpha, "shell_id": sid, "input": "pwd"})
        out = await call(
            "shell_read",
            {
                "workspace_id": alpha,
                "shell_id": sid,
                "cursor": out["next_cursor"],
                "plain": True,
                "wait_for_idle_ms": 500,
            },
        )
        assert "/tmp" in out["output"], out
        sig = await call("shell_signal", {"workspace_id": alpha, "shell_id": sid, "signal_name": "int"})
        assert sig["signal"] == "INT", sig
        closed = await call("shell_close", {"workspace_id": alpha, "shell_id": sid})
        assert closed["closed"] is True, closed

        # Calls in flight at once: a list returns while a long
        # workspace_exec and a long vm_run (a fresh guest) still run.
        results: dict[str, Any] = {}
        done_at: dict[str, float] = {}

        async def long_call(name: str, args: dict[str, Any]) -> None:
            results[name] = await call(name, args)
            done_at[name] = time.monotonic()

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call, "workspace_exec", {"workspace_id": alpha, "command": "sleep 3; echo slept"})
            tg.start_soon(long_call, "vm_run", {"environment": ENV, "command": "sleep 3; echo done"})
            await anyio.sleep(0.5)
            list_started = time.monotonic()
            quick = await s.call_tool("workspace_list", {})
            list_done = time.monotonic()
            assert not quick.is_error
            assert done_at == {}, "workspace_list waited for a long call"
            assert list_done - list_started < 2.5
        assert results["workspace_exec"]["stdout"] == "slept\n"
        assert results["vm_run"]["stdout"] == "done\n"
        assert results["vm_run"]["exit_code"] == 0
        assert min(done_at.values()) > list_done

        # A call the client abandons (its courtesy notifications/cancelled)
        # stops its command in the guest.
        with anyio.move_on_after(2.5):
            await s.call_tool("workspace_exec", {"workspace_id": alpha, "command": "sleep 40; touch late.txt"})
        count = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done | grep -c '^sleep 40' || true"
        left = "?"
        for _ in range(20):
            left = (await call("workspace_exec", {"workspace_id": alpha, "command": count}))["stdout"].strip()
            if left == "0":
                break
            await anyio.sleep(0.5)
        assert left == "0", f"the cancelled command still runs ({left})"

        # A fork of a running workspace carries its disk (and memory) over.
        fork = await call("workspace_fork", {"workspace_id": "cli-beta", "name": "beta-fork", "labels": {"f": "1"}})
        assert fork["boot"]["mode"] == "fork" and fork["labels"]["f"] == "1", fork
        kept = await call("workspace_exec", {"workspace_id": "beta-fork", "command": "cat kept.txt"})
        assert kept["stdout"] == "on disk\n", kept
        assert (await call("workspace_delete", {"workspace_id": "beta-fork"}))["deleted"] is True

        stopped = await call("workspace_stop", {"workspace_id": "cli-beta"})
        assert stopped["state"] == "stopped"
        on_disk = await call("workspace_disk_list", {"workspace_id": "cli-beta"})
        assert [e["path"] for e in on_disk["entries"]] == ["/workspace/kept.txt"], on_disk
        disk_read = await call("workspace_disk_read", {"workspace_id": "cli-beta", "path": "kept.txt"})
        assert disk_read["content"] == "on disk\n", disk_read
        image = await call("workspace_disk_export", {"workspace_id": "cli-beta", "output_path": "beta.ext4"})
        assert image["disk_format"] == "ext4" and (pyro.workdir / "beta.ext4").stat().st_size == image["bytes_written"]
        for ref in ["mcp-alpha2", beta_id]:
            deleted = await call("workspace_delete", {"workspace_id": ref})
            assert deleted["deleted"] is True
        assert (await call("workspace_list", {}))["count"] == 0

    assert pyro.cli_json("workspace", "list")["count"] == 0
    assert validated == FULL, FULL - validated
