#!/usr/bin/env bash
# Start or stop N private Docker engines on this machine, each with the base image.
#   scripts/multi-engine.sh up 2 /tmp/fxr-engines   → prints each engine's DOCKER_HOST
#   scripts/multi-engine.sh down /tmp/fxr-engines   → stops them by PID, removes the folder
# Each is `dockerd --host unix://DIR/hN/docker.sock` with its own data root, exec root
# (and so its own containerd), no bridge and no iptables rules. Needs root and `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  up) exec .venv/bin/python -m runner.distributed.engines up --count "${2:-2}" --dir "${3:-/tmp/fxr-engines}" ;;
  down) exec .venv/bin/python -m runner.distributed.engines down --dir "${2:-/tmp/fxr-engines}" ;;
  *) echo "usage: $0 up [N] [DIR] | down [DIR]" >&2; exit 2 ;;
esac
