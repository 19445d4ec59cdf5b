# ClickHouse: Debian's 18.16 server with a generated, self-contained config.

CLICKHOUSE_PATTERN=clickhouse-server
CLICKHOUSE_LAUNCHED=

clickhouse_start() {
  local dir=$STACK/clickhouse pid
  if pid=$(pid_of clickhouse "$CLICKHOUSE_PATTERN"); then
    say "clickhouse: already running (pid $pid)"
    # The server reads its config (merge settings among it) at start only: say so when this
    # checkout's differs from the one it was started with, instead of leaving it silently old.
    if [[ -f $dir/config.xml ]]; then
      render "$TEMPLATES/clickhouse/config.xml.in" "$dir/config.xml.new"
      if ! cmp -s "$dir/config.xml.new" "$dir/config.xml"; then
        say "clickhouse: its config changed since it started; \`make down && make up\` applies it"
      fi
      rm -f "$dir/config.xml.new"
    fi
    return 0
  fi
  require_free_port clickhouse 9000
  require_free_port clickhouse-http 8123
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
  render "$TEMPLATES/clickhouse/config.xml.in" "$dir/config.xml"
  cp "$TEMPLATES/clickhouse/users.xml" "$dir/users.xml"
  # The server refuses to start (silently, it has no log yet) over a pid file left by a
  # kill -9, and it is known not to be running here.
  rm -f "$PIDS/clickhouse.pid"
  # --daemon forks and writes the pid file itself; stdout/stderr only carry start-up errors.
  (cd "$dir" && /usr/sbin/clickhouse-server --config-file="$dir/config.xml" \
    --pid-file="$PIDS/clickhouse.pid" --daemon </dev/null >>"$LOGS/clickhouse.err.log" 2>&1 9>&-) ||
    { log_tail "$LOGS/clickhouse.err.log"; die "clickhouse: failed to start"; }
  CLICKHOUSE_LAUNCHED=1
}

clickhouse_ready() {
  wait_for_pid_file clickhouse "$CLICKHOUSE_PATTERN" "$LOGS/clickhouse.err.log"
  wait_ready clickhouse "$CLICKHOUSE_PATTERN" "$LOGS/clickhouse.err.log" clickhouse_ping
  yield_to_edge "$(pid_of clickhouse "$CLICKHOUSE_PATTERN")"
  [[ -z $CLICKHOUSE_LAUNCHED ]] || say "clickhouse: started (pid $(pid_of clickhouse "$CLICKHOUSE_PATTERN"))"
}

clickhouse_ping() { [[ $(curl -sf --max-time 2 http://127.0.0.1:8123/ping) == Ok. ]]; }

# ClickHouse writes every part, inserted or merged, as a new directory of two files a column,
# and deletes the parts merges replaced by the thousand. On ext4 without a journal (this
# machine's root) a new inode is found by skipping, one inode block read each, every inode of its
# block group freed in the last minute or more: after a dropped database or a busy hour of
# merges that search was over half of the server's CPU (bench/README.md, "Where the ClickHouse
# server's CPU goes"). The Orlov hint `chattr +T` on a table's directory (not inherited, so
# after the migrations made them) spreads its part directories over the block groups instead of
# packing them into the few just churned. A placement hint only; where chattr cannot set it
# (another filesystem), nothing changes.
clickhouse_spread_parts() {  # [database [server's data path]]: every database's tables but system's
  local d db=${1:-*} root=${2:-$STACK/clickhouse/data}
  # shellcheck disable=SC2231  # $db is a glob on purpose
  for d in "$root"/data/$db/*/; do
    [[ $d == */data/system/* || ! -d $d ]] && continue
    chattr +T "$d" 2>/dev/null || true
  done
}

clickhouse_stop() { stop_pid clickhouse "$CLICKHOUSE_PATTERN" TERM; }
clickhouse_status() { status_line clickhouse "$CLICKHOUSE_PATTERN"; }
