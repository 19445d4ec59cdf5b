"""CPU per event of every process during a fixed-rate end-to-end run, and the store's ceiling.

    .venv/bin/python bench/cpu_budget.py --rate 8000 --seconds 20          # Langfuse batches
    .venv/bin/python bench/cpu_budget.py --rate 8000 --seconds 20 --otlp   # OTLP/HTTP protobuf

Runs `bench/e2e.py` against the stack of `make up` (or, with `--url` and `--app NAME=PORT`,
against processes of a worktree: the process listening on each PORT, found through /proc) and
reads each process's CPU time from /proc before and after: the api, every worker, Kafka,
ClickHouse, Postgres (all its backends) and Redis; the load generator is the e2e child itself
(its CPU from its first request on: building the bodies beforehand competes with nothing).
The servers' figures include whatever else they served meanwhile (other projects, other topics),
except ClickHouse's for e2e.py's own reads (its latency probes and counts, found in the query
log), which is shown apart as `clickhouse: the bench's reads`.
Then it copies the run's observation rows out of ClickHouse and inserts them again into a
scratch table in one `INSERT ... FORMAT JSONEachRow`, which is what the store takes when nothing
else runs: the persisted rate divided by that rate says how close the pipeline comes to the
store's own ceiling. Prints one JSON line.

With `--all-stages` the run lasts until the Postgres stage has counted it too (`bench/e2e.py
--all-stages`): every process's CPU is then its whole share of the run, the Postgres stage's
catching up included, and `sustained_all_stages_per_s` is the rate with every stage done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import new_key
from sinks.clickhouse.config import ClickHouseConfig

ROOT = Path(__file__).resolve().parents[1]
PIDS = ROOT / ".stack" / "pids"
CLICKHOUSE_HTTP = "http://127.0.0.1:8123/"
# The database the pipeline under test writes to (e2e.py reads it from the same setting).
DATABASE = ClickHouseConfig.from_url(os.environ.get("AGENTTRACE_CLICKHOUSE_URL", ClickHouseConfig().url())).database
TICK = os.sysconf("SC_CLK_TCK")
APPS = ("api", "worker", "worker_2", "worker_postgres")
SERVERS = {"kafka": "java", "clickhouse": "clickhouse", "postgres": "postgres", "redis": "redis-server"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime


def listening_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:`port` (TCP), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f[9])
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                for fd in (proc / "fd").iterdir():
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return int(proc.name)
            except OSError:
                continue
    raise SystemExit(f"nothing listens on port {port}")


def processes(apps: dict[str, int] | None = None) -> dict[str, list[int]]:
    """name -> pids: the app's from their pid files (or ports), each server's with all its processes."""
    found: dict[str, list[int]] = {}
    if apps:
        for name, port in apps.items():
            found[name] = [listening_pid(port)]
    for name in () if apps else APPS:
        path = PIDS / f"{name}.pid"
        if path.exists():
            found[name] = [int(path.read_text().split()[0])]
    by_comm: dict[str, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                by_comm.setdefault((proc / "comm").read_text().strip(), []).append(int(proc.name))
            except OSError:
                continue
    for name, comm in SERVERS.items():
        found[name] = [pid for c, pids in by_comm.items() if c.startswith(comm) for pid in pids]
    return found


def snapshot(procs: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for name, pids in procs.items():
        out[name] = {}
        for pid in pids:
            try:
                out[name][pid] = cpu_seconds(pid)
            except OSError:
                pass  # a backend that ended meanwhile
    return out


def used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used by the processes alive at both ends: one that ended took its time with it."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def clickhouse(sql: str, data: bytes | None = None) -> bytes:
    url = CLICKHOUSE_HTTP + "?" + urllib.parse.urlencode({"query": sql, "database": DATABASE})
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=300) as r:
        return r.read()


PRELOAD_T0_US = 1_793_491_200_000_000  # 2026-11-01, the month of bench/load.py's events
PRELOAD_INSERTS = 12
PRELOADED = "preloaded"  # the name of every preloaded row, which a run's counts leave out


def preload(project_id: str, rows: int) -> None:
    """`rows` observations of 5 per trace, and their traces, in the project; then every merge
    waited for, so that a run's server CPU is its own."""
    at = f"toUInt64({PRELOAD_T0_US} + (number % 2160000) * 1000000)"  # over 25 days
    for part in range(PRELOAD_INSERTS):
        picked = f"FROM numbers({rows}) WHERE number % {PRELOAD_INSERTS} = {part}"
        clickhouse(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time, end_time,"
            " provided_model_name, input, output, created_at, updated_at, event_ts, is_deleted)"
            f" SELECT '{project_id}', lower(hex(cityHash64(number, 1))), lower(hex(cityHash64(intDiv(number, 5), 2))),"
            f" 'GENERATION', '{PRELOADED}', {at}, {at}, 'gpt-4o',"
            f" concat('\"', hex(cityHash64(number, 3)), '\"'), '\"ok\"', {at}, {at}, {at}, 0 {picked}"
        )
        clickhouse(
            "INSERT INTO traces (project_id, id, timestamp, name, created_at, updated_at, event_ts, is_deleted)"
            f" SELECT '{project_id}', lower(hex(cityHash64(number, 2))), {at}, '{PRELOADED}', {at}, {at}, {at}, 0"
            f" FROM numbers({rows // 5}) WHERE number % {PRELOAD_INSERTS} = {part}"
        )
    while int(clickhouse("SELECT count() FROM system.merges")):
        time.sleep(1)


