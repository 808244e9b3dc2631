#!/usr/bin/env bash
# Make sure RabbitMQ (the Celery executor's broker) is installed and answers on loopback.
# Idempotent: when 127.0.0.1:5672 answers, it does nothing slow.
# The node listens on 127.0.0.1 only, and so do its Erlang distribution port and epmd:
# nothing here is reachable from another machine. consumer_timeout is longer than the
# longest job ([celery] task_time_limit_s, 1 h by default), so a running job is never
# taken back and handed to a second worker.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
port="${FIXRUNNER_BROKER_PORT:-5672}"
dist_port="${FIXRUNNER_BROKER_DIST_PORT:-25672}"
base=/var/lib/rabbitmq/fixrunner
logfile=/var/log/fixrunner-rabbitmq.log

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if answers; then
  say "RabbitMQ answers on 127.0.0.1:$port"
  exit 0
fi

if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: rabbitmq-server is missing and you are not root: sudo apt-get install rabbitmq-server, then run make setup again" >&2
    exit 1
  fi
  say "installing Debian package: rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
  # Its package may have started a node listening on every address; ours replaces it.
  if answers; then
    say "RabbitMQ answers on 127.0.0.1:$port (started by its package)"
    exit 0
  fi
fi

if [ "${FIXRUNNER_BROKER_INSTALL_ONLY:-0}" = 1 ]; then
  say "rabbitmq-server installed (not started: FIXRUNNER_BROKER_INSTALL_ONLY=1)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: no broker answers on 127.0.0.1:$port and you are not root: start RabbitMQ yourself, or run make setup as root" >&2
  exit 1
fi

mkdir -p "$base"
cat >"$base/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
consumer_timeout = 7200000
CONF
echo '[].' >"$base/enabled_plugins"
chown -R rabbitmq:rabbitmq "$base"
touch "$logfile" && chown rabbitmq:rabbitmq "$logfile"

say "starting RabbitMQ on 127.0.0.1:$port (log: $logfile)"
# runuser keeps the node off root; env passes the loopback-only settings through.
nohup runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
  ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_NODENAME=fixrunner@localhost \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODE_PORT="$port" \
  RABBITMQ_DIST_PORT="$dist_port" \
  RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$base/mnesia" \
  RABBITMQ_LOG_BASE="$base/log" \
  RABBITMQ_LOGS=- \
  RABBITMQ_PID_FILE="$base/rabbit.pid" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  /usr/lib/rabbitmq/bin/rabbitmq-server >>"$logfile" 2>&1 &

for _ in $(seq 1 240); do
  if answers; then
    say "RabbitMQ started (pid $(cat "$base/rabbit.pid" 2>/dev/null || echo '?')), amqp://guest@127.0.0.1:$port//"
    exit 0
  fi
  sleep 0.25
done
echo "setup: RabbitMQ did not answer within 60 s; last lines of $logfile:" >&2
tail -n 20 "$logfile" >&2 || true
exit 1
