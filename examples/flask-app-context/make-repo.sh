#!/usr/bin/env bash
# Create the Flask app-context example as a git repository with one deterministic commit.
#
#   examples/flask-app-context/make-repo.sh TARGET_DIR
#
# TARGET_DIR must not exist or be empty. The candidates/ and fix-demo/ folders,
# error-report.json and this script are not part of the repository. Author, committer
# and dates are fixed, so the commit id is the same on every machine (the demo and the
# tests rely on that). The date is after the release of every pinned requirement, so
# resolving "as of the commit date" works.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 TARGET_DIR" >&2
    exit 2
fi

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="$1"

if [[ -e "$target" && -n "$(ls -A "$target")" ]]; then
    echo "error: $target exists and is not empty" >&2
    exit 2
fi
mkdir -p "$target"

tar -C "$src" \
    --exclude=./candidates --exclude=./make-repo.sh \
    --exclude=./error-report.json --exclude=./fix-demo \
    --exclude='__pycache__' --exclude='*.pyc' --exclude=.pytest_cache --exclude='*.db' \
    --exclude=.venv --exclude=.git \
    -cf - . | tar -C "$target" -xf -

# File modes go into the tree id: normalise them so a checkout's umask cannot change it.
find "$target" -type d -exec chmod 755 {} +
find "$target" -type f -exec chmod 644 {} +

export GIT_AUTHOR_NAME="Fixrunner Demo" GIT_AUTHOR_EMAIL="demo@fixrunner.invalid"
export GIT_COMMITTER_NAME="Fixrunner Demo" GIT_COMMITTER_EMAIL="demo@fixrunner.invalid"
export GIT_AUTHOR_DATE="2026-10-01T12:00:00+00:00" GIT_COMMITTER_DATE="2026-10-01T12:00:00+00:00"
# Keep the user's global git configuration (hooks, signing, templates) out of it.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

git_() { git -C "$target" -c core.hooksPath=/dev/null -c commit.gpgsign=false "$@"; }
git_ init -q -b main --template=
git_ add -A
git_ commit -q -m "initial"
git_ rev-parse HEAD
