#!/usr/bin/env bash
# A local cluster on loopback, beside the single-node stack (which keeps its ports and state):
# 3 Kafka brokers (KRaft, each its own controller too), ZooKeeper, 4 ClickHouse 18.16 servers
# as 2 shards x 2 replicas, Postgres, Redis, 2 api processes and 2 workers per stage. State
# lives under .stack/cluster/; every step is idempotent.
#
#   ops/cluster.sh up          everything, then migrate, a dev key and the app processes
#   ops/cluster.sh down        the app, then the servers
#   ops/cluster.sh status      one line per process
#   ops/cluster.sh env         the app's environment, for `eval "$(ops/cluster.sh env)"`
#   ops/cluster.sh stop P      stop one process P (kafka_1, ch_1, worker_ch_2, api_1, ...)
#   ops/cluster.sh start P...  start processes P (together) and wait until they answer
#   ops/cluster.sh kill P      SIGKILL one process P (fault tests)
#   ops/cluster.sh clean       down, then delete .stack/cluster
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=/dev/null
source "$ROOT/ops/stack/lib.sh"
# shellcheck source=/dev/null
source "$ROOT/ops/stack/install.sh"
# The single-node stack's helpers, pointed at the cluster's own directory.
BASE_STACK=$ROOT/.stack
STACK=$BASE_STACK/cluster
PIDS=$STACK/pids
LOGS=$STACK/logs
SETUP_LOG=$LOGS/setup.log
CLUSTER_TEMPLATES=$ROOT/ops/cluster
READY_TIMEOUT=${STACK_READY_TIMEOUT:-120}
CLUSTER_NAME=agenttrace
AGENTTRACE=$ROOT/.venv/bin/agenttrace

ZK_PORT=29218
KAFKA_NODES=(kafka_1 kafka_2 kafka_3)
CH_NODES=(ch_1 ch_2 ch_3 ch_4)
PG_PORT=29432
REDIS_PORT=29379
APPS=(api_1 api_2 worker_ch_1 worker_ch_2 worker_pg_1 worker_pg_2)

