# Redis: a cache for key lookups only, so no persistence at all.

REDIS_PATTERN=redis-server
REDIS_LAUNCHED=

redis_start() {
  local pid
  if pid=$(pid_of redis "$REDIS_PATTERN"); then
    say "redis: already running (pid $pid)"
    return 0
  fi
  require_free_port redis 6379
  mkdir -p "$STACK/redis"
  quiet redis-server --bind 127.0.0.1 --port 6379 --dir "$STACK/redis" \
    --daemonize yes --pidfile "$PIDS/redis.pid" --logfile "$LOGS/redis.log" \
    --save '' --appendonly no 9>&-
  REDIS_LAUNCHED=1
}

redis_ready() {
  wait_for_pid_file redis "$REDIS_PATTERN" "$LOGS/redis.log"
  wait_ready redis "$REDIS_PATTERN" "$LOGS/redis.log" redis_ping
  [[ -z $REDIS_LAUNCHED ]] || say "redis: started (pid $(pid_of redis "$REDIS_PATTERN"))"
}

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

redis_stop() { stop_pid redis "$REDIS_PATTERN" TERM; }
redis_status() { status_line redis "$REDIS_PATTERN"; }
