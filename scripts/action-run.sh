#!/usr/bin/env bash
# The step of the fixrunner GitHub Action (action.yml): verify a pull request's fix.
#
# Reads the action's inputs from INPUT_* variables (action.yml maps them; never
# interpolated into the script, so no input can become shell code) and GitHub's own
# variables: GITHUB_WORKSPACE (the checkout), GITHUB_EVENT_PATH (the pull_request
# event), GITHUB_ACTION_PATH (this action's checkout), RUNNER_TEMP, GITHUB_OUTPUT.
#
# Without a `patch` input, the candidate is the PR's diff base...head, computed with
# git in the workspace. The runner is installed from the action's checkout into a
# venv, unless FIXRUNNER_PYTHON names an interpreter that already has it (tests do).
# Exit status: verify-patch's (0 verified, 1 rejected, 2 error), after fail-on.
set -euo pipefail

die() {
    # a workflow command's message: %, CR and LF escaped, so an input cannot add commands
    local msg="$*"
    msg="${msg//%/%25}"
    msg="${msg//$'\r'/%0D}"
    msg="${msg//$'\n'/%0A}"
    echo "::error title=fixrunner::$msg"
    echo "verdict=error" >>"${GITHUB_OUTPUT:-/dev/null}"
    exit 2
}

workspace="${GITHUB_WORKSPACE:?GITHUB_WORKSPACE is not set}"
action_path="${GITHUB_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
reports="${FIXRUNNER_REPORTS_DIR:-${RUNNER_TEMP:-/tmp}/fixrunner-reports}"
fail_on="${INPUT_FAIL_ON:-rejected}"
case "$fail_on" in
    rejected | never) ;;
    *) die "fail-on must be 'rejected' or 'never', not '$fail_on'" ;;
esac
record_map="${INPUT_RECORD_MAP:-false}"
case "$record_map" in
    true | false) ;;
    *) die "record-map must be 'true' or 'false', not '$record_map'" ;;
esac
mkdir -p "$reports"

# ------------------------------------------------------------------ the interpreter

host_python="$(command -v python3 || true)"
[[ -n "$host_python" ]] || die "python3 (3.11+) is needed on the runner"

if [[ -n "${FIXRUNNER_PYTHON:-}" ]]; then
    python="$FIXRUNNER_PYTHON"
else
    # One venv per checkout and version of the action's sources: a persistent runner
    # reuses it, an ephemeral one builds it in about 20 s.
    key="$( (echo "$action_path" && cd "$action_path" && find pyproject.toml runner -type f -name '*.py' -print0 \
        | sort -z | xargs -0 sha256sum && sha256sum pyproject.toml) | sha256sum | cut -c1-16)"
    venv="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/fixrunner/venv-$key"
    # The stamp is written last: a venv left half-installed by a cancelled job is redone.
    if [[ ! -f "$venv/.fixrunner-installed" ]]; then
        echo "::group::Installing fixrunner into $venv"
        rm -rf "$venv"
        "$host_python" -m venv "$venv"
        # Editable: the runner finds its policies/ and images/ beside the package, in the
        # action's checkout; a plain install would leave them behind.
        "$venv/bin/pip" install --quiet --disable-pip-version-check --editable "$action_path"
        touch "$venv/.fixrunner-installed"
        echo "::endgroup::"
    fi
    python="$venv/bin/python"
fi

# ------------------------------------------------------------------ base and patch

event_field() {
    # event_field KEY...: a string inside the event JSON, or nothing
    "$host_python" - "${GITHUB_EVENT_PATH:-}" "$@" <<'PY'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
try:
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    for key in keys:
        value = value[key]
except (OSError, ValueError, KeyError, TypeError):
    sys.exit(0)
if isinstance(value, str):
    print(value)
PY
}

git_() { git -C "$workspace" -c core.hooksPath=/dev/null "$@"; }

ensure_commit() {
    # A shallow or partial checkout may lack the commit: fetch it by id once.
    if ! git_ cat-file -e "$1^{commit}" 2>/dev/null; then
        git_ fetch --quiet --no-tags origin "$1" || die "commit $1 is not in the checkout (use actions/checkout with fetch-depth: 0)"
    fi
}

pr_base="$(event_field pull_request base sha)"
pr_head="$(event_field pull_request head sha)"
base="${INPUT_BASE:-$pr_base}"
[[ -n "$base" ]] || die "no base revision: give the 'base' input or run on a pull_request event"

if [[ -n "${INPUT_PATCH:-}" ]]; then
    patch="$INPUT_PATCH"
    [[ "$patch" == /* ]] || patch="$workspace/$patch"
    [[ -f "$patch" ]] || die "patch file not found: ${INPUT_PATCH}"
else
    [[ -n "$pr_base" && -n "$pr_head" ]] || die "no 'patch' input and no pull_request event to take the diff from"
    ensure_commit "$pr_base"
    ensure_commit "$pr_head"
    patch="$reports/pr.diff"
    # base...head: the PR's own changes since it branched, as the PR page shows them
    git_ diff --binary --no-color --no-ext-diff --no-renames "$pr_base...$pr_head" >"$patch"
    [[ -s "$patch" ]] || die "the pull request's diff ($pr_base...$pr_head) is empty"
fi
ensure_commit "$base"

args=(--repo "$workspace" --base "$base" --patch "$patch"
    --format github --fail-on "$fail_on"
    --output "$reports/verdict.json" --junit "$reports/junit" --sarif "$reports/fixrunner.sarif")
if [[ -n "${INPUT_TEST_PATCH:-}" ]]; then
    test_patch="$INPUT_TEST_PATCH"
    [[ "$test_patch" == /* ]] || test_patch="$workspace/$test_patch"
    args+=(--test-patch "$test_patch")
fi
[[ -z "${INPUT_POLICY:-}" ]] || args+=(--policy "$INPUT_POLICY")
if [[ -n "${INPUT_CONFIG:-}" ]]; then
    config="$INPUT_CONFIG"
    [[ "$config" == /* ]] || config="$workspace/$config"
    args+=(--config "$config")
fi
while IFS= read -r command || [[ -n "$command" ]]; do
    command="${command%$'\r'}"
    [[ -z "${command//[[:space:]]/}" ]] || args+=(--repro "$command")
done <<<"${INPUT_REPRO:-}"
[[ -z "${INPUT_EXPECT_ERROR:-}" ]] || args+=(--expect-error "$INPUT_EXPECT_ERROR")
[[ "$record_map" == false ]] || args+=(--record-map)

{
    echo "reports-dir=$reports"
    echo "sarif=$reports/fixrunner.sarif"
} >>"${GITHUB_OUTPUT:-/dev/null}"

# Run from the reports folder, not the checkout: a runner.toml the pull request adds
# must not configure the runner (only the `config` input or RUNNER_CONFIG may).
status=0
(cd "$reports" && "$python" -c 'import sys; from runner.cli.main import verify_patch_main; sys.exit(verify_patch_main())' "${args[@]}") || status=$?

if [[ ! -s "$reports/verdict.json" ]]; then
    # verify-patch stopped before any verdict (bad usage, no engine): still say so
    echo "verdict=error" >>"${GITHUB_OUTPUT:-/dev/null}"
fi
exit "$status"
