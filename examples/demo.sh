#!/usr/bin/env bash
# `make demo`: verify-patch on the bundled Flask example's three candidates, offline.
# The production bug: scripts/seed_db.py dies with
#   RuntimeError: Working outside of application context.
# Each candidate is checked with the repository's tests and flake8, and the first also
# with the script itself run before and after the patch (--repro).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin="$root/.venv/bin"
example="$here/flask-app-context"
work=$(mktemp -d /tmp/fixrunner-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

bash "$example/make-repo.sh" "$work/repo" >/dev/null
cd "$root"

failures=0
run() {
  local name=$1 expected=$2 what=$3
  shift 3
  local want
  case $expected in verified) want=0 ;; rejected) want=1 ;; *) want=2 ;; esac
  printf '\n\033[1m== candidate %s: %s (expected: %s)\033[0m\n' "$name" "$what" "$expected"
  set +e
  # stderr is shown as it comes and kept (through tee), to catch a traceback in it
  exec 3>&1
  "$bin/verify-patch" --repo "$work/repo" --patch "$example/candidates/$name.diff" \
    --output "$work/$name.json" "$@" 2>&1 1>&3 3>&- | tee "$work/$name.err" >&2
  code=${PIPESTATUS[0]}
  exec 3>&-
  set -e
  got=$("$bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' \
    "$work/$name.json" 2>/dev/null || echo "no verdict")
  if [ "$got" != "$expected" ] || [ "$code" -ne "$want" ]; then
    echo "!! candidate $name: expected $expected (exit $want), got $got (exit $code)"
    failures=$((failures + 1))
  fi
  if grep -q "Traceback" "$work/$name.err"; then
    echo "!! candidate $name: a Python traceback reached the user"
    failures=$((failures + 1))
  fi
}

run good verified "the app_context() fix with a regression test" \
  --repro "python scripts/seed_db.py" \
  --expect-error "RuntimeError: Working outside of application context"
run weaken-test rejected "hides the error and deletes asserts"
run breaks-other rejected "fixes it, breaks another test, unused import"

echo
if [ "$failures" -ne 0 ]; then
  echo "demo: $failures verdict(s), exit code(s) or traceback(s) differ from what the example expects"
  exit 1
fi
echo "demo: all three verdicts are as expected (verified, rejected, rejected)"
