#!/usr/bin/env bash
# `make demo-fix`: the Claude fix loop on the bundled Flask example, offline.
# A scripted loopback server stands in for the Messages API (the real SDK talks to it):
# attempt 1 proposes a fix that breaks another test and adds an unused import, so the
# sandbox rejects it and the loop sends the evidence back; attempt 2 proposes the right
# fix, which is verified. The pull-request description is printed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin="$root/.venv/bin"
example="$here/flask-app-context"
work=$(mktemp -d /tmp/fixrunner-demo-fix.XXXXXX)
key="demo-key-not-a-real-one"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bash "$example/make-repo.sh" "$work/repo" >/dev/null
"$bin/python" "$root/tests/anthropic_fake.py" --script "$example/fix-demo/replies.json" \
  --api-key "$key" --port-file "$work/port" &
server=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

printf '\033[1m== runner fix on %s (error: %s)\033[0m\n' "the Flask example" \
  "RuntimeError: Working outside of application context"
set +e
# stderr is shown as it comes and kept (through tee), to catch a traceback in it
exec 3>&1
ANTHROPIC_API_KEY="$key" ANTHROPIC_BASE_URL="http://127.0.0.1:$port" \
  "$bin/runner" fix --repo "$work/repo" --error "$example/error-report.json" \
  --output-dir "$work/out" 2>&1 1>&3 3>&- | tee "$work/fix.err" >&2
code=${PIPESTATUS[0]}
exec 3>&-
set -e

if [ -f "$work/out/PR.md" ]; then
  printf '\n\033[1m== PR.md\033[0m\n'
  cat "$work/out/PR.md"
fi
statuses=$("$bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(" ".join(a["status"] for a in r["attempts"]))' "$work/out/result.json" 2>/dev/null || echo "no result")
echo
if grep -q "Traceback" "$work/fix.err"; then
  echo "demo-fix: a Python traceback reached the user"
  exit 1
fi
if [ "$code" -ne 0 ] || [ "$statuses" != "rejected verified" ]; then
  echo "demo-fix: expected attempts 'rejected verified' and exit 0, got '$statuses' (exit $code)"
  exit 1
fi
echo "demo-fix: attempt 1 rejected, attempt 2 verified, as the example expects"
