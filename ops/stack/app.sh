# The agenttrace processes: migrate, a development key, then the api and the workers.
# Each consumer stage runs in its own worker processes, as stages are meant to scale: the
# ClickHouse stage as two processes sharing its partitions, on 8081 (the worker of the
# monitoring guide) and 8083 (one Python process is bound to one core; two take ~12% more
# events/s on two cores), the Postgres stage on 8082 at a lower CPU priority, so on a small
# machine ingestion into ClickHouse comes first and the Postgres projection catches up when
# load drops.

AGENTTRACE=$ROOT/.venv/bin/agenttrace
DEV_KEY=$STACK/dev-key.json
ADMIN_TOKEN=$STACK/admin-token
API_LAUNCHED=
WORKER_LAUNCHED=
WORKER_2_LAUNCHED=
WORKER_POSTGRES_LAUNCHED=

# Defaults match the servers started here; a value already in the environment wins.
app_env() {
  export AGENTTRACE_KAFKA_BOOTSTRAP=${AGENTTRACE_KAFKA_BOOTSTRAP:-127.0.0.1:9092}
  export AGENTTRACE_CLICKHOUSE_URL=${AGENTTRACE_CLICKHOUSE_URL:-clickhouse://default:@127.0.0.1:9000/agenttrace}
  export AGENTTRACE_POSTGRES_DSN=${AGENTTRACE_POSTGRES_DSN:-postgresql://agenttrace:agenttrace@127.0.0.1:5432/agenttrace}
  export AGENTTRACE_REDIS_URL=${AGENTTRACE_REDIS_URL:-redis://127.0.0.1:6379/0}
  export AGENTTRACE_GRPC_ADDRESS=${AGENTTRACE_GRPC_ADDRESS:-127.0.0.1:4317}
}

app_env_print() {
  local v
  app_env
  for v in AGENTTRACE_KAFKA_BOOTSTRAP AGENTTRACE_CLICKHOUSE_URL AGENTTRACE_POSTGRES_DSN AGENTTRACE_REDIS_URL; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

app_up() {
  [[ -x $AGENTTRACE ]] || die "app: $AGENTTRACE is missing; the venv was not installed"
  app_env
  # Idempotent by contract, and cheap, so it runs on every `up`: a new migration applies
  # without anyone remembering to run it.
  # Bounded, like every wait here: a migration stuck on a server must fail CI, not hang it.
  quiet timeout 120 "$AGENTTRACE" migrate
  say "migrate: done"
  clickhouse_spread_parts
  app_dev_key
  api_start
  worker_start
  worker_2_start
  worker_postgres_start
  api_ready
  worker_ready
  worker_2_ready
  worker_postgres_ready
  app_summary
}

# One key per stack: written through a temp file so a failed run leaves no empty key behind.
app_dev_key() {
  if [[ -s $DEV_KEY ]] && dev_key_field public >/dev/null 2>&1; then
    say "dev key: exists ($DEV_KEY)"
    return 0
  fi
  timeout 60 "$AGENTTRACE" keys create --project dev --json >"$DEV_KEY.tmp" 2>>"$SETUP_LOG" </dev/null ||
    { log_tail "$SETUP_LOG"; die "dev key: 'agenttrace keys create' failed"; }
  mv -f "$DEV_KEY.tmp" "$DEV_KEY"
  dev_key_field public >/dev/null || die "dev key: no public key found in $DEV_KEY"
  say "dev key: created ($DEV_KEY)"
}

# dev_key_field public|secret: tolerant of the CLI's exact field names (publicKey,
# public_key, ...), at any depth, falling back to Langfuse-style pk-/sk- values.
dev_key_field() {
  python3 - "$DEV_KEY" "$1" <<'PY'
import json, sys
path, want = sys.argv[1], sys.argv[2]
prefix = {"public": "pk-", "secret": "sk-"}[want]
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
pairs = [(k, v) for k, v in walk(json.load(open(path))) if isinstance(v, str)]
hits = [v for k, v in pairs if want in k.lower() and "hash" not in k.lower()]
hits += [v for _, v in pairs if v.startswith(prefix)]
if not hits:
    sys.exit(1)
print(hits[0])
PY
}

# app_start NAME PORT [COMMAND...]: by default the CLI subcommand is the name; logs one JSON
# object per line to $LOGS/NAME.log.
app_start() {
  local name=$1 port=$2 pid
  shift 2
  (($#)) || set -- "$AGENTTRACE" "$name"
  if pid=$(pid_of "$name" "bin/agenttrace ${name%%_*}"); then
    say "$name: already running (pid $pid)"
    return 0
  fi
  require_free_port "$name" "$port"
  spawn "$name" "$LOGS/$name.log" "$@"
  printf -v "${name^^}_LAUNCHED" 1
}

app_readyz() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/readyz") == 200 ]]; }

app_ready() {
  local name=$1 port=$2 launched
  launched=${name^^}_LAUNCHED
  wait_ready "$name" "bin/agenttrace ${name%%_*}" "$LOGS/$name.log" app_readyz "$port"
  [[ -z ${!launched} ]] || say "$name: started (pid $(pid_of "$name" "bin/agenttrace ${name%%_*}"), http://127.0.0.1:$port)"
}

# The admin API (POST /api/admin/projects/{name}/keys) needs a token: one random token per
# stack, kept in $ADMIN_TOKEN (mode 600) for tests and operators; a value already in the
# environment wins.
app_admin_token() {
  [[ -s $ADMIN_TOKEN ]] ||
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$ADMIN_TOKEN.tmp" &&
      mv -f "$ADMIN_TOKEN.tmp" "$ADMIN_TOKEN")
  export AGENTTRACE_ADMIN_TOKEN=${AGENTTRACE_ADMIN_TOKEN:-$(<"$ADMIN_TOKEN")}
}

api_start() {
  app_admin_token
  # The api also serves OTLP/gRPC, on 127.0.0.1:4317 (AGENTTRACE_GRPC_ADDRESS): a busy port
  # fails here with its owner named rather than as an api that never gets ready.
  pid_of api "bin/agenttrace api" >/dev/null || require_free_port "api (OTLP/gRPC)" "${AGENTTRACE_GRPC_ADDRESS##*:}"
  app_start api 8080
}
api_ready() { app_ready api 8080; }
api_stop() { stop_pid api "bin/agenttrace api" TERM; }
api_status() { status_line api "bin/agenttrace api"; }

# The stages start at BACKGROUND_NICE; their ready step sets their scheduling group's too.
stage_start() {  # NAME PORT ARGS...: `agenttrace worker ARGS...`
  local name=$1 port=$2
  shift 2
  app_start "$name" "$port" nice -n "$BACKGROUND_NICE" "$AGENTTRACE" worker "$@"
}
stage_ready() { app_ready "$1" "$2" && yield_to_edge "$(pid_of "$1" "bin/agenttrace worker")"; }

worker_start() { stage_start worker 8081 --stage clickhouse; }
worker_ready() { stage_ready worker 8081; }
worker_stop() { stop_pid worker "bin/agenttrace worker" TERM; }
worker_status() { status_line worker "bin/agenttrace worker"; }

worker_2_start() { stage_start worker_2 8083 --stage clickhouse --port 8083; }
worker_2_ready() { stage_ready worker_2 8083; }
worker_2_stop() { stop_pid worker_2 "bin/agenttrace worker" TERM; }
worker_2_status() { status_line worker_2 "bin/agenttrace worker"; }

worker_postgres_start() { stage_start worker_postgres 8082 --stage postgres --port 8082; }
worker_postgres_ready() { stage_ready worker_postgres 8082; }
worker_postgres_stop() { stop_pid worker_postgres "bin/agenttrace worker" TERM; }
worker_postgres_status() { status_line worker_postgres "bin/agenttrace worker"; }

app_summary() {
  local public secret trace gen ev1 ev2 now
  public=$(dev_key_field public)
  secret=$(dev_key_field secret) || secret='<secret key: see the output of agenttrace keys create>'
  read -r trace gen ev1 ev2 < <(python3 -c 'import uuid; print(*(uuid.uuid4() for _ in range(4)))')
  now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
  cat <<EOT

Stack is up. Admin token (Authorization: Bearer ...): $ADMIN_TOKEN
Dev project keys ($DEV_KEY):
  public: $public
  secret: $secret

Send a trace with one generation:
curl -u '$public:$secret' -H 'Content-Type: application/json' http://127.0.0.1:8080/api/public/ingestion -d '{"batch":[
  {"id":"$ev1","type":"trace-create","timestamp":"$now","body":{"id":"$trace","name":"hello","userId":"dev-user"}},
  {"id":"$ev2","type":"generation-create","timestamp":"$now","body":{"id":"$gen","traceId":"$trace","name":"chat","model":"gpt-4o-mini","startTime":"$now","endTime":"$now","input":[{"role":"user","content":"Hi"}],"output":{"role":"assistant","content":"Hello!"},"usage":{"input":3,"output":2,"unit":"TOKENS"}}}]}'

OpenTelemetry exporters: OTLP/HTTP at http://127.0.0.1:8080/v1/traces, OTLP/gRPC at 127.0.0.1:${AGENTTRACE_GRPC_ADDRESS##*:}
(both with the header/metadata authorization: Basic base64(public:secret), or Bearer secret).

See the rows (once the worker has flushed, usually within seconds):
clickhouse-client --query "SELECT id, name FROM agenttrace.observations FINAL WHERE trace_id = '$trace'"
EOT
}
