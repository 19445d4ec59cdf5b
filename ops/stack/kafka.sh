# Kafka: KRaft single node from the jars in .stack/kafka/libs (no distribution tarball).

KAFKA_PATTERN=kafka.Kafka
KAFKA_LAUNCHED=

kafka_java() { java -cp "$STACK/kafka/libs/*" "$@"; }

kafka_start() {
  local dir=$STACK/kafka props=$STACK/kafka/server.properties log=$LOGS/kafka.log pid
  if pid=$(pid_of kafka "$KAFKA_PATTERN"); then
    say "kafka: already running (pid $pid)"
    return 0
  fi
  require_free_port kafka 9092
  require_free_port kafka-controller 9093
  require_free_port kafka-fault-listener 9094
  mkdir -p "$dir/data"
  render "$TEMPLATES/kafka/server.properties.in" "$props"
  # Storage is formatted once; formatting again would give the log dir a new cluster id.
  if [[ ! -f $dir/data/meta.properties ]]; then
    [[ -s $dir/cluster.id ]] || kafka_java kafka.tools.StorageTool random-uuid 2>>"$SETUP_LOG" >"$dir/cluster.id"
    quiet kafka_java kafka.tools.StorageTool format -t "$(<"$dir/cluster.id")" -c "$props" --ignore-formatted
  fi
  # Readiness is judged from log lines written after this offset, not by older runs; kept in
  # a file so that a later `up` can tell a broker still starting from one that is ready.
  echo $(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1)) >"$dir/log-offset"
  spawn kafka "$log" java -Xms256m -Xmx1g -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TEMPLATES/kafka/log4j2.yaml" \
    -cp "$STACK/kafka/libs/*" kafka.Kafka "$props"
  KAFKA_LAUNCHED=1
}

# An open port is not enough: the broker accepts connections before it serves metadata,
# so wait for the line it logs once fully up.
kafka_ready() {
  wait_ready kafka "$KAFKA_PATTERN" "$LOGS/kafka.log" kafka_started
  [[ -z $KAFKA_LAUNCHED ]] || say "kafka: started (pid $(pid_of kafka "$KAFKA_PATTERN"))"
}

kafka_started() {
  local offset=1
  [[ -s $STACK/kafka/log-offset ]] && offset=$(<"$STACK/kafka/log-offset")
  # Not `tail | grep -q`: grep quits at the first match, tail dies of SIGPIPE on a long
  # log, and pipefail turns the match into a failure.
  grep -q 'Kafka Server started' < <(tail -c "+$offset" "$LOGS/kafka.log") && port_open 9092
}

kafka_stop() { stop_pid kafka "$KAFKA_PATTERN" TERM; }
kafka_status() { status_line kafka "$KAFKA_PATTERN"; }
