#!/usr/bin/env bash
# Make sure a Docker engine answers and the base-image tools are installed.
# Idempotent: when the engine answers and debootstrap is present, it does nothing slow.
# It starts dockerd with no bridge and no iptables rules: the runner never needs a
# network, so nothing a sandbox runs can send a packet off the machine.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
pidfile=/var/run/fixrunner-dockerd.pid
logfile=/var/log/fixrunner-dockerd.log

need_pkgs=()
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)

if docker info >/dev/null 2>&1; then
  say "Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  engine_up=1
else
  engine_up=0
  command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
fi

if [ "${#need_pkgs[@]}" -gt 0 ] || [ "$engine_up" = 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    if [ "$engine_up" = 0 ]; then
      echo "setup: no Docker engine answers and you are not root: start one (sudo make setup, or dockerd yourself) or set DOCKER_HOST, then run make setup again" >&2
    else
      echo "setup: missing ${need_pkgs[*]} and you are not root: sudo apt-get install ${need_pkgs[*]}, then run make setup again" >&2
    fi
    exit 1
  fi
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if [ "$engine_up" = 0 ]; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    echo "setup: DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST" >&2
    exit 1
  fi
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "dockerd (pid $(cat "$pidfile")) is running but not answering yet; waiting"
  else
    say "starting dockerd in the background (log: $logfile)"
    # containerd is started by dockerd itself when it is not running as a service.
    nohup dockerd --bridge=none --iptables=false --ip-masq=false \
      --pidfile "$pidfile" --log-level=warn >"$logfile" 2>&1 &
  fi
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "setup: dockerd did not come up within 60 s; last lines of $logfile:" >&2
    tail -n 20 "$logfile" >&2 || true
    exit 1
  fi
  say "Docker engine started ($(docker version --format '{{.Server.Version}}'), no bridge network)"
fi