def direct_insert_rate(project_id: str) -> tuple[int, float]:
    """Rows/s of inserting this run's observation rows again, as one JSONEachRow insert."""
    rows = clickhouse(
        f"SELECT * FROM observations WHERE project_id = '{project_id}' AND name != '{PRELOADED}' FORMAT JSONEachRow"
    )
    clickhouse("DROP TABLE IF EXISTS bench_direct")
    clickhouse("CREATE TABLE bench_direct AS observations")
    try:
        start = time.perf_counter()
        clickhouse("INSERT INTO bench_direct FORMAT JSONEachRow", rows)
        elapsed = time.perf_counter() - start
    finally:
        clickhouse("DROP TABLE IF EXISTS bench_direct")
    return rows.count(b"\n"), elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=8000)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--otlp", action="store_true")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the api's base URL")
    p.add_argument("--app", action="append", default=[], metavar="NAME=PORT", help="repeatable; default: .stack/pids")
    p.add_argument("--preload", type=int, default=0, help="observations in the project before the run, not counted")
    p.add_argument("--uuids", action="store_true", help="generation ids spread over the key space, as the SDKs'")
    p.add_argument("--updates", action="store_true", help="half the bodies update the other half's generations")
    p.add_argument("--all-stages", action="store_true", help="until the Postgres stage has counted the run too")
    p.add_argument("--spans-per-trace", type=int, default=0, help="--otlp: traces of this many spans (0: one a body)")
    p.add_argument("--propagated", action="store_true", help="--otlp: a user and a session on every span")
    p.add_argument("--prompt-bytes", type=int, default=0, help="each call's messages this long (bench/load.py's chat)")
    args = p.parse_args()
    if args.preload:  # before the CPU is read: the preload's inserts and merges are not the run's
        key = asyncio.run(new_key())
        preload(key[0], args.preload)
    procs = processes({n: int(port) for n, _, port in (a.partition("=") for a in args.app)})
    before, children_before = snapshot(procs), resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, str(ROOT / "bench" / "e2e.py"), "--rate", str(args.rate), "--seconds", str(args.seconds)]
    cmd += ["--url", args.url] + (["--uuids"] if args.uuids else []) + (["--updates"] if args.updates else [])
    cmd += ["--key", ":".join(key)] if args.preload else []
    cmd += ["--spans-per-trace", str(args.spans_per_trace)] if args.spans_per_trace else []
    cmd += ["--all-stages"] if args.all_stages else []
    cmd += ["--prompt-bytes", str(args.prompt_bytes)] if args.prompt_bytes else []
    cmd += ["--propagated"] if args.propagated else []
    run = json.loads(subprocess.run(cmd + (["--otlp"] if args.otlp else []), check=True, capture_output=True).stdout)
    after, children_after = snapshot(procs), resource.getrusage(resource.RUSAGE_CHILDREN)
    events = run["accepted_observations"] + run["accepted_updates"]
    used = {name: used_between(before[name], after[name]) for name in procs}
    # While it sends: building the bodies beforehand competes with nothing (older e2e.py: all).
    used["load generator"] = run.get("client_cpu_seconds") or (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    # ClickHouse's CPU for the bench's own reads (e2e.py's probes and counts) is the load
    # generator's, and shown apart from the server's work for the pipeline.
    own = run.get("clickhouse_cpu_seconds")
    if own is not None and "clickhouse" in used:
        used["clickhouse"] -= own
        used["clickhouse: the bench's reads"] = own
    rows, seconds = direct_insert_rate(run["project_id"])
    direct = rows / seconds if seconds else 0.0
    print(
        json.dumps(
            {
                "load": "otlp" if args.otlp else "updates" if args.updates else "batch",
                "offered_per_s": args.rate,
                "events": events,
                "sustained_per_s": run["sustained_events_per_s"],
                "sustained_all_stages_per_s": run.get("sustained_all_stages_events_per_s"),
                "wait_polls": run["wait_polls"],
                "queryable_p50_ms": run.get("queryable_p50_ms"),
                "queryable_p99_ms": run.get("queryable_p99_ms"),
                "answered_p99_ms": run.get("answered_p99_ms"),
                "cpu_us_per_event": {name: round(s * 1e6 / events, 1) for name, s in used.items()},
                "cpu_us_per_event_total": round(sum(used.values()) * 1e6 / events, 1),
                "direct_insert_rows_per_s": round(direct),
                "persisted_to_direct_ratio": round(run["sustained_events_per_s"] / direct, 3) if direct else None,
            }
        )
    )


if __name__ == "__main__":
    main()
