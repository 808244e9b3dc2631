#!/usr/bin/env bash
# `make demo-pr`: from a production error to a draft pull request, offline, from a clean state.
#
# The bundled Flask example crashes (`python scripts/seed_db.py`: RuntimeError: Working
# outside of application context) with the real Sentry SDK initialised at start-up, its
# DSN pointed at `runner serve` on loopback. The service groups the events, starts one fix
# job (the Messages API is the scripted loopback server of `make demo-fix`: attempt 1 is
# rejected, attempt 2 verified), commits the fix and its regression test on a new branch,
# pushes it to a bare git repository (the "remote"), and opens a draft PR through GitHub's
# REST API, served here by a loopback server that speaks it (tests/github_fake.py).
# Prints the PR's URL and the time from the first event to the PR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin="$root/.venv/bin"
example="$here/flask-app-context"
work=$(mktemp -d /tmp/fixrunner-demo-pr.XXXXXX)
anthropic_key="demo-key-not-a-real-one"
github_token="demo-github-token-not-a-real-one"
dsn_key="5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "demo-pr: $1 never appeared" >&2; exit 1; }

printf '\033[1m== the scene\033[0m\n'
bash "$example/make-repo.sh" "$work/repo" >/dev/null
git clone -q --bare "$work/repo" "$work/remote.git"
echo "repository   $work/repo (remote: $work/remote.git)"

"$bin/python" "$root/tests/anthropic_fake.py" --script "$example/fix-demo/replies.json" \
  --api-key "$anthropic_key" --port-file "$work/anthropic.port" &
pids+=($!)
"$bin/python" "$root/tests/github_fake.py" --repo acme/orders --remote "$work/remote.git" \
  --token "$github_token" --port-file "$work/github.port" &
pids+=($!)
wait_file "$work/anthropic.port"
wait_file "$work/github.port"
port=$("$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat >"$work/runner.toml" <<EOF
[service]
port = $port
allow_local_repos = true
store_path = "$work/service.db"
tokens_file = "$work/tokens.json"

[fixer]
max_retries = 1

[github]
api_url = "http://127.0.0.1:$(cat "$work/github.port")"
public_url = "http://127.0.0.1:$port"

[projects."1"]
key = "$dsn_key"
repo = "$work/repo"
push_url = "$work/remote.git"
branch = "main"
open_pr = true
github_repo = "acme/orders"
labels = ["fixrunner", "production-error"]
EOF
api_token=$("$bin/runner" --config "$work/runner.toml" token create --name demo 2>/dev/null)

ANTHROPIC_API_KEY="$anthropic_key" ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat "$work/anthropic.port")" \
  GITHUB_TOKEN="$github_token" "$bin/runner" --config "$work/runner.toml" serve \
  >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
echo "runner serve http://127.0.0.1:$port  (DSN http://$dsn_key@127.0.0.1:$port/1)"

printf '\n\033[1m== production: the app crashes three times, the Sentry SDK reports each\033[0m\n'
for _ in 1 2 3; do
  (cd "$work/repo" && SENTRY_DSN="http://$dsn_key@127.0.0.1:$port/1" PYTHONPATH="$root/tests/sentry_site" \
    "$bin/python" scripts/seed_db.py 2>&1 | grep -m1 '^RuntimeError') || true
done

printf '\n\033[1m== the runner: group → fix job → verified → branch → draft PR\033[0m\n'
"$bin/python" - "http://127.0.0.1:$port" "$api_token" "$work/remote.git" <<'EOF'
import subprocess, sys, time
import httpx

url, token, remote = sys.argv[1:]
auth = {"Authorization": f"Bearer {token}"}
deadline = time.monotonic() + 600
seen = None
while time.monotonic() < deadline:
    groups = httpx.get(f"{url}/v1/groups", headers=auth, timeout=10).json()["groups"]
    group = groups[0] if groups else None
    fix = group["fix"] if group else None
    state = (group and group["events"], fix and fix["status"])
    if state != seen:
        seen = state
        if group:
            print(f"group {group['id']}: {group['events']} event(s), fix job "
                  f"{group['fix_id'] or '-'} {fix['status'] if fix else ''}", flush=True)
    if fix and fix["status"] == "done":
        break
    time.sleep(1)
else:
    sys.exit("demo-pr: the fix job did not finish in 10 minutes")
result = fix["result"]
for attempt in result["attempts"]:
    print(f"  attempt {attempt['number']}: {attempt['status']}"
          + "".join(f"\n    - {r}" for r in attempt["reasons"][:2]))
pr = result.get("pr")
if result["status"] != "verified" or not pr or pr["state"] == "failed":
    sys.exit(f"demo-pr: no pull request: {result['summary']} {pr and pr['error']}")
log = subprocess.run(["git", "--git-dir", remote, "log", "-1", "--format=%h %an: %s", pr["branch"]],
                     capture_output=True, text=True, check=True).stdout.strip()
print(f"\nbranch       {pr['branch']} in the remote: {log}")
print(f"pull request {group['pr_url']} (draft, {pr['state']})")
print(f"first event → PR: {group['seconds_to_pr']:.1f} s "
      f"(fix job {result['seconds']:.1f} s over {len(result['attempts'])} attempt(s))")
EOF
