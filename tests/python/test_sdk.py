"""The Python SDK (`from pyro_mcp import Pyro`) against real guests.

Runs from the editable install `make test-python` makes (`uv sync`: maturin
builds the native module; the static agent is copied into the package).
Environments come from the shared test cache (`target/pyro-test-cache`);
each test gets a private state dir under target/pyro-test-state. Guests
booted: two workspaces for the discovery flow, one for the two-thread test.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyro_mcp
import pytest
from pyro_mcp import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Pyro,
    PyroError,
    PyroRuntimeError,
    StateError,
    _native,
)

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("PYRO_TEST_CACHE_DIR", ROOT / "target" / "pyro-test-cache"))
STATE_ROOT = ROOT / "target" / "pyro-test-state"
ENV = "debian:12"
# The console script of this venv: the same Rust CLI, run in-process.
PYRO = Path(sys.executable).parent / "pyro"


# --- the contract (CONTRACT.md §4) -------------------------------------------


class Contract:
    """The 3.x `Pyro` methods and their signatures, as CONTRACT.md §4 lists them."""

    def list_environments(self): ...
    def pull_environment(self, environment): ...
    def inspect_environment(self, environment): ...
    def prune_environments(self): ...
    def create_vm(
        self, *, environment, vcpu_count=1, mem_mib=1024, ttl_seconds=600, network=False, allow_host_compat=False
    ): ...
    def start_vm(self, vm_id): ...
    def exec_vm(self, vm_id, *, command, timeout_seconds=30): ...
    def stop_vm(self, vm_id): ...
    def delete_vm(self, vm_id): ...
    def status_vm(self, vm_id): ...
    def network_info_vm(self, vm_id): ...
    def reap_expired(self): ...
    def run_in_vm(
        self,
        *,
        environment,
        command,
        vcpu_count=1,
        mem_mib=1024,
        timeout_seconds=30,
        ttl_seconds=600,
        network=False,
        allow_host_compat=False,
    ): ...
    def create_workspace(
        self,
        *,
        environment,
        vcpu_count=1,
        mem_mib=1024,
        ttl_seconds=600,
        network_policy="off",
        allow_host_compat=False,
        seed_path=None,
        secrets=None,
        name=None,
        labels=None,
    ): ...
    def list_workspaces(self): ...
    def update_workspace(self, workspace_id, *, name=None, clear_name=False, labels=None, clear_labels=None): ...
    def exec_workspace(self, workspace_id, *, command, timeout_seconds=30, secret_env=None): ...
    def status_workspace(self, workspace_id): ...
    def stop_workspace(self, workspace_id): ...
    def start_workspace(self, workspace_id): ...
    def logs_workspace(self, workspace_id): ...
    def diff_workspace(self, workspace_id): ...
    def delete_workspace(self, workspace_id): ...
    def push_workspace_sync(self, workspace_id, source_path, *, dest="/workspace"): ...
    def export_workspace(self, workspace_id, path, *, output_path): ...
    def list_workspace_files(self, workspace_id, *, path="/workspace", recursive=False): ...
    def read_workspace_file(self, workspace_id, path, *, max_bytes=65536): ...
    def write_workspace_file(self, workspace_id, path, *, text): ...
    def apply_workspace_patch(self, workspace_id, *, patch): ...
    def export_workspace_disk(self, workspace_id, *, output_path): ...
    def list_workspace_disk(self, workspace_id, *, path="/workspace", recursive=False): ...
    def read_workspace_disk(self, workspace_id, path, *, max_bytes=65536): ...
    def create_snapshot(self, workspace_id, snapshot_name): ...
    def list_snapshots(self, workspace_id): ...
    def delete_snapshot(self, workspace_id, snapshot_name): ...
    def reset_workspace(self, workspace_id, *, snapshot="baseline"): ...
    def open_shell(self, workspace_id, *, cwd="/workspace", cols=120, rows=30, secret_env=None): ...
    def read_shell(self, workspace_id, shell_id, *, cursor=0, max_chars=65536, plain=False, wait_for_idle_ms=None): ...
    def write_shell(self, workspace_id, shell_id, *, input, append_newline=True): ...
    def signal_shell(self, workspace_id, shell_id, *, signal_name="INT"): ...
    def close_shell(self, workspace_id, shell_id): ...
    def start_service(
        self,
        workspace_id,
        service_name,
        *,
        command,
        cwd="/workspace",
        readiness=None,
        ready_timeout_seconds=30,
        ready_interval_ms=500,
        secret_env=None,
        published_ports=None,
    ): ...
    def list_services(self, workspace_id): ...
    def status_service(self, workspace_id, service_name): ...
    def logs_service(self, workspace_id, service_name, *, tail_lines=200, all=False): ...
    def stop_service(self, workspace_id, service_name): ...
    def create_server(self, *, profile="workspace-full"): ...


CONTRACT_METHODS = [name for name in vars(Contract) if not name.startswith("_")]

# Not in pyro yet (no operation in pyro-core): docs/python.md lists them.
MISSING: set[str] = set()

# Keyword-only additions beyond the 3.x signatures (pyro's own params).
EXTRAS = {
    "pull_environment": {"force"},
    "list_workspaces": {"labels", "name", "state", "limit"},
    "exec_workspace": {"cwd"},
    "create_server": {"allow_host_paths"},
}

# Methods beyond the contract, and the operation behind every method.
PYRO_ONLY = {"doctor", "gc_workspaces", "fork_workspace"}
OPERATIONS = {
    "doctor": "doctor",
    "list_environments": "env_list",
    "inspect_environment": "env_inspect",
    "pull_environment": "env_pull",
    "prune_environments": "env_prune",
    "run_in_vm": "vm_run",
    "create_workspace": "workspace_create",
    "list_workspaces": "workspace_list",
    "status_workspace": "workspace_status",
    "update_workspace": "workspace_update",
    "exec_workspace": "workspace_exec",
    "logs_workspace": "workspace_logs",
    "stop_workspace": "workspace_stop",
    "fork_workspace": "workspace_fork",
    "start_workspace": "workspace_start",
    "delete_workspace": "workspace_delete",
    "gc_workspaces": "workspace_gc",
    "push_workspace_sync": "workspace_sync_push",
    "list_workspace_files": "workspace_file_list",
    "read_workspace_file": "workspace_file_read",
    "write_workspace_file": "workspace_file_write",
    "apply_workspace_patch": "workspace_patch_apply",
    "diff_workspace": "workspace_diff",
    "export_workspace": "workspace_export",
    "create_snapshot": "snapshot_create",
    "list_snapshots": "snapshot_list",
    "delete_snapshot": "snapshot_delete",
    "reset_workspace": "workspace_reset",
    "list_workspace_disk": "workspace_disk_list",
    "read_workspace_disk": "workspace_disk_read",
    "export_workspace_disk": "workspace_disk_export",
    "start_service": "service_start",
    "list_services": "service_list",
    "status_service": "service_status",
    "logs_service": "service_logs",
    "stop_service": "service_stop",
    "open_shell": "shell_open",
    "read_shell": "shell_read",
    "write_shell": "shell_write",
    "signal_shell": "shell_signal",
    "close_shell": "shell_close",
    "create_vm": "vm_create",
    "start_vm": "vm_start",
    "exec_vm": "vm_exec",
    "stop_vm": "vm_stop",
    "delete_vm": "vm_delete",
    "status_vm": "vm_status",
    "network_info_vm": "vm_network_info",
    "reap_expired": "vm_reap_expired",
}

# SDK keywords that stand for other params of the operation.
TRANSLATED = {
    "start_service": ({"readiness"}, {"ready_file", "ready_tcp", "ready_http", "ready_command"}),
}


def public_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)}


def test_every_contract_method_that_exists_has_the_contract_signature() -> None:
    assert len(CONTRACT_METHODS) == 47
    assert public_methods(Pyro) == (set(CONTRACT_METHODS) - MISSING) | PYRO_ONLY
    for name in CONTRACT_METHODS:
        if name in MISSING:
            continue
        want = inspect.signature(getattr(Contract, name)).parameters
        got = inspect.signature(getattr(Pyro, name)).parameters
        for param in want.values():
            assert param.name in got, f"{name} lacks {param.name}"
            have = got[param.name]
            assert have.kind == param.kind, f"{name}({param.name}): {have.kind} != {param.kind}"
            assert have.default == param.default, f"{name}({param.name}): {have.default!r} != {param.default!r}"
        # Positional parameters keep their order, so 3.x positional calls work.
        positional = [p for p in got.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert [p.name for p in positional] == [p.name for p in want.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        extra = set(got) - set(want)
        assert extra == EXTRAS.get(name, set()), f"{name}: unexpected {extra}"
        for e in extra:
            assert got[e].kind is got[e].KEYWORD_ONLY and got[e].default is not got[e].empty, (name, e)


def test_every_operation_has_a_method_with_its_params_and_defaults() -> None:
    schema = json.loads(_native.schema())
    assert schema["pyro_version"] == pyro_mcp.__version__
    without = set(schema["operations"]) - set(OPERATIONS.values())
    assert not without, f"operations without a Pyro method: {without} (add them to python/pyro_mcp/_client.py)"
    assert set(OPERATIONS.values()) == set(schema["operations"]), "a Pyro method for an operation that is gone"
    assert set(OPERATIONS) == public_methods(Pyro) - {"create_server"}
    for method, op in OPERATIONS.items():
        props = schema["operations"][op]["params"].get("properties", {})
        params = {n: p for n, p in inspect.signature(getattr(Pyro, method)).parameters.items() if n != "self"}
        sdk_only, op_only = TRANSLATED.get(method, (set(), set()))
        assert set(params) - sdk_only == set(props) - op_only, f"{method} vs {op}: {set(params) ^ set(props)}"
        for name, param in params.items():
            if param.default is param.empty or param.default is None or name in sdk_only:
                continue  # required, or "the operation's default"
            assert props[name].get("default") == param.default, f"{method}({name}={param.default!r}) vs {op}"


def test_methods_are_annotated_and_documented() -> None:
    for name in public_methods(Pyro):
        fn = getattr(Pyro, name)
        assert fn.__doc__, name
        sig = inspect.signature(fn)
        assert sig.return_annotation is not sig.empty, name
        for p in sig.parameters.values():
            assert p.name == "self" or p.annotation is not p.empty, (name, p.name)
    assert (Path(pyro_mcp.__file__).parent / "py.typed").is_file()


def stub_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, Any]]:
    args = fn.args
    defaults = [None] * (len(args.args) - len(args.defaults)) + [ast.literal_eval(d) for d in args.defaults]
    return [(a.arg, d) for a, d in zip(args.args, defaults, strict=True)]


def runtime_params(obj: Any) -> list[tuple[str, Any]]:
    return [(p.name, None if p.default is p.empty else p.default) for p in inspect.signature(obj).parameters.values()]


def test_native_stubs_match_the_runtime() -> None:
    stub = ast.parse((Path(pyro_mcp.__file__).parent / "_native.pyi").read_text())
    functions = stub_functions(stub)
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    runtime = {n for n in dir(_native) if not n.startswith("_")}
    assert runtime == set(functions) | set(classes)
    for name, fn in functions.items():
        assert stub_params(fn) == runtime_params(getattr(_native, name)), name
    native = classes["Native"]
    methods = stub_functions(ast.Module(body=native.body, type_ignores=[]))
    props = {n for n, f in methods.items() if any(getattr(d, "id", None) == "property" for d in f.decorator_list)}
    assert stub_params(methods["__new__"])[1:] == runtime_params(_native.Native)
    for name, fn in methods.items():
        if name == "__new__":
            continue
        attr = inspect.getattr_static(_native.Native, name)
        if name in props:
            assert type(attr).__name__ == "getset_descriptor", name
        else:
            assert stub_params(fn)[1:] == runtime_params(getattr(_native.Native, name))[1:], name
    runtime_members = {n for n in dir(_native.Native) if not n.startswith("_")}
    assert runtime_members == set(methods) - {"__new__"}
    assert issubclass(_native.NativeError, Exception)


def test_versions_agree() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert pyproject["project"]["version"] == cargo["workspace"]["package"]["version"] == pyro_mcp.__version__
    run = subprocess.run([str(PYRO), "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"pyro {pyro_mcp.__version__}"


# --- errors ----------------------------------------------------------------------


@pytest.fixture
def pyro() -> Iterator[Pyro]:
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    # Short: guest sockets live under it (unix socket path limit).
    state = Path(tempfile.mkdtemp(prefix="s", dir=STATE_ROOT))
    client = Pyro(base_dir=state, cache_dir=CACHE_DIR)
    yield client
    for w in client.list_workspaces()["workspaces"]:
        try:
            client.delete_workspace(w["workspace_id"])
        except PyroError:
            pass
    shutil.rmtree(state, ignore_errors=True)


def cli_error(pyro: Pyro, *args: str) -> dict[str, Any]:
    """The error envelope of a failing `pyro ... --json` on the same dirs."""
    args = args[: args.index("--")] + ("--json",) + args[args.index("--") :] if "--" in args else (*args, "--json")
    run = subprocess.run(
        [str(PYRO), *args],
        env={**os.environ, "PYRO_STATE_DIR": str(pyro.state_dir), "PYRO_CACHE_DIR": str(pyro.cache_dir)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0, run
    body = json.loads(run.stdout)
    assert body["ok"] is False
    return body["error"]


def test_errors_carry_the_cli_code_and_message_and_a_python_hint(pyro: Pyro) -> None:
    with pytest.raises(NotFoundError) as caught:
        pyro.status_workspace("ghost")
    e = caught.value
    assert isinstance(e, PyroError) and isinstance(e, ValueError)
    cli = cli_error(pyro, "workspace", "status", "ghost")
    assert (e.code, e.message) == (cli["code"], cli["message"]) == ("not_found", "workspace 'ghost' does not exist")
    assert "pyro workspace list" in cli["hint"]
    assert e.hint == "`list_workspaces()` shows the workspaces that exist"
    assert str(e) == f"{e.message}\nhint: {e.hint}"
    assert e.args == (e.code, e.message, e.hint)

    with pytest.raises(InvalidArgumentError) as caught:
        pyro.create_workspace(environment=ENV, vcpu_count=0)
    cli = cli_error(pyro, "workspace", "create", ENV, "--vcpu-count", "0")
    assert (caught.value.code, caught.value.message) == (cli["code"], cli["message"])
    assert caught.value.code == "invalid_argument" and "vcpu_count" in caught.value.message

    with pytest.raises(InvalidArgumentError) as caught:
        pyro.inspect_environment("nope:1")
    cli = cli_error(pyro, "env", "inspect", "nope:1")
    assert (caught.value.code, caught.value.message) == (cli["code"], cli["message"])
    assert caught.value.code == "unknown_environment"

    with pytest.raises(InvalidArgumentError, match="invalid params for workspace_list"):
        pyro.list_workspaces(limit="ten")  # type: ignore[arg-type]

    with pytest.raises(InvalidArgumentError, match="unknown MCP profile 'bogus'"):
        pyro.create_server(profile="bogus")
    with pytest.raises(InvalidArgumentError, match="no-such-dir"):
        pyro.create_server(allow_host_paths=["no-such-dir"])

    assert issubclass(ConflictError, ValueError) and issubclass(StateError, RuntimeError)
    assert issubclass(PyroRuntimeError, RuntimeError)
    # Codes the SDK does not know yet still raise a PyroError.
    assert type(pyro_mcp._errors.error_from("something_new", "m", None)) is PyroRuntimeError


def test_console_script_is_the_cli() -> None:
    # Arguments reach the Rust CLI as bytes: non-UTF-8 is refused, not mangled.
    run = subprocess.run([str(PYRO), "workspace", "status", b"\xff", "--json"], capture_output=True)
    assert run.returncode == 2, run
    assert "is not valid UTF-8" in json.loads(run.stdout)["error"]["message"]
    run = subprocess.run([str(PYRO), "workspace"], capture_output=True, text=True)
    assert run.returncode == 2 and "Usage: pyro workspace" in run.stderr
    run = subprocess.run([sys.executable, "-m", "pyro_mcp", "--version"], capture_output=True, text=True)
    assert run.stdout.strip() == f"pyro {pyro_mcp.__version__}"


def test_create_server_serves_mcp_in_process(pyro: Pyro, tmp_path: Path) -> None:
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
    ]
    script = (
        "import sys\n"
        "from pyro_mcp import Pyro\n"
        "server = Pyro(base_dir=sys.argv[1], cache_dir=sys.argv[2]).create_server(profile='vm-run')\n"
        "print('not for the client')\n"
        "server.run()\n"
        "print('after', file=sys.stderr)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(pyro.state_dir), str(pyro.cache_dir)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "not for the client"  # printed before serving
    replies = {r["id"]: r for r in map(json.loads, lines[1:])}
    assert replies[1]["result"]["serverInfo"]["name"] == "pyro_mcp"
    assert [t["name"] for t in replies[2]["result"]["tools"]] == ["vm_run"]
    assert run.stderr.endswith("after\n")


# --- real guests ----------------------------------------------------------------


@pytest.fixture(scope="module", autouse=False)
def environment_installed() -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    installed = Pyro(base_dir=STATE_ROOT / "pull", cache_dir=CACHE_DIR).pull_environment(ENV)
    assert installed["installed"] is True


def names(listing: dict[str, Any]) -> list[str]:
    return [w["name"] for w in listing["workspaces"]]


def test_discovery_flow_contents_and_state_errors(pyro: Pyro, environment_installed: None, tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "hello.txt").write_text("hello\n")
    api = pyro.create_workspace(environment=ENV, name="sdk-api", labels={"team": "x", "role": "api"}, seed_path=seed)
    assert (api["name"], api["labels"], api["state"]) == ("sdk-api", {"role": "api", "team": "x"}, "started")
    assert api["workspace_seed"]["seed_path"] == str(seed)
    web = pyro.create_workspace(environment=ENV, name="sdk-web", labels={"team": "x", "role": "web"})
    # The CLI's JSON fields, exactly: the SDK has no field list of its own.
    cli = subprocess.run(
        [str(PYRO), "workspace", "status", "sdk-web", "--json"],
        env={**os.environ, "PYRO_STATE_DIR": str(pyro.state_dir), "PYRO_CACHE_DIR": str(pyro.cache_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(json.loads(cli.stdout)) == set(pyro.status_workspace("sdk-web")) == set(web)

    # Listing is a query; most recently active first.
    assert names(pyro.list_workspaces()) == ["sdk-web", "sdk-api"]
    assert names(pyro.list_workspaces(labels={"team": "x"})) == ["sdk-web", "sdk-api"]
    assert names(pyro.list_workspaces(labels=["role=api"])) == ["sdk-api"]
    assert names(pyro.list_workspaces(labels="role=web")) == ["sdk-web"]
    assert names(pyro.list_workspaces(labels=["owner"])) == []
    assert names(pyro.list_workspaces(name="sdk-api")) == ["sdk-api"]
    assert names(pyro.list_workspaces(state="stopped")) == []
    assert names(pyro.list_workspaces(limit=1)) == ["sdk-web"]

    updated = pyro.update_workspace("sdk-web", labels={"owner": "me"}, clear_labels=["role"])
    assert updated["labels"] == {"owner": "me", "team": "x"}
    assert names(pyro.list_workspaces(labels=["owner"])) == ["sdk-web"]
    with pytest.raises(InvalidArgumentError, match="no effective"):
        pyro.update_workspace("sdk-web", labels={"owner": "me"})

    # An exec in the older one moves it to the top.
    ran = pyro.exec_workspace("sdk-api", command="cat hello.txt && echo $((6*7))")
    assert (ran["exit_code"], ran["stdout"]) == (0, "hello\n42\n")
    assert names(pyro.list_workspaces()) == ["sdk-api", "sdk-web"]
    argv = pyro.exec_workspace(api["workspace_id"], command=["sh", "-c", "echo $0", "a b"], cwd="/tmp")
    assert argv["stdout"] == "a b\n" and argv["cwd"] == "/tmp"
    failed = pyro.exec_workspace("sdk-api", command="exit 3")
    assert failed["exit_code"] == 3
    assert [e["exit_code"] for e in pyro.logs_workspace("sdk-api")["entries"]] == [0, 0, 3]

    # A service, its readiness given as in its result.
    started = pyro.start_service(
        "sdk-api",
        "ticker",
        command="while true; do echo tick; sleep 1; done",
        readiness={"type": "command", "command": "true"},
    )
    assert (started["state"], started["readiness"]) == ("running", {"type": "command", "command": "true"})
    assert pyro.list_services("sdk-api")["running_count"] == 1
    assert pyro.status_service("sdk-api", "ticker")["state"] == "running"
    time.sleep(1.5)
    assert pyro.logs_service("sdk-api", "ticker", tail_lines=1)["stdout"] == "tick\n"
    assert pyro.stop_service("sdk-api", "ticker")["state"] == "stopped"
    with pytest.raises(InvalidArgumentError, match="readiness must be"):
        pyro.start_service("sdk-api", "x", command="true", readiness={"type": "port", "port": "1"})

    # Contents.
    pyro.write_workspace_file("sdk-api", "src/app.py", text="print('v1')\n")
    assert pyro.read_workspace_file("sdk-api", "src/app.py")["content"] == "print('v1')\n"
    patch = "--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-print('v1')\n+print('v2')\n"
    assert pyro.apply_workspace_patch("sdk-api", patch=patch)["summary"]["modified"] == 1
    files = pyro.list_workspace_files("sdk-api", recursive=True)
    assert "/workspace/src/app.py" in [e["path"] for e in files["entries"]]
    diff = pyro.diff_workspace("sdk-api")
    assert diff["changed"] and "+print('v2')" in diff["patch"]
    snap = pyro.create_snapshot("sdk-api", "v2")
    assert (snap["snapshot_name"], snap["kind"]) == ("v2", "named")
    assert [s["snapshot_name"] for s in pyro.list_snapshots("sdk-api")["snapshots"]] == ["baseline", "v2"]
    pushed = pyro.push_workspace_sync("sdk-api", seed, dest="copy")
    assert pushed["workspace_sync"]["destination"] == "/workspace/copy"
    out = tmp_path / "out" / "app.py"
    assert pyro.export_workspace("sdk-api", "src/app.py", output_path=out)["artifact_type"] == "file"
    assert out.read_text() == "print('v2')\n"

    # Conflict and state errors, same codes as the CLI.
    with pytest.raises(ConflictError) as conflict:
        pyro.create_workspace(environment=ENV, name="sdk-web")
    assert conflict.value.code == "conflict" and "sdk-web" in conflict.value.message
    with pytest.raises(ConflictError):
        pyro.create_snapshot("sdk-api", "v2")
    with pytest.raises(NotFoundError) as missing:
        pyro.delete_snapshot("sdk-api", "nope")
    assert missing.value.hint == f'`list_snapshots("{api["workspace_id"]}")` shows its snapshots'
    with pytest.raises(StateError) as state:
        pyro.read_workspace_disk("sdk-api", "src/app.py")
    assert state.value.code == "invalid_state"
    assert state.value.hint and 'stop_workspace("sdk-api")' in state.value.hint

    stopped = pyro.stop_workspace("sdk-web")
    assert stopped["state"] == "stopped"
    with pytest.raises(StateError) as state:
        pyro.exec_workspace("sdk-web", command="true")
    assert state.value.hint == 'call `start_workspace("sdk-web")`'
    cli = cli_error(pyro, "workspace", "exec", "sdk-web", "--", "true")
    assert (state.value.code, state.value.message) == (cli["code"], cli["message"])
    assert names(pyro.list_workspaces(state="stopped")) == ["sdk-web"]

    for ref in ["sdk-api", web["workspace_id"]]:
        assert pyro.delete_workspace(ref)["deleted"] is True
    assert pyro.list_workspaces() == {"count": 0, "workspaces": []}


def test_console_script_interrupted_cleans_up_like_the_binary(pyro: Pyro, environment_installed: None) -> None:
    # The CLI's signal thread works inside a Python process too.
    proc = subprocess.Popen(
        [str(PYRO), "run", ENV, "--", "sleep", "60"],
        env={**os.environ, "PYRO_STATE_DIR": str(pyro.state_dir), "PYRO_CACHE_DIR": str(pyro.cache_dir)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "phase=execute" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (seen, out, err)
    assert "pyro: interrupted; the guest was stopped and its files removed" in err, err
    assert list((pyro.state_dir / "vms").iterdir()) == []


def test_one_pyro_from_several_threads(pyro: Pyro, environment_installed: None) -> None:
    pyro.create_workspace(environment=ENV, name="threads")
    spans: dict[str, tuple[float, float]] = {}
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def timed(key: str, fn: Any, **kw: Any) -> None:
        started = time.monotonic()
        try:
            results[key] = fn(**kw)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        spans[key] = (started, time.monotonic())

    threads = [
        threading.Thread(
            target=timed,
            args=("exec", pyro.exec_workspace),
            kwargs={"workspace_id": "threads", "command": "sleep 3; echo slept"},
        ),
        threading.Thread(
            target=timed, args=("run", pyro.run_in_vm), kwargs={"environment": ENV, "command": "sleep 2; echo ran"}
        ),
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    # The main thread is not held up by the GIL-free calls in flight.
    list_started = time.monotonic()
    for _ in range(20):
        listed = pyro.list_workspaces()
        status = pyro.status_workspace("threads")
    list_done = time.monotonic()
    assert spans == {}, "a quick call waited for a long one"
    assert list_done - list_started < 2.5
    assert listed["count"] == 1 and status["state"] == "started"
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert results["exec"]["stdout"] == "slept\n"
    assert results["run"]["stdout"] == "ran\n" and results["run"]["exit_code"] == 0
    # Both long calls were in flight at once.
    (a0, a1), (b0, b1) = spans["exec"], spans["run"]
    assert a0 < b1 and b0 < a1, spans
    assert min(a1, b1) > list_done


def test_vms_live_in_the_client_and_exec_deletes_them(pyro: Pyro, environment_installed: None) -> None:
    vm = pyro.create_vm(environment=ENV)
    assert vm["state"] == "created"
    assert pyro.start_vm(vm["vm_id"])["state"] == "started"
    ran = pyro.exec_vm(vm["vm_id"], command="echo $((6*7))")
    assert ran["stdout"] == "42\n" and ran["exit_code"] == 0, ran
    with pytest.raises(NotFoundError):
        pyro.status_vm(vm["vm_id"])
    assert pyro.reap_expired() == {"deleted_vm_ids": [], "count": 0}
