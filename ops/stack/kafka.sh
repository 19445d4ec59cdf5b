# Kafka: KRaft single node from the jars in .stack/kafka/libs (no distribution tarball).

KAFKA_PATTERN=kafka.Kafka
KAFKA_LOG_OFFSET=

kafka_java() { java -cp "$STACK/kafka/libs/*" "$@"; }

kafka_start() {
  local dir=$STACK/kafka props=$STACK/kafka/server.properties log=$LOGS/kafka.log pid
  if pid=$(pid_of kafka "$KAFKA_PATTERN"); then
    say "kafka: already running (pid $pid)"
    return 0
  fi
  require_free_port kafka 9092
  require_free_port kafka-controller 9093
  mkdir -p "$dir/data"
  render "$TEMPLATES/kafka/server.properties.in" "$props"
  # Storage is formatted once; formatting again would give the log dir a new cluster id.
  if [[ ! -f $dir/data/meta.properties ]]; then
    [[ -s $dir/cluster.id ]] || kafka_java kafka.tools.StorageTool random-uuid 2>>"$SETUP_LOG" >"$dir/cluster.id"
    quiet kafka_java kafka.tools.StorageTool format -t "$(<"$dir/cluster.id")" -c "$props" --ignore-formatted
  fi
  # Readiness is judged from log lines written after this offset, not by older runs.
  KAFKA_LOG_OFFSET=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
  spawn kafka "$log" java -Xms256m -Xmx1g -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TEMPLATES/kafka/log4j2.yaml" \
    -cp "$STACK/kafka/libs/*" kafka.Kafka "$props"
}

# An open port is not enough: the broker accepts connections before it serves metadata,
# so a fresh start waits for the line the broker logs once it is fully up.
kafka_ready() {
  [[ -n $KAFKA_LOG_OFFSET ]] || { wait_ready kafka "$KAFKA_PATTERN" "$LOGS/kafka.log" port_open 9092; return; }
  wait_ready kafka "$KAFKA_PATTERN" "$LOGS/kafka.log" kafka_started_since "$KAFKA_LOG_OFFSET"
  say "kafka: started (pid $(pid_of kafka "$KAFKA_PATTERN"))"
}

kafka_started_since() {
  tail -c "+$1" "$LOGS/kafka.log" | grep -q 'Kafka Server started' && port_open 9092
}

kafka_stop() { stop_pid kafka "$KAFKA_PATTERN" TERM; }
kafka_status() { status_line kafka "$KAFKA_PATTERN"; }
