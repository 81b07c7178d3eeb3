#!/usr/bin/env bash
# `make dist-check`: the pyro-mcp distribution works from its own files.
#
# Builds the sdist and the wheel into target/dist, installs the wheel into
# a fresh venv and uses it (the `pyro` command, doctor, the SDK import, a
# real guest through `uv tool run` (uvx), the Python example), then builds
# the wheel again from the sdist alone and compares the two. Guests use the
# test environment cache, so nothing is rebuilt; state goes to a private
# directory under target/ that is removed at the end.
#
# Needs: the static agent in python/pyro_mcp/_agent/ (the Makefile's
# py-agent target), uv, cargo.
set -euo pipefail

UV=${UV:-uv}
ROOT=$(pwd)
DIST=$ROOT/target/dist
VENV=$ROOT/target/dist-venv
CACHE=${PYRO_TEST_CACHE_DIR:-$ROOT/target/pyro-test-cache}
# Short: guest sockets live under it (unix socket path limit).
STATE=$ROOT/target/dstate
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
AGENT=python/pyro_mcp/_agent/pyro-agent

started=$SECONDS
step_started=$SECONDS
step() {
  echo "dist-check: [$((SECONDS - step_started)) s] done"
  step_started=$SECONDS
  echo
  echo "== dist-check: $*"
}
fail() {
  echo "dist-check: FAIL: $*" >&2
  exit 1
}
cleanup() {
  # Workspaces the example left (it deletes its own; this is for failures).
  if [ -x "$VENV/bin/pyro" ] && [ -d "$STATE" ]; then
    PYRO_STATE_DIR=$STATE PYRO_CACHE_DIR=$CACHE "$VENV/bin/pyro" workspace list --json 2>/dev/null |
      "$VENV/bin/python" -c 'import json,sys; [print(w["workspace_id"]) for w in json.load(sys.stdin)["workspaces"]]' 2>/dev/null |
      while read -r id; do
        PYRO_STATE_DIR=$STATE PYRO_CACHE_DIR=$CACHE "$VENV/bin/pyro" workspace delete "$id" >/dev/null 2>&1 || true
      done
  fi
  rm -rf "$STATE"
}
trap cleanup EXIT

[ -f "$AGENT" ] || fail "$AGENT is missing: run \`make py-agent\` (dist-check does)"
rm -rf "$DIST" "$VENV" "$STATE"
mkdir -p "$DIST" "$STATE"
env=(env "PYRO_STATE_DIR=$STATE" "PYRO_CACHE_DIR=$CACHE")

echo "== dist-check: sdist"
$UV build --sdist --out-dir "$DIST" 2>&1 | grep -v '^warning: manifest has no\|^  |\|^  = note: see\|^From `cargo package' || true
SDIST=$DIST/pyro_mcp-$VERSION.tar.gz
[ -f "$SDIST" ] || fail "no sdist at $SDIST"

step "wheel (release build of crates/pyro-py)"
$UV build --wheel --out-dir "$DIST"
WHEEL=$(ls "$DIST"/pyro_mcp-"$VERSION"-*.whl)
echo "$WHEEL"
unzip -l "$WHEEL"
for f in pyro_mcp/_native.abi3.so pyro_mcp/_agent/pyro-agent pyro_mcp/py.typed pyro_mcp/_native.pyi pyro_mcp/__init__.py; do
  unzip -l "$WHEEL" "$f" >/dev/null || fail "the wheel lacks $f"
done
unzip -p "$WHEEL" "pyro_mcp-$VERSION.dist-info/entry_points.txt" | grep -qx 'pyro=pyro_mcp._cli:main' ||
  fail "the wheel has no pyro console script"

step "install the wheel into a fresh venv"
$UV venv --quiet "$VENV"
$UV pip install --quiet --python "$VENV/bin/python" "$WHEEL"

step "pyro --version"
got=$("$VENV/bin/pyro" --version)
echo "$got"
[ "$got" = "pyro $VERSION" ] || fail "pyro --version printed '$got'"

step "pyro doctor --json (the wheel's agent)"
"${env[@]}" "$VENV/bin/pyro" doctor --json >"$DIST/doctor.json" || fail "pyro doctor failed: $(cat "$DIST/doctor.json")"
"$VENV/bin/python" - "$DIST/doctor.json" "$VENV" <<'EOF'
import json, sys
doctor = json.load(open(sys.argv[1]))
agent = doctor["agent"]
print(f"runtime_ok={doctor['runtime_ok']} agent={agent}")
assert doctor["runtime_ok"], doctor["issues"]
assert agent["path"].startswith(sys.argv[2] + "/"), f"agent not from the wheel: {agent['path']}"
assert agent["present"] and agent["static_binary"], agent
EOF

step "python -c 'from pyro_mcp import Pyro'"
(cd "$DIST" && "$VENV/bin/python" -c 'import pyro_mcp; from pyro_mcp import Pyro; print(pyro_mcp.__version__, pyro_mcp.__file__)')

step "uvx --from <wheel> pyro run debian:12 -- git --version (a real guest)"
out=$("${env[@]}" $UV tool run --isolated --refresh-package pyro-mcp --from "$WHEEL" pyro run debian:12 -- git --version)
echo "$out"
case "$out" in "git version "*) ;; *) fail "unexpected output: $out" ;; esac

step "examples/python_workspace.py through the installed wheel"
(cd "$DIST" && "${env[@]}" "$VENV/bin/python" "$ROOT/examples/python_workspace.py") | tee "$DIST/example.log"
grep -q "^order after exec:  \['example-api', 'example-web'\]" "$DIST/example.log" || fail "the example's flow did not complete"

step "wheel from the sdist alone"
# A fixed directory, so repeated runs reuse their build artifacts; -m gives
# the files fresh times, so cargo really compiles what the sdist holds.
SRC=$DIST/sdist-src
rm -rf "$SRC" && mkdir -p "$SRC"
tar -xzmf "$SDIST" -C "$SRC"
(cd "$SRC/pyro_mcp-$VERSION" && CARGO_TARGET_DIR=$ROOT/target $UV build --wheel --out-dir "$DIST/from-sdist" .)
WHEEL2=$(ls "$DIST"/from-sdist/pyro_mcp-"$VERSION"-*.whl)
list() { unzip -Z1 "$1" | sort; }
diff <(list "$WHEEL") <(list "$WHEEL2") || fail "the wheel built from the sdist holds other files"
$UV pip install --quiet --reinstall --python "$VENV/bin/python" "$WHEEL2"
got=$("$VENV/bin/pyro" --version)
[ "$got" = "pyro $VERSION" ] || fail "pyro --version from the sdist's wheel printed '$got'"
echo "same files as $(basename "$WHEEL"); $got"

step "done"
echo "dist-check: OK in $((SECONDS - started)) s"
