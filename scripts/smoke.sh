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

step "editing loop: the first-run transcript's section 5"
work=$(mktemp -d "$STATE/loop.XXXXXX")
mkdir -p "$work/repo/src" "$work/changes"
printf 'print("hello")\n' > "$work/repo/src/app.py"
printf 'first line\n' > "$work/changes/note.txt"
cat > "$work/fix.patch" <<'PATCH'
--- a/note.txt
+++ b/note.txt
@@ -1 +1,2 @@
 first line
+patched line
PATCH
(
  cd "$work"
  "$PYRO" workspace create debian:12 --seed-path ./repo --name repro-fix --label issue=123 --json | tee "$work/ws.json" >/dev/null
  WORKSPACE_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["workspace_id"])' < "$work/ws.json")"
  "$PYRO" workspace list
  "$PYRO" workspace update "$WORKSPACE_ID" --label owner=codex
  "$PYRO" workspace sync push "$WORKSPACE_ID" ./changes
  "$PYRO" workspace file read "$WORKSPACE_ID" note.txt
  "$PYRO" workspace file write "$WORKSPACE_ID" src/app.py --text 'print("hi")'
  "$PYRO" workspace patch apply "$WORKSPACE_ID" --patch "$(cat fix.patch)"
  [ "$("$PYRO" workspace exec "$WORKSPACE_ID" -- cat note.txt 2>/dev/null)" = "$(printf 'first line\npatched line')" ] || fail "patch not applied"
  "$PYRO" workspace diff "$WORKSPACE_ID"
  "$PYRO" workspace diff "$WORKSPACE_ID" --json | json "(d['summary']['added'], d['summary']['modified'])" | grep -qx "(1, 1)" || fail "diff counts"
  "$PYRO" workspace snapshot create "$WORKSPACE_ID" checkpoint
  "$PYRO" workspace service start "$WORKSPACE_ID" web --ready-file .web-ready -- sh -lc 'touch .web-ready && while true; do sleep 60; done'
  "$PYRO" workspace service list "$WORKSPACE_ID" | grep -qx 'web \[running\] cwd=/workspace' || fail "service not running"
  # Break things, then go back to the checkpoint.
  "$PYRO" workspace exec "$WORKSPACE_ID" -- sh -c 'rm -f note.txt && echo broken > src/app.py' 2>/dev/null
  "$PYRO" workspace reset "$WORKSPACE_ID" --snapshot checkpoint
  "$PYRO" workspace status "$WORKSPACE_ID" --json | json "(d['reset_count'], d['command_count'])" | grep -qx "(1, 0)" || fail "reset counters"
  "$PYRO" workspace service list "$WORKSPACE_ID" --json | json "[(s['state'], s['stop_reason']) for s in d['services']]" | grep -qx "\[('stopped', 'workspace_reset')\]" || fail "reset must stop services and say so"
  "$PYRO" workspace export "$WORKSPACE_ID" note.txt --output ./note.txt
  [ "$(cat note.txt)" = "$(printf 'first line\npatched line')" ] || fail "export after reset"
  "$PYRO" workspace stop "$WORKSPACE_ID"
  "$PYRO" workspace disk list "$WORKSPACE_ID"
  "$PYRO" workspace disk read "$WORKSPACE_ID" note.txt
  "$PYRO" workspace disk read "$WORKSPACE_ID" src/app.py --content-only | grep -qx 'print("hi")' || fail "disk read"
  "$PYRO" workspace disk export "$WORKSPACE_ID" --output ./workspace.ext4
  [ -s ./workspace.ext4 ] || fail "disk export"
  "$PYRO" workspace start "$WORKSPACE_ID"
  [ "$("$PYRO" workspace file read "$WORKSPACE_ID" note.txt --content-only)" = "$(printf 'first line\npatched line')" ] || fail "files lost across stop/disk/start"
  "$PYRO" workspace delete "$WORKSPACE_ID"
) || fail "editing loop"
rm -rf "$work"

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
