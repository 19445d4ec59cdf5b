#!/usr/bin/env bash
# End-to-end A/B of source trees, each run as `make up` runs it (api, two ClickHouse-stage
# workers, the Postgres stage; each in a session of its own, the stages at nice 10: AB_NICE=N
# sets theirs and the ClickHouse and Postgres servers' for the series) on this repo's venv and
# the running servers, on private topics, in rotated order per round:
#
#   bench/ab.sh ROUNDS NAME=DIR [NAME=DIR ...] > results.txt
#   bench/ab.sh 4 new=. old=/tmp/old-worktree
#   bench/ab.sh 3 two=. one=.@1       # NAME=DIR@N: N ClickHouse-stage processes (1 or 2; default 2)
#
# Per variant and round: bench/canary.py (the machine's speed; the medians say when it moved by
# more than 20% over the series), then bench/e2e.py --rate 20000 --seconds 20 (AB_RATE sets the rate,
# AB_E2E_LOADS="batch otlp" adds e2e.py --otlp), then bench/load.py (batch and OTLP) with the
# workers paused (not with AB_E2E_ONLY=1), one JSON line each; medians per variant at the end. With
# AB_DRAIN=1: bench/drain.py and bench/drain.py --otlp instead (the stages alone, CPU per event;
# AB_DRAIN_LOADS picks among batch, otlp, long (the batches adding to 200 long traces) and
# updates (every generation's update in later batches than its create, folded cold);
# AB_PRELOAD=N puts N observations in each run's project first, bench/drain.py --preload;
# AB_UUIDS=1 gives the generations uuids, --uuids; both for AB_BUDGET too; AB_SPANS_PER_TRACE=K
# cuts the OTLP bodies of the drain, the budget and e2e into traces of K spans, and AB_PROPAGATED=1
# puts a user and a session on every span of the budget's and e2e's (--propagated); AB_PROMPT_BYTES=N
# gives the budget's LLM calls messages of ~N bytes, bench/load.py's chat). AB_PRIVATE_DB=1
# gives every run a ClickHouse database of its own, dropped after it: no merges of other runs'
# rows meanwhile (its tables get make up's `chattr +T`; AB_SPREAD_PARTS=0 leaves that out);
# AB_PRIVATE_PG=1 a Postgres database of its own (keys, trace states and the aggregates start
# empty, as the ClickHouse side does). With AB_BUDGET=1: bench/cpu_budget.py
# at 10,000 events/s (AB_RATE) for 20 s, batch and OTLP (AB_BUDGET_LOADS picks among batch,
# otlp and updates: half the bodies the cold updates of the rest). AB_ALL_STAGES=1 makes e2e and
# the budget wait for the Postgres stage's ledger too (--all-stages). Before each run it waits
# for ClickHouse's merges of the previous run to end (they are felt by the next otherwise), and
# afterwards deletes the run's topics (~1.5 GB each; they once filled the disk).
# Ports 18900-18904. Nothing else should run meanwhile: a run moves by ±15% on a busy machine.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/.venv/bin
CH=${AGENTTRACE_CLICKHOUSE_HTTP:-http://127.0.0.1:8123}
ROUNDS=${1:?rounds}
shift
VARIANTS=("$@")
PORTS="1890[0-3]"
# The stages' nice, and make up's ClickHouse and Postgres servers' for the series (restored to
# make up's at the end): 10 as make up runs them (ops/stack/lib.sh, yield_to_edge).
NICE=${AB_NICE:-10}
LOGS=$(mktemp -d /tmp/ab.XXXXXX)

start() {  # dir tag ch_ports (the ClickHouse stage's processes, one a port)
  local dir=$1 tag=$2 ch_ports=$3 grpc="" p
  [ -n "${AB_PRIVATE_DB:-}" ] && export AGENTTRACE_CLICKHOUSE_URL=clickhouse://127.0.0.1:9000/ab_$tag
  if [ -n "${AB_PRIVATE_PG:-}" ]; then
    pg_admin "CREATE DATABASE ab_$tag"
    export AGENTTRACE_POSTGRES_DSN=postgresql://agenttrace:agenttrace@127.0.0.1:5432/ab_$tag
  fi
  export PYTHONPATH=$dir AGENTTRACE_TOPIC_EVENTS=agenttrace.ab.$tag.events AGENTTRACE_TOPIC_DLQ=agenttrace.ab.$tag.dlq \
    AGENTTRACE_CONSUMER_GROUP_PREFIX=ab-$tag-
  (cd "$dir" && "$BIN/agenttrace" migrate >"$LOGS/$tag-migrate.log" 2>&1)
  # As `make up` leaves its tables (ops/stack/clickhouse.sh): without it a private database,
  # made among the inodes the previous run's drop freed, pays the kernel's inode search
  # (AB_SPREAD_PARTS=0 leaves it out, to measure that).
  [ -n "${AB_PRIVATE_DB:-}" ] && [ "${AB_SPREAD_PARTS:-1}" != 0 ] && (STACK=$ROOT/.stack && source "$ROOT/ops/stack/clickhouse.sh" && clickhouse_spread_parts "ab_$tag")
  grep -q grpc-port "$dir/agenttrace/cli.py" && grpc="--grpc-port 18904"
  # Each process in a session of its own, the stages at AB_NICE, as make up runs them.
  (cd "$dir" && exec setsid "$BIN/agenttrace" api --port 18900 $grpc >"$LOGS/$tag-api.log" 2>&1) &
  for p in $ch_ports; do
    (cd "$dir" && exec setsid nice -n "$NICE" "$BIN/agenttrace" worker --stage clickhouse --port "$p" \
      >"$LOGS/$tag-w$p.log" 2>&1) &
  done
  (cd "$dir" && exec setsid nice -n "$NICE" "$BIN/agenttrace" worker --stage postgres --port 18902 \
    >"$LOGS/$tag-w3.log" 2>&1) &
  for p in 18900 18902 $ch_ports; do
    for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$p/readyz" && break; sleep 0.5; done
  done
  for p in $(pgrep -f "agenttrace worker .*--port $PORTS"); do autogroup_nice "$p" "$NICE"; done
  unset PYTHONPATH
}

# A session's scheduling group's nice (sched_autogroup): what weighs it against the others.
autogroup_nice() {  # pid nice
  if [[ -w /proc/$1/autogroup ]]; then echo "$2" 2>/dev/null >"/proc/$1/autogroup" || true; fi
}

stop() {  # tag
  pkill -f "agenttrace (api|worker) .*--port $PORTS"
  for _ in $(seq 20); do pgrep -f "agenttrace (api|worker) .*--port $PORTS" >/dev/null || break; sleep 0.5; done
  pkill -9 -f "agenttrace (api|worker) .*--port $PORTS"
  sleep 1
  "$BIN/python" - "$1" <<'PY'
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    await admin.delete_topics([f"agenttrace.ab.{sys.argv[1]}.events", f"agenttrace.ab.{sys.argv[1]}.dlq"])
    await admin.close()

asyncio.run(main())
PY
  [ -n "${AB_PRIVATE_DB:-}" ] && curl -s "$CH/" --data-binary "DROP DATABASE IF EXISTS ab_$1" && unset AGENTTRACE_CLICKHOUSE_URL
  [ -n "${AB_PRIVATE_PG:-}" ] && pg_admin "DROP DATABASE IF EXISTS ab_$1" && unset AGENTTRACE_POSTGRES_DSN
  return 0
}

pg_admin() {  # a statement on make up's Postgres, outside any run's database
  PGPASSWORD=agenttrace psql -X -q -h 127.0.0.1 -U agenttrace -d agenttrace -c "$1" >/dev/null
}

settle() {
  for _ in $(seq 90); do
    [ "$(curl -s "$CH/?query=SELECT+count()+FROM+system.merges")" = "0" ] && break
    sleep 1
  done
  sync
  sleep 3
}

bench() {
  (cd "$ROOT" && PYTHONPATH=$ROOT "$BIN/python" "$@" 2>/dev/null | tail -1)
}

servers_nice() {
  local name
  for name in clickhouse postgres; do autogroup_nice "$(head -n1 "$ROOT/.stack/pids/$name.pid" 2>/dev/null)" "$1"; done
}
servers_nice "$NICE"
trap 'pkill -CONT -f "agenttrace worker .*--port $PORTS"; pkill -f "agenttrace (api|worker) .*--port $PORTS"; servers_nice 10' EXIT
n=${#VARIANTS[@]}
for r in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    spec=${VARIANTS[$(((k + r - 1) % n))]}
    name=${spec%%=*} path=${spec#*=} ch_ports="18901 18903" apps="--app ch1=18901 --app ch2=18903 --app pg=18902"
    if [[ $path == *@* ]]; then
      [[ ${path##*@} == [12] ]] || { echo "bench/ab.sh: $spec: @N takes 1 or 2" >&2; exit 2; }
      [[ ${path##*@} == 1 ]] && ch_ports=18901 apps="--app ch1=18901 --app pg=18902"
      path=${path%@*}
    fi
    dir=$(cd "$path" && pwd) tag=$name$r$RANDOM
    settle
    echo "# $(date +%T) $name round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    # The machine's speed just before the run (bench/canary.py): a series whose canary moved
    # compares hours, not trees.
    echo "$name $r canary $(bench bench/canary.py)"
    start "$dir" "$tag" "$ch_ports"
    if [ -n "${AB_BUDGET:-}${AB_DRAIN:-}" ]; then
      loads=${AB_DRAIN_LOADS:-batch otlp}
      [ -n "${AB_BUDGET:-}" ] && loads=${AB_BUDGET_LOADS:-batch otlp}
      for load in $loads; do
        flag=""
        [ $load = otlp ] && flag="--otlp${AB_SPANS_PER_TRACE:+ --spans-per-trace $AB_SPANS_PER_TRACE}${AB_PROPAGATED:+ --propagated}"
        [ $load = long ] && flag="--traces 200"
        [ $load = updates ] && flag=--updates
        if [ -n "${AB_BUDGET:-}" ]; then
          echo "$name $r budget-$load $(bench bench/cpu_budget.py --url http://127.0.0.1:18900 --rate "${AB_RATE:-10000}" \
            --seconds 20 --app api=18900 $apps \
            --preload "${AB_PRELOAD:-0}" ${AB_UUIDS:+--uuids} ${AB_ALL_STAGES:+--all-stages} \
            ${AB_PROMPT_BYTES:+--prompt-bytes $AB_PROMPT_BYTES} $flag)"
          # What the run's events take in the log (both loads so far), when the broker is make up's.
          [ -d "$ROOT/.stack/kafka/data" ] && echo "# $name $r after $load: events topic $(du -sk \
            "$ROOT"/.stack/kafka/data/agenttrace.ab.$tag.events-* | awk '{s += $1} END {print s}') KiB"
        else
          echo "$name $r drain-$load $(bench bench/drain.py --url http://127.0.0.1:18900 \
            $apps --preload "${AB_PRELOAD:-0}" ${AB_UUIDS:+--uuids} $flag)"
        fi
        settle
      done
      stop "$tag"
      continue
    fi
    for load in ${AB_E2E_LOADS:-batch}; do
      flag=""; [ "$load" = otlp ] && flag="--otlp${AB_SPANS_PER_TRACE:+ --spans-per-trace $AB_SPANS_PER_TRACE}${AB_PROPAGATED:+ --propagated}"
      echo "$name $r e2e$([ "$load" = otlp ] && echo -otlp) $(bench bench/e2e.py --url http://127.0.0.1:18900 \
        --rate "${AB_RATE:-20000}" --seconds 20 ${AB_ALL_STAGES:+--all-stages} $flag)"
    done
    [ -n "${AB_E2E_ONLY:-}" ] && { stop "$tag"; continue; }
    workers=$(pgrep -f "agenttrace worker .*--port 1890[1-3]" | tr '\n' ' ')
    kill -STOP $workers
    echo "$name $r load $(bench bench/load.py --url http://127.0.0.1:18900 --seconds 15 --concurrency 16)"
    echo "$name $r otlp $(bench bench/load.py --url http://127.0.0.1:18900 --otlp --seconds 15 --concurrency 16 --bodies 3000)"
    kill -CONT $workers
    stop "$tag"
  done
done | tee "$LOGS/results.txt"
"$BIN/python" - "$LOGS/results.txt" <<'PY'
import json, statistics, sys

figures: dict[tuple[str, str], list[float]] = {}
canaries: list[float] = []
for line in open(sys.argv[1]):
    parts = line.split(" ", 3)
    if line.startswith("#") or len(parts) < 4 or not parts[3].startswith("{"):
        continue
    name, _, kind, text = parts
    d = json.loads(text)
    if kind == "canary":
        figures.setdefault((name, "canary us/unit"), []).append(d["canary_us_per_unit"])
        canaries.append(d["canary_us_per_unit"])
        continue
    if kind.startswith("budget"):
        for proc, us in d["cpu_us_per_event"].items():
            figures.setdefault((name, f"{kind} {proc} us/event"), []).append(us)
        figures.setdefault((name, f"{kind} total us/event"), []).append(d["cpu_us_per_event_total"])
        figures.setdefault((name, f"{kind} sustained events/s"), []).append(d["sustained_per_s"])
        figures.setdefault((name, f"{kind} persisted/direct"), []).append(d["persisted_to_direct_ratio"])
        if d.get("sustained_all_stages_per_s") is not None:
            figures.setdefault((name, f"{kind} sustained all stages events/s"), []).append(d["sustained_all_stages_per_s"])
        if d.get("queryable_p99_ms") is not None:
            figures.setdefault((name, f"{kind} queryable p50 ms"), []).append(d["queryable_p50_ms"])
            figures.setdefault((name, f"{kind} queryable p99 ms"), []).append(d["queryable_p99_ms"])
        continue
    if kind.startswith("drain"):
        cpu = d["cpu_us_per_event"]
        figures.setdefault((name, f"{kind} observations/s"), []).append(d["observations_per_s_into_clickhouse"])
        figures.setdefault((name, f"{kind} clickhouse server us/event"), []).append(cpu["clickhouse"])
        figures.setdefault((name, f"{kind} clickhouse stage us/event"), []).append(cpu["ch1"] + cpu.get("ch2", 0))
        figures.setdefault((name, f"{kind} postgres stage us/event"), []).append(cpu["pg"])
        figures.setdefault((name, f"{kind} postgres server us/event"), []).append(cpu["postgres"])
        figures.setdefault((name, f"{kind} seconds until drained"), []).append(d["seconds_all_stages"])
        continue
    figures.setdefault((name, kind), []).append(d.get("sustained_events_per_s") or d.get("events_per_s") or 0)
    if kind.startswith("e2e"):
        figures.setdefault((name, f"{kind} p99 ms"), []).append(d.get("queryable_p99_ms") or 0)
        figures.setdefault((name, f"{kind} offered"), []).append(d.get("offered_events_per_s") or 0)
        if d.get("sustained_all_stages_events_per_s") is not None:
            figures.setdefault((name, f"{kind} all stages"), []).append(d["sustained_all_stages_events_per_s"])
if canaries and max(canaries) > 1.2 * min(canaries):
    # Seen on this VM: 307 to 580 µs a unit within minutes (bench/README.md, "A canary").
    print(f"# canary moved {min(canaries):.0f}-{max(canaries):.0f} us/unit over the series: its runs ran on "
          "machines of different speeds; compare only runs of similar canaries")
for (name, kind), values in sorted(figures.items()):
    digits = 3 if kind.endswith("persisted/direct") else 1  # a ratio of ~0.05
    print(f"# median {name} {kind}: {statistics.median(values):.{digits}f} (runs {', '.join(f'{v:.{digits}f}' for v in values)})")
PY
