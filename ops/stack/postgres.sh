# PostgreSQL: Debian's server binaries, a private cluster in .stack/postgres, run as the
# `postgres` OS user because the server refuses to run as root.

POSTGRES_PATTERN=bin/postgres
POSTGRES_LAUNCHED=

postgres_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -x $bin/pg_ctl ]] || die "postgres: no server binaries under /usr/lib/postgresql"
  printf '%s\n' "$bin"
}

# The cluster lives in .stack/postgres when the postgres user can reach it. A clone under
# /root (mode 700), or a path too long for a unix socket (107 bytes), gets the cluster in
# /var/lib/agenttrace/<hash of the repo path> with .stack/postgres as a symlink to it.
postgres_home() {
  local link=$STACK/postgres home
  if [[ ! -e $link ]]; then
    mkdir -p "$STACK"
    if runuser -u postgres -- test -x "$STACK" && ((${#link} < 80)); then
      mkdir -p "$link"
    else
      home=/var/lib/agenttrace/$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)/postgres
      mkdir -p "$home"
      ln -sfn "$home" "$link"
    fi
  fi
  home=$(readlink -f "$link")
  mkdir -p "$home/run"
  chown postgres:postgres "$home" "$home/run"
  printf '%s\n' "$home"
}

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

postgres_start() {
  local bin home data pid conf
  if pid=$(pid_of postgres "$POSTGRES_PATTERN"); then
    say "postgres: already running (pid $pid)"
    return 0
  fi
  require_free_port postgres 5432
  bin=$(postgres_bin)
  home=$(postgres_home)
  data=$home/data
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf "$data"
    quiet as_postgres "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
      --auth-local=peer --auth-host=scram-sha-256
    printf "\ninclude 'agenttrace.conf'\n" >>"$data/postgresql.conf"
  fi
  postgres_clear_stale_lock "$data" "$home"
  conf=$(<"$TEMPLATES/postgres/agenttrace.conf.in")
  printf '%s\n' "${conf//@PGHOME@/$home}" >"$data/agenttrace.conf"
  cp "$TEMPLATES/postgres/pg_hba.conf" "$data/pg_hba.conf"
  chown postgres:postgres "$data/agenttrace.conf" "$data/pg_hba.conf"
  # The postmaster runs in the foreground under setpriv (which execs, unlike runuser), so
  # the pid we record is the postmaster's and its log is opened here by root: the postgres
  # user needs no access to .stack/logs.
  (cd "$home" && spawn postgres "$LOGS/postgres.log" \
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data")
  POSTGRES_LAUNCHED=1
}

postgres_ready() {
  wait_ready postgres "$POSTGRES_PATTERN" "$LOGS/postgres.log" \
    "$(postgres_bin)/pg_isready" -q -h 127.0.0.1 -p 5432
  yield_to_edge "$(pid_of postgres "$POSTGRES_PATTERN")"
  postgres_provision
  [[ -z $POSTGRES_LAUNCHED ]] || say "postgres: started (pid $(pid_of postgres "$POSTGRES_PATTERN"))"
}

# After a kill -9 the old postmaster can linger as a zombie (PID 1 here reaps lazily), which
# postgres takes for a live server, and its orphaned children (cwd = the data dir) need a
# moment to notice and exit. Wait for them, then drop lock files whose pid is dead.
postgres_clear_stale_lock() {
  local data=$1 home=$2 lock deadline=$((SECONDS + 15))
  while dir_in_use "$data" && ((SECONDS < deadline)); do sleep 0.2; done
  for lock in "$data/postmaster.pid" "$home"/run/.s.PGSQL.*.lock; do
    [[ -f $lock ]] || continue
    proc_alive "$(head -n1 "$lock")" || rm -f "$lock"
  done
}

# The app's role and database; idempotent, so it also repairs a cluster created by hand.
postgres_provision() {
  local bin home
  bin=$(postgres_bin)
  home=$(readlink -f "$STACK/postgres")
  as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$home/run" -p 5432 -U postgres -d postgres \
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

# SIGINT is the "fast" shutdown: it does not wait for clients (test pools) to disconnect.
postgres_stop() { stop_pid postgres "$POSTGRES_PATTERN" INT; }
postgres_status() { status_line postgres "$POSTGRES_PATTERN"; }
