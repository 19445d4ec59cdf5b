# The agenttrace processes: migrate, a development key, the api and the worker.

AGENTTRACE=$ROOT/.venv/bin/agenttrace
APP_PATTERN=bin/agenttrace

# Defaults match the servers above; a value already in the environment wins.
app_env() {
  export AGENTTRACE_KAFKA_BOOTSTRAP=${AGENTTRACE_KAFKA_BOOTSTRAP:-127.0.0.1:9092}
  export AGENTTRACE_CLICKHOUSE_URL=${AGENTTRACE_CLICKHOUSE_URL:-clickhouse://default:@127.0.0.1:9000/agenttrace}
  export AGENTTRACE_POSTGRES_DSN=${AGENTTRACE_POSTGRES_DSN:-postgresql://agenttrace:agenttrace@127.0.0.1:5432/agenttrace}
  export AGENTTRACE_REDIS_URL=${AGENTTRACE_REDIS_URL:-redis://127.0.0.1:6379/0}
}

app_env_print() {
  app_env
  local v
  for v in AGENTTRACE_KAFKA_BOOTSTRAP AGENTTRACE_CLICKHOUSE_URL AGENTTRACE_POSTGRES_DSN AGENTTRACE_REDIS_URL; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

app_up() {
  [[ -x $AGENTTRACE ]] || die "app: $AGENTTRACE not found (is agenttrace.cli written and the venv installed?); 'ops/stack.sh services' starts the servers alone"
  app_env
  quiet "$AGENTTRACE" migrate
  say "migrate: done"
  app_dev_key
  api_start
  worker_start
  api_ready
  worker_ready
  app_summary
}

# Stubs replaced below once the process functions are written.
api_stop() { stop_pid api "$APP_PATTERN api" TERM; }
worker_stop() { stop_pid worker "$APP_PATTERN worker" TERM; }
api_status() { status_line api "$APP_PATTERN api"; }
worker_status() { status_line worker "$APP_PATTERN worker"; }
