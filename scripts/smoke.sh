#!/usr/bin/env bash
# Multi-workspace smoke test against real guests (run by `make smoke`).
# Usage: scripts/smoke.sh PYRO_BINARY
set -euo pipefail

PYRO=${1:?usage: smoke.sh PYRO_BINARY}
PYRO=$(realpath "$PYRO")
: "${PYRO_CACHE_DIR:?set PYRO_CACHE_DIR to an environment cache}"
STATE=$(mktemp -d "${SMOKE_STATE_ROOT:-$PWD/target}/smoke.XXXXXX")
export PYRO_STATE_DIR=$STATE

step() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
order() { "$PYRO" workspace list --json | json "' '.join(w['name'] or w['workspace_id'] for w in d['workspaces'])"; }
cleanup() {
  for w in $("$PYRO" workspace list --json 2>/dev/null | json "' '.join(w['workspace_id'] for w in d['workspaces'])" 2>/dev/null); do
    "$PYRO" workspace delete "$w" >/dev/null 2>&1 || true
  done
  rm -rf "$STATE"
}
trap cleanup EXIT

"$PYRO" env pull debian:12 >/dev/null

step "create three named, labelled workspaces"
"$PYRO" workspace create debian:12 --name alpha --label team=x --label tier=dev --id-only
sleep 1
"$PYRO" workspace create debian:12 --name beta --label team=y --id-only
sleep 1
"$PYRO" workspace create debian:12 --name gamma --label team=x --json | json "d['state']" | grep -qx started || fail "gamma not started"

step "list orders by last activity (newest first)"
"$PYRO" workspace list
[ "$(order)" = "gamma beta alpha" ] || fail "order after create: $(order)"

step "update labels and name"
"$PYRO" workspace update beta --label owner=me --name beta2
"$PYRO" workspace status beta2 --json | json "d['labels']['owner']" | grep -qx me || fail "label not set"
[ "$(order)" = "beta2 gamma alpha" ] || fail "update with a change must count as activity: $(order)"

step "exec in the oldest moves it to the top"
"$PYRO" workspace exec alpha -- sh -c 'echo hello > /workspace/note.txt'
[ "$(order)" = "alpha beta2 gamma" ] || fail "order after exec: $(order)"

step "list --label filters"
[ "$("$PYRO" workspace list --label team=x --json | json "' '.join(w['name'] for w in d['workspaces'])")" = "alpha gamma" ] || fail "team=x filter"
[ "$("$PYRO" workspace list --label owner --json | json "d['count']")" = "1" ] || fail "owner presence filter"

step "stop and start keeps files"
"$PYRO" workspace stop alpha
"$PYRO" workspace status alpha --json | json "d['state']" | grep -qx stopped || fail "alpha not stopped"
"$PYRO" workspace start alpha
out=$("$PYRO" workspace exec alpha -- cat /workspace/note.txt 2>/dev/null)
[ "$out" = "hello" ] || fail "file lost across stop/start: '$out'"

step "delete all"
for n in alpha beta2 gamma; do "$PYRO" workspace delete "$n"; done
[ "$("$PYRO" workspace list --json | json "d['count']")" = "0" ] || fail "workspaces left"

step "no VM process left"
left=$(python3 - "$STATE" <<'PY'
import os, sys
me = os.getpid()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    if int(pid) != me and sys.argv[1] in cmd and "python3" not in cmd:
        print(pid, cmd)
PY
)
[ -z "$left" ] || fail "guest processes outlived their workspaces: $left"
echo "smoke: 1 passed, 0 failed"
