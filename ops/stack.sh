#!/usr/bin/env bash
# The local stack behind `make up`: installs what is missing, runs Kafka, ClickHouse,
# Postgres and Redis on loopback with all state under .stack/, then the agenttrace api and
# worker. Every step is idempotent, so `up` on a running stack only checks and returns.
#
#   ops/stack.sh up        servers + migrate + dev key + api + worker
#   ops/stack.sh services  servers only (no venv, no app)
#   ops/stack.sh down      stop the app, then the servers
#   ops/stack.sh status    one line per component
#   ops/stack.sh clean     down, then delete .stack
#   ops/stack.sh env       the app's environment, for `eval "$(ops/stack.sh env)"`
#   ops/stack.sh stop S    stop one server S (kafka, clickhouse, postgres, redis)
#   ops/stack.sh start S   start one server S and wait until it answers
#   ops/stack.sh restart S [DOWN_S]  stop S, keep it down DOWN_S seconds, start it again
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for part in lib install kafka clickhouse postgres redis app; do
  # shellcheck source=/dev/null
  source "$ROOT/ops/stack/$part.sh"
done

SERVERS=(kafka clickhouse postgres redis)
APPS=(api worker worker_2 worker_postgres)

# Two concurrent `make up` would race for the same ports and pid files; the lock is held
# on fd 9 until this script exits (spawn closes it in the daemons).
take_lock() {
  mkdir -p "$PIDS" "$LOGS"
  exec 9>"$STACK/.lock"
  flock -w 300 9 || die "another ops/stack.sh has held $STACK/.lock for 5 minutes"
}

start_servers() {
  local s
  # Launch all, then wait for all: the slow JVM start overlaps with the others.
  for s in "${SERVERS[@]}"; do "${s}_start"; done
  for s in "${SERVERS[@]}"; do "${s}_ready"; done
}

cmd_services() {
  install_apt
  install_kafka_jars
  start_servers
}

cmd_up() {
  install_apt
  install_kafka_jars
  install_venv
  install_native
  start_servers
  app_up
}

cmd_down() {
  local s
  for s in "${APPS[@]}" "${SERVERS[@]}"; do "${s}_stop"; done
}

# One server at a time, e.g. for the resilience tests that take ClickHouse away and back.
server_name() {
  local s
  for s in "${SERVERS[@]}"; do [[ $s != "${1:-}" ]] || return 0; done
  local IFS='|'
  die "usage: ops/stack.sh start|stop|restart ${SERVERS[*]}"
}

cmd_stop() { "${1}_stop"; }

cmd_start() { "${1}_start"; "${1}_ready"; }

# An outage of a known length: the stack lock is held throughout, so a concurrent `make up`
# waits instead of bringing the server back early.
cmd_restart() { "${1}_stop"; sleep "$2"; cmd_start "$1"; }

cmd_status() {
  local s
  for s in "${SERVERS[@]}" "${APPS[@]}"; do "${s}_status"; done
}

cmd_clean() {
  cmd_down
  # The Postgres cluster may live outside the repo (see postgres_home).
  if [[ -L $STACK/postgres ]]; then
    local outside
    outside=$(readlink -f "$STACK/postgres")
    rm -rf "$outside"
    rmdir "$(dirname "$outside")" 2>/dev/null || true
  fi
  rm -rf "$STACK"
  say "clean: removed $STACK"
}

main() {
  local cmd=${1:-up}
  case $cmd in
    up | services | down | clean) take_lock; "cmd_$cmd" ;;
    start | stop) server_name "${2:-}"; take_lock; "cmd_$cmd" "$2" ;;
    restart)
      server_name "${2:-}"
      [[ ${3:-0} =~ ^[0-9]+$ ]] || die "usage: ops/stack.sh restart SERVER [DOWN_SECONDS]"
      take_lock; cmd_restart "$2" "${3:-0}" ;;
    status) cmd_status ;;
    env) app_env_print ;;
    *) die "usage: ops/stack.sh up|services|down|status|clean|env|start|stop|restart SERVER" ;;
  esac
}

main "$@"