kafka_port() { echo $((29092 + 100 * (${1#kafka_} - 1))); }           # 29092 29192 29292
kafka_controller_port() { echo $(($(kafka_port "$1") + 1)); }           # 29093 29193 29293
ch_tcp_port() { echo $((29000 + ${1#ch_})); }                           # 29001..29004
ch_http_port() { echo $((29122 + ${1#ch_})); }                          # 29123..29126
ch_interserver_port() { echo $((29008 + ${1#ch_})); }                   # 29009..29012
ch_shard() { echo $(((${1#ch_} + 1) / 2)); }                            # 1 1 2 2

# App processes: name -> port, ClickHouse entry servers. Set 1 enters through ch_2, set 2
# through ch_4 (the second replicas, so taking a shard's first replica away, the one in_order
# sends reads and inserts to, does not also take a client's server away), each failing over
# to the other's.
app_port() {
  case $1 in
    api_1) echo 29080 ;; api_2) echo 29180 ;;
    worker_ch_1) echo 29081 ;; worker_ch_2) echo 29181 ;;
    worker_pg_1) echo 29082 ;; worker_pg_2) echo 29182 ;;
  esac
}
app_ch_servers() {
  if [[ $1 == *_1 ]]; then echo "127.0.0.1:$(ch_tcp_port ch_2),127.0.0.1:$(ch_tcp_port ch_4)"
  else echo "127.0.0.1:$(ch_tcp_port ch_4),127.0.0.1:$(ch_tcp_port ch_2)"; fi
}

BOOTSTRAP=127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292

cluster_env() {
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
  export AGENTTRACE_KAFKA_BOOTSTRAP=$BOOTSTRAP
  export AGENTTRACE_TOPIC_REPLICATION=3
  export AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS=2
  export AGENTTRACE_TOPIC_PARTITIONS=${AGENTTRACE_TOPIC_PARTITIONS:-8}
  export AGENTTRACE_CLICKHOUSE_CLUSTER=$CLUSTER_NAME
  export AGENTTRACE_CLICKHOUSE_URL=clickhouse://default:@$(app_ch_servers any_1)/agenttrace
  export AGENTTRACE_POSTGRES_DSN=postgresql://agenttrace:agenttrace@127.0.0.1:$PG_PORT/agenttrace
  export AGENTTRACE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
}

cluster_env_print() {
  local v
  cluster_env
  for v in PYTHONPATH AGENTTRACE_KAFKA_BOOTSTRAP AGENTTRACE_TOPIC_REPLICATION AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS \
    AGENTTRACE_TOPIC_PARTITIONS AGENTTRACE_CLICKHOUSE_CLUSTER AGENTTRACE_CLICKHOUSE_URL AGENTTRACE_POSTGRES_DSN \
    AGENTTRACE_REDIS_URL; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# render_with SRC DST KEY=VALUE...: @KEY@ placeholders, pure bash.
render_with() {
  local src=$1 dst=$2 text pair
  shift 2
  text=$(<"$src")
  for pair in "$@"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  printf '%s\n' "$text" >"$dst.tmp" && mv -f "$dst.tmp" "$dst"
}

# --- ZooKeeper ---------------------------------------------------------------------------

ZK_PATTERN=org.apache.zookeeper.server.quorum.QuorumPeerMain

install_zookeeper_jars() {
  local pom=$CLUSTER_TEMPLATES/zookeeper-pom.xml libs=$STACK/zookeeper/libs stamp=$STACK/zookeeper/libs.sha256 sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$sum" ]] && compgen -G "$libs/zookeeper-*.jar" >/dev/null; then
    return 0
  fi
  rm -rf "$libs"
  mkdir -p "$libs"
  quiet mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime
  printf '%s\n' "$sum" >"$stamp"
  say "zookeeper jars: resolved"
}

zookeeper_start() {
  local dir=$STACK/zookeeper pid
  if pid=$(pid_of zookeeper "$ZK_PATTERN"); then
    say "zookeeper: already running (pid $pid)"
    return 0
  fi
  require_free_port zookeeper "$ZK_PORT"
  mkdir -p "$dir/data"
  render_with "$CLUSTER_TEMPLATES/zoo.cfg.in" "$dir/zoo.cfg" DIR="$dir" PORT="$ZK_PORT"
  spawn zookeeper "$LOGS/zookeeper.log" java -Xms64m -Xmx192m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlogback.configurationFile="$CLUSTER_TEMPLATES/zookeeper-logback.xml" \
    -cp "$dir/libs/*" "$ZK_PATTERN" "$dir/zoo.cfg"
  say "zookeeper: launched"
}

# `ruok` answers imok even while the server failed to load its database; `srvr` names a mode
# only once it serves.
zookeeper_ping() {
  local answer
  answer=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; printf srvr >&3; cat <&3" 2>/dev/null) || return 1
  [[ $answer == *"Mode: standalone"* ]]
}

zookeeper_ready() { wait_ready zookeeper "$ZK_PATTERN" "$LOGS/zookeeper.log" zookeeper_ping; }
zookeeper_stop() { stop_pid zookeeper "$ZK_PATTERN" TERM; }
zookeeper_status() { status_line zookeeper "$ZK_PATTERN"; }

# --- Kafka -------------------------------------------------------------------------------

KAFKA_PATTERN=kafka.Kafka

kafka_node_start() {
  local name=$1 dir=$STACK/kafka/$1 props log=$LOGS/$1.log pid id=${1#kafka_}
  props=$dir/server.properties
  if pid=$(pid_of "$name" "$KAFKA_PATTERN"); then
    say "$name: already running (pid $pid)"
    return 0
  fi
  require_free_port "$name" "$(kafka_port "$name")"
  require_free_port "$name-controller" "$(kafka_controller_port "$name")"
  mkdir -p "$dir/data"
  render_with "$CLUSTER_TEMPLATES/kafka-server.properties.in" "$props" NAME="$name" ID="$id" DIR="$dir" \
    PORT="$(kafka_port "$name")" CONTROLLER_PORT="$(kafka_controller_port "$name")"
  # One cluster id for the three; each log dir is formatted once.
  [[ -s $STACK/kafka/cluster.id ]] ||
    java -cp "$STACK/kafka/libs/*" kafka.tools.StorageTool random-uuid 2>>"$SETUP_LOG" >"$STACK/kafka/cluster.id"
  if [[ ! -f $dir/data/meta.properties ]]; then
    quiet java -cp "$STACK/kafka/libs/*" kafka.tools.StorageTool format -t "$(<"$STACK/kafka/cluster.id")" \
      -c "$props" --ignore-formatted
  fi
  echo $(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1)) >"$dir/log-offset"
  spawn "$name" "$log" java -Xms128m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/ops/stack/kafka/log4j2.yaml" \
    -cp "$STACK/kafka/libs/*" kafka.Kafka "$props"
  say "$name: launched"
}

kafka_node_started() {
  local name=$1 offset=1
  [[ -s $STACK/kafka/$name/log-offset ]] && offset=$(<"$STACK/kafka/$name/log-offset")
  grep -q 'Kafka Server started' < <(tail -c "+$offset" "$LOGS/$name.log") && port_open "$(kafka_port "$name")"
}

kafka_node_ready() { wait_ready "$1" "$KAFKA_PATTERN" "$LOGS/$1.log" kafka_node_started "$1"; }

# --- ClickHouse --------------------------------------------------------------------------

CH_PATTERN=clickhouse-server

ch_node_start() {
  local name=$1 dir=$STACK/clickhouse/$1 pid
  if pid=$(pid_of "$name" "$CH_PATTERN"); then
    say "$name: already running (pid $pid)"
    return 0
  fi
  require_free_port "$name" "$(ch_tcp_port "$name")"
  require_free_port "$name-http" "$(ch_http_port "$name")"
  require_free_port "$name-interserver" "$(ch_interserver_port "$name")"
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
  render_with "$CLUSTER_TEMPLATES/clickhouse-config.xml.in" "$dir/config.xml" NAME="$name" DIR="$dir" LOGS="$LOGS" \
    TCP_PORT="$(ch_tcp_port "$name")" HTTP_PORT="$(ch_http_port "$name")" \
    INTERSERVER_PORT="$(ch_interserver_port "$name")" SHARD="$(ch_shard "$name")" ZK_PORT="$ZK_PORT" \
    CLUSTER="$CLUSTER_NAME"
  cp "$CLUSTER_TEMPLATES/clickhouse-users.xml" "$dir/users.xml"
  rm -f "$PIDS/$name.pid"
  (cd "$dir" && /usr/sbin/clickhouse-server --config-file="$dir/config.xml" \
    --pid-file="$PIDS/$name.pid" --daemon </dev/null >>"$LOGS/$name.err.log" 2>&1 9>&-) ||
    { log_tail "$LOGS/$name.err.log"; die "$name: failed to start"; }
  say "$name: launched"
}

ch_ping() { [[ $(curl -sf --max-time 2 "http://127.0.0.1:$(ch_http_port "$1")/ping") == Ok. ]]; }

ch_node_ready() {
  wait_for_pid_file "$1" "$CH_PATTERN" "$LOGS/$1.err.log"
  wait_ready "$1" "$CH_PATTERN" "$LOGS/$1.err.log" ch_ping "$1"
}

# --- Postgres and Redis ------------------------------------------------------------------

PG_PATTERN=bin/postgres

# Like the single node's (ops/stack/postgres.sh): in .stack/cluster/postgres when the postgres
# user can reach it, else under /var/lib/agenttrace with a symlink.
pg_home() {
  local link=$STACK/postgres home
  if [[ ! -e $link ]]; then
    if runuser -u postgres -- test -x "$STACK" && ((${#link} < 80)); then
      mkdir -p "$link"
    else
      home=/var/lib/agenttrace/$(printf '%s' "$STACK" | sha256sum | cut -c1-16)/postgres
      mkdir -p "$home"
      ln -sfn "$home" "$link"
    fi
  fi
  home=$(readlink -f "$link")
  mkdir -p "$home/run"
  chown postgres:postgres "$home" "$home/run"
  printf '%s\n' "$home"
}

pg_start() {
  local bin home data pid conf
  if pid=$(pid_of postgres "$PG_PATTERN"); then
    say "postgres: already running (pid $pid)"
    return 0
  fi
  require_free_port postgres "$PG_PORT"
  bin=$(postgres_bin)
  home=$(pg_home)
  data=$home/data
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf "$data"
    quiet as_postgres "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
      --auth-local=peer --auth-host=scram-sha-256
    printf "\ninclude 'agenttrace.conf'\n" >>"$data/postgresql.conf"
  fi
  postgres_clear_stale_lock "$data" "$home"
  conf=$(<"$ROOT/ops/stack/postgres/agenttrace.conf.in")
  conf=${conf//@PGHOME@/$home}
  printf '%s\n' "${conf//port = 5432/port = $PG_PORT}" >"$data/agenttrace.conf"
  cp "$ROOT/ops/stack/postgres/pg_hba.conf" "$data/pg_hba.conf"
  chown postgres:postgres "$data/agenttrace.conf" "$data/pg_hba.conf"
  (cd "$home" && spawn postgres "$LOGS/postgres.log" \
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data")
  say "postgres: launched"
}

pg_ready() {
  local bin home
  bin=$(postgres_bin)
  wait_ready postgres "$PG_PATTERN" "$LOGS/postgres.log" "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
  home=$(readlink -f "$STACK/postgres")
  as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$home/run" -p "$PG_PORT" -U postgres -d postgres \
    >>"$SETUP_LOG" 2>&1 <<'SQL' || { log_tail "$SETUP_LOG"; die "postgres: creating role/database agenttrace failed"; }
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agenttrace') THEN
    CREATE ROLE agenttrace LOGIN CREATEDB PASSWORD 'agenttrace';
  END IF;
END
$$;
SELECT 'CREATE DATABASE agenttrace OWNER agenttrace'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'agenttrace') \gexec
SQL
}

REDIS_PATTERN=redis-server

redis_node_start() {
  local pid
  if pid=$(pid_of redis "$REDIS_PATTERN"); then
    say "redis: already running (pid $pid)"
    return 0
  fi
  require_free_port redis "$REDIS_PORT"
  mkdir -p "$STACK/redis"
  quiet redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STACK/redis" \
    --daemonize yes --pidfile "$PIDS/redis.pid" --logfile "$LOGS/redis.log" \
    --save '' --appendonly no 9>&-
  say "redis: launched"
}

redis_node_ready() {
  wait_for_pid_file redis "$REDIS_PATTERN" "$LOGS/redis.log"
  wait_ready redis "$REDIS_PATTERN" "$LOGS/redis.log" \
    bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping 2>/dev/null) == PONG ]]"
}

# --- the app -----------------------------------------------------------------------------

app_pattern() { [[ $1 == api_* ]] && echo "bin/agenttrace api" || echo "bin/agenttrace worker"; }

app_command() {
  local port
  port=$(app_port "$1")
  case $1 in
    # OTLP/gRPC beside HTTP, 337 above it (29417, 29517): 4317 is the single node's.
    api_*) echo "$AGENTTRACE api --port $port --grpc-port $((port + 337))" ;;
    worker_ch_*) echo "$AGENTTRACE worker --stage clickhouse --port $port" ;;
    worker_pg_*) echo "nice -n 10 $AGENTTRACE worker --stage postgres --port $port" ;;
  esac
}

app_node_start() {
  local name=$1 pid cmd
  if pid=$(pid_of "$name" "$(app_pattern "$name")"); then
    say "$name: already running (pid $pid)"
    return 0
  fi
  require_free_port "$name" "$(app_port "$name")"
  [[ $name != api_* ]] || require_free_port "$name" $(($(app_port "$name") + 337))
  read -r -a cmd <<<"$(app_command "$name")"
  AGENTTRACE_CLICKHOUSE_URL=clickhouse://default:@$(app_ch_servers "$name")/agenttrace \
    spawn "$name" "$LOGS/$name.log" "${cmd[@]}"
  say "$name: launched"
}

app_node_ready() {
  wait_ready "$1" "$(app_pattern "$1")" "$LOGS/$1.log" app_readyz "$(app_port "$1")"
}

app_readyz() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/readyz") == 200 ]]; }

dev_key() {
  local key=$STACK/dev-key.json
  if [[ -s $key ]] && grep -q public_key "$key"; then
    return 0
  fi
  timeout 60 "$AGENTTRACE" keys create --project dev --json >"$key.tmp" 2>>"$SETUP_LOG" </dev/null ||
    { log_tail "$SETUP_LOG"; die "dev key: 'agenttrace keys create' failed"; }
  mv -f "$key.tmp" "$key"
  say "dev key: created ($key)"
}

admin_token() {
  local token=$STACK/admin-token
  [[ -s $token ]] ||
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$token.tmp" && mv -f "$token.tmp" "$token")
  export AGENTTRACE_ADMIN_TOKEN=${AGENTTRACE_ADMIN_TOKEN:-$(<"$token")}
}

# --- one process by name -----------------------------------------------------------------

proc_pattern() {
  case $1 in
    zookeeper) echo "$ZK_PATTERN" ;;
    kafka_[123]) echo "$KAFKA_PATTERN" ;;
    ch_[1234]) echo "$CH_PATTERN" ;;
    postgres) echo "$PG_PATTERN" ;;
    redis) echo "$REDIS_PATTERN" ;;
    api_[12] | worker_ch_[12] | worker_pg_[12]) app_pattern "$1" ;;
    *) die "unknown cluster process '$1'" ;;
  esac
}

proc_launch() {
  case $1 in
    zookeeper) zookeeper_start ;;
    kafka_*) kafka_node_start "$1" ;;
    ch_*) ch_node_start "$1" ;;
    postgres) pg_start ;;
    redis) redis_node_start ;;
    *) cluster_env; admin_token; app_node_start "$1" ;;
  esac
}

proc_ready() {
  case $1 in
    zookeeper) zookeeper_ready ;;
    kafka_*) kafka_node_ready "$1" ;;
    ch_*) ch_node_ready "$1" ;;
    postgres) pg_ready ;;
    redis) redis_node_ready ;;
    *) app_node_ready "$1" ;;
  esac
}

# Launch all, then wait for all: processes started together start in parallel.
proc_start() {
  local n
  for n in "$@"; do proc_launch "$n"; done
  for n in "$@"; do proc_ready "$n"; done
}

proc_stop() {
  local sig=TERM
  [[ $1 == postgres ]] && sig=INT
  stop_pid "$1" "$(proc_pattern "$1")" "$sig"
}

proc_kill() {
  local pid
  pid=$(pid_of "$1" "$(proc_pattern "$1")") || { say "$1: not running"; return 0; }
  kill -KILL "$pid"
  while proc_alive "$pid"; do sleep 0.1; done
  say "$1: killed (pid $pid)"
}

all_servers() { echo zookeeper "${KAFKA_NODES[@]}" "${CH_NODES[@]}" postgres redis; }

# --- commands ----------------------------------------------------------------------------

cmd_up() {
  local n
  install_apt
  install_kafka_jars
  install_zookeeper_jars
  [[ -x $AGENTTRACE ]] || die "app: $AGENTTRACE is missing; run make up (it installs the venv) first"
  # Launch all, then wait for all: the JVM starts overlap.
  zookeeper_start
  for n in "${KAFKA_NODES[@]}"; do kafka_node_start "$n"; done
  pg_start
  redis_node_start
  zookeeper_ready
  for n in "${CH_NODES[@]}"; do ch_node_start "$n"; done
  for n in "${KAFKA_NODES[@]}"; do kafka_node_ready "$n"; done
  for n in "${CH_NODES[@]}"; do ch_node_ready "$n"; done
  pg_ready
  redis_node_ready
  say "servers: ready"
  cluster_env
  quiet timeout 300 "$AGENTTRACE" migrate
  say "migrate: done"
  for n in "${CH_NODES[@]}"; do clickhouse_spread_parts "*" "$STACK/clickhouse/$n/data"; done
  dev_key
  admin_token
  for n in "${APPS[@]}"; do app_node_start "$n"; done
  for n in "${APPS[@]}"; do app_node_ready "$n"; done
  say "cluster: up (addresses in README.md, 'Cluster mode'; key in $STACK/dev-key.json)"
}

cmd_down() {
  local n
  for n in "${APPS[@]}" "${CH_NODES[@]}" "${KAFKA_NODES[@]}" zookeeper postgres redis; do proc_stop "$n"; done
}

cmd_status() {
  local n
  for n in $(all_servers) "${APPS[@]}"; do status_line "$n" "$(proc_pattern "$n")"; done
}

cmd_clean() {
  cmd_down
  if [[ -L $STACK/postgres ]]; then rm -rf "$(readlink -f "$STACK/postgres")"; fi
  rm -rf "$STACK"
  say "clean: removed $STACK"
}

take_lock() {
  # .stack may be a symlink to a shared stack: the cluster's state must not land there.
  [[ ! -L $BASE_STACK ]] || die ".stack is a symlink ($(readlink "$BASE_STACK")); the cluster keeps its state in a real .stack/cluster"
  mkdir -p "$PIDS" "$LOGS"
  exec 9>"$STACK/.lock"
  flock -w 300 9 || die "another ops/cluster.sh has held $STACK/.lock for 5 minutes"
}

# The single node's postgres helpers (postgres_bin, as_postgres, postgres_clear_stale_lock).
# shellcheck source=/dev/null
source "$ROOT/ops/stack/postgres.sh"
# shellcheck source=stack/clickhouse.sh
source "$ROOT/ops/stack/clickhouse.sh"  # clickhouse_spread_parts; its single server's functions go unused

main() {
  local cmd=${1:-up} p
  case $cmd in
    up | down | clean) take_lock; "cmd_$cmd" ;;
    start)
      (($# > 1)) || die "usage: ops/cluster.sh start PROCESS..."
      for p in "${@:2}"; do proc_pattern "$p" >/dev/null; done
      take_lock; proc_start "${@:2}" ;;
    stop) proc_pattern "${2:-}" >/dev/null; take_lock; proc_stop "$2" ;;
    kill) proc_pattern "${2:-}" >/dev/null; proc_kill "$2" ;;
    status) cmd_status ;;
    env) cluster_env_print ;;
    *) die "usage: ops/cluster.sh up|down|status|clean|env|start|stop|kill PROCESS" ;;
  esac
}

main "$@"
