#!/usr/bin/env bash
# Captures docs/first-run.md from a real run: sections 1-5 of the first-run
# transcript (doctor, env list, env pull, one run, the workspace path), each
# command executed for real with the given pyro binary and its output
# recorded, then ids, timestamps, durations and host paths replaced by
# stable placeholders so that regenerating it diffs cleanly.
#
# Usage:
#   PYRO_CACHE_DIR=$PWD/target/pyro-test-cache scripts/first_run.sh target/debug/pyro
#   scripts/first_run.sh --render RAW_DIR     # re-render from a saved raw capture, no guests
#
# Everything happens in a scratch directory (FIRST_RUN_ROOT, default
# ./target) with its own PYRO_STATE_DIR; PYRO_CACHE_DIR comes from the
# environment (pyro's default when unset). The scratch directory, and
# every workspace made in it, is deleted at the end. FIRST_RUN_RAW=DIR
# keeps the unsanitized capture there; FIRST_RUN_OUT overrides the output
# file. Boots 4 guests (slow under TCG: a few minutes). Exits 1 when a
# command did not exit as expected (the document is written anyway).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m "${FIRST_RUN_OUT:-$ROOT/docs/first-run.md}")

render() { # render RAW_DIR: the markdown from a capture, on stdout
  python3 - "$1" <<'PY'
import json
import re
import sys
from pathlib import Path

raw = Path(sys.argv[1])
meta = json.loads((raw / "meta.json").read_text())

# Host paths, longest first (the scratch dir and the cache may lie inside
# the checkout, the checkout inside $HOME).
PLACES = [
    (meta["scratch"], "/home/me/work"),
    (meta["state"], "/home/me/.local/state/pyro"),
    (meta["cache"], "/home/me/.cache/pyro"),
    (meta["root"], "/home/me/src/pyro"),
    (meta["home"], "/home/me"),
]
PLACES = sorted((p for p in PLACES if p[0] and p[0] != "/"), key=lambda p: -len(p[0]))
# Stable stand-ins for the 12-hex ids, in order of first appearance.
FAKE_IDS = ["ed1ea9f3282b", "3f9c0a1b2c4d", "5b7e2d9c4a10", "9a4c1e7f0b32", "c0ffee123456", "0badc0de4321"]
ids: dict[str, str] = {}
DURATION_KEYS = r"(?:duration_ms|boot_ms|first_output_ms|create_ms|exec_ms|cleanup_ms|ready_ms)"


def fake_id(m: re.Match) -> str:
    real = m.group(0)
    if real not in ids:
        ids[real] = FAKE_IDS[len(ids)] if len(ids) < len(FAKE_IDS) else "0" * 11 + str(len(ids))
    return ids[real]


def clean(text: str) -> str:
    for real, fake in PLACES:
        # Whole path components only (`/root` is not the start of `/rootfs.ext4`).
        text = re.sub(re.escape(real) + r"(?![\w.-])", fake, text)
    text = re.sub(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", fake_id, text)
    # "Last activity at: 1764361234.12 (2025-11-28 20:40:34, 5 s ago)"
    text = re.sub(
        r"\b(at: )\d+(?:\.\d+)? \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(, \d+ (?:s|min|h|d) ago)?\)",
        lambda m: m.group(1) + "... (..." + (", ... ago" if m.group(2) else "") + ")",
        text,
    )
    text = re.sub(r'\b(\w+_at)(=|": )\d+(?:\.\d+)?', r"\1\2...", text)
    text = re.sub(rf"\b({DURATION_KEYS})(=|\": )\d+", r"\1\2...", text)
    text = re.sub(r'\b(pid)(=|": )\d+', r"\1\2...", text)
    # How many templates this machine's cache holds is not the reader's.
    text = re.sub(r"\b(Templates: on built=)\d+", r"\1...", text)
    text = re.sub(r"initramfs-[0-9a-f]{16}\.cpio", "initramfs-<agent>.cpio", text)
    text = re.sub(r"\b\d+(?:\.\d+)? ?s\b(?= ago)", "...", text)
    return text


def collapse_pull(lines: list[str]) -> list[str]:
    """A real build prints mmdebstrap's progress: keep the phases only."""
    out: list[str] = []
    for line in lines:
        if line.startswith("[pull] ") and "phase=" not in line:
            if out and out[-1] == "[pull] ...":
                continue
            line = "[pull] ..."
        out.append(line)
    return out


SECTIONS = {
    "1": (
        "1. Verify the host",
        "`pyro doctor` checks the tools, KVM, the guest agent and the environment\n"
        "cache, and boots a probe guest once per host (the result is cached). It\n"
        "exits 1 when guests cannot run, and each issue names its fix. The\n"
        "`KVM:` and `Accelerator:` lines depend on the host: this capture comes\n"
        "from a machine whose KVM does not boot a guest, so guests run under TCG\n"
        "(slower, still isolated); see [host-requirements.md](host-requirements.md).",
    ),
    "2": ("2. Inspect the catalog", ""),
    "3": (
        "3. Pull the default environment",
        "`env pull` builds the environment from Debian packages with mmdebstrap\n"
        "(as root, with a reachable Debian mirror: about a minute the first time;\n"
        "no prebuilt images are downloaded). Once installed, a pull is instant.",
    ),
    "4": (
        "4. Run one command in a guest",
        "The guest command's output goes to stdout and the `[run] ...` lines to\n"
        "stderr (merged here); `--json` gives one structured result instead.",
    ),
    "5": (
        "5. Continue into the stable workspace path",
        "A workspace keeps running between commands and is found again by its\n"
        "id or its unique name. The files used here: `repo/` (the seed, which\n"
        "becomes the baseline), `changes/` (pushed later) and `fix.patch`.",
    ),
}

steps = sorted(p.stem for p in raw.glob("*.cmd"))
out = [
    "# First run",
    "",
    "<!-- Generated by scripts/first_run.sh from a real run; do not edit by",
    "hand. Regenerate with",
    "`PYRO_CACHE_DIR=$PWD/target/pyro-test-cache scripts/first_run.sh target/debug/pyro`. -->",
    "",
    "The path from a new host to a working workspace, captured from a real",
    "run by `scripts/first_run.sh` (every command below ran, and its output",
    "is what it printed, stdout and stderr together). Ids are replaced by",
    "stable stand-ins, and timestamps, durations and process ids by `...`;",
    "paths are shown as for a user `me` working in `/home/me/work`.",
    "",
    "The commands use an installed `pyro` (see [install.md](install.md)). The",
    "same sequence works with `uvx --from PATH/TO/pyro_mcp-*.whl pyro ...` or,",
    "in a checkout, `target/release/pyro ...` after `make build`. What the",
    "host needs is in [host-requirements.md](host-requirements.md); if",
    "`pyro doctor` reports `Runtime: FAIL`, or a run does not say",
    "`execution_mode=guest_vsock`, see [troubleshooting.md](troubleshooting.md).",
    "",
]
current = None
for step in steps:
    section = (raw / f"{step}.section").read_text().strip()
    if section != current:
        current = section
        title, prose = SECTIONS[section]
        out += [f"## {title}", ""]
        if prose:
            out += [prose, ""]
    cmd = (raw / f"{step}.cmd").read_text().rstrip("\n")
    text = (raw / f"{step}.out").read_text(errors="replace")
    rc = int((raw / f"{step}.rc").read_text().strip() or "0")
    lines = clean(text).rstrip("\n").split("\n") if text.strip() else []
    if cmd.startswith("pyro env pull"):
        lines = collapse_pull(lines)
    out += ["```console", f"$ {clean(cmd)}", *lines, "```", ""]
    if rc != 0:
        out += [f"(exit status {rc})", ""]
out += [
    "## Next",
    "",
    "- [workspaces.md](workspaces.md): names, labels, the editing loop,",
    "  services; [cli.md](cli.md): every command and flag.",
    "- [public-contract.md](public-contract.md): the stable surface (commands,",
    "  JSON fields, MCP tools, SDK methods, error codes).",
    "- [integrations.md](integrations.md): `pyro mcp serve` from Claude Code,",
    "  Codex, OpenCode and other MCP clients; [python.md](python.md): the SDK.",
    "- `pyro env prune` removes stale cached environments when you are done.",
]
sys.stdout.write("\n".join(out) + "\n")
PY
}

if [ "${1:-}" = "--render" ]; then
  raw=${2:?usage: first_run.sh --render RAW_DIR}
  render "$raw" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
  echo "first-run: wrote $OUT" >&2
  exit 0
fi

PYRO=${1:?usage: first_run.sh PYRO_BINARY (or --render RAW_DIR)}
PYRO=$(realpath "$PYRO")
[ -x "$PYRO" ] || { echo "first-run: $PYRO is not executable" >&2; exit 2; }
CACHE=${PYRO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pyro}
mkdir -p "${FIRST_RUN_ROOT:-$ROOT/target}"
SCRATCH=$(mktemp -d "${FIRST_RUN_ROOT:-$ROOT/target}/first-run.XXXXXX")
SCRATCH=$(realpath "$SCRATCH")
RAW=$SCRATCH/raw
WORK=$SCRATCH/work
export PYRO_STATE_DIR=$SCRATCH/state
mkdir -p "$RAW" "$WORK"

cleanup() {
  local ids
  ids=$("$PYRO" workspace list --json 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join(w["workspace_id"] for w in json.load(sys.stdin)["workspaces"]))' 2>/dev/null || true)
  for w in $ids; do "$PYRO" workspace delete "$w" >/dev/null 2>&1 || true; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

python3 - "$RAW/meta.json" "$SCRATCH/work" "$PYRO_STATE_DIR" "$CACHE" "$ROOT" "$HOME" <<'PY'
import json, os, sys
out, scratch, state, cache, root, home = sys.argv[1:]
real = lambda p: os.path.realpath(p) if p else p
json.dump({"scratch": scratch, "state": state, "cache": real(cache), "root": real(root), "home": real(home)},
          open(out, "w"))
PY

# The transcript says `pyro`: run the binary under test by that name.
pyro() { "$PYRO" "$@"; }

n=0
failures=()
step() { # step SECTION 'COMMAND LINE' [EXPECTED_STATUS]: run it as shown, record it
  local section=$1 cmd=$2 want=${3:-0} id rc
  n=$((n + 1))
  id=$(printf '%03d' "$n")
  printf '%s\n' "$section" > "$RAW/$id.section"
  printf '%s\n' "$cmd" > "$RAW/$id.cmd"
  printf 'first-run: $ %s\n' "$cmd" >&2
  set +e
  eval "$cmd" > "$RAW/$id.out" 2>&1 < /dev/null
  rc=$?
  set -e
  echo "$rc" > "$RAW/$id.rc"
  if [ "$rc" != "$want" ]; then
    failures+=("$cmd: exit status $rc, expected $want")
    sed 's/^/first-run:   | /' "$RAW/$id.out" | tail -n 20 >&2
  fi
}

started=$SECONDS
cd "$WORK"

step 1 'pyro doctor'
step 2 'pyro env list'
step 3 'pyro env pull debian:12'
step 4 'pyro run debian:12 -- git --version'

step 5 "mkdir -p repo/src changes && printf 'print(\"hello\")\\n' > repo/src/app.py && printf 'first line\\n' > changes/note.txt"
step 5 "printf -- '--- a/note.txt\\n+++ b/note.txt\\n@@ -1 +1,2 @@\\n first line\\n+patched line\\n' > fix.patch"
step 5 'pyro workspace create debian:12 --seed-path ./repo --name repro-fix --label issue=123 --json | tee workspace.json'
step 5 "export WORKSPACE_ID=\"\$(python3 -c 'import json,sys; print(json.load(sys.stdin)[\"workspace_id\"])' < workspace.json)\""
if [ -z "${WORKSPACE_ID:-}" ]; then
  echo "first-run: FAIL: workspace create printed no workspace_id; stopping" >&2
  sed 's/^/first-run:   | /' "$RAW"/*.out | tail -n 20 >&2
  exit 1
fi
step 5 'pyro workspace list'
step 5 'pyro workspace update "$WORKSPACE_ID" --label owner=codex'
step 5 'pyro workspace sync push "$WORKSPACE_ID" ./changes'
step 5 'pyro workspace file read "$WORKSPACE_ID" note.txt'
step 5 'pyro workspace patch apply "$WORKSPACE_ID" --patch "$(cat fix.patch)"'
step 5 'pyro workspace exec "$WORKSPACE_ID" -- cat note.txt'
step 5 'pyro workspace snapshot create "$WORKSPACE_ID" checkpoint'
step 5 "pyro workspace service start \"\$WORKSPACE_ID\" web --ready-file .web-ready -- sh -lc 'touch .web-ready && while true; do sleep 60; done'"
step 5 'pyro workspace reset "$WORKSPACE_ID" --snapshot checkpoint'
step 5 'pyro workspace export "$WORKSPACE_ID" note.txt --output ./note.txt'
step 5 'pyro workspace stop "$WORKSPACE_ID"'
step 5 'pyro workspace disk list "$WORKSPACE_ID"'
step 5 'pyro workspace disk read "$WORKSPACE_ID" note.txt'
step 5 'pyro workspace disk export "$WORKSPACE_ID" --output ./workspace.ext4'
step 5 'pyro workspace start "$WORKSPACE_ID"'
step 5 'pyro workspace delete "$WORKSPACE_ID"'

elapsed=$((SECONDS - started))
cd "$ROOT"
render "$RAW" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
if [ -n "${FIRST_RUN_RAW:-}" ]; then
  rm -rf "$FIRST_RUN_RAW"
  mkdir -p "$(dirname "$FIRST_RUN_RAW")"
  cp -r "$RAW" "$FIRST_RUN_RAW"
fi
echo "first-run: wrote $OUT ($n commands in ${elapsed}s)" >&2
if [ ${#failures[@]} -gt 0 ]; then
  printf 'first-run: FAIL: %s\n' "${failures[@]}" >&2
  exit 1
fi
