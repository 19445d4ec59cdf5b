"""The operator contract of the monitoring guide, against the running api and worker: every
metric with its labels on the process where it applies, JSON log lines with the guide's fields
and no secrets, and a real Prometheus that scrapes both, loads the alert rules and evaluates
every alert and dashboard expression."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from sinks.postgres.keys import NewKey
from tests.support import API, WORKER, basic_auth, eventually, scrape

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".stack" / "logs"
PIDS = ROOT / ".stack" / "pids"

# ARCHITECTURE.md's metrics table: name -> (label names, processes).
METRICS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    name: (frozenset(labels), frozenset(where))
    for name, labels, where in [
        ("http_requests_total", ("method", "path", "status"), ("api", "worker")),
        ("http_request_duration_seconds", ("method", "path"), ("api", "worker")),
        ("http_request_size_bytes", ("method", "path"), ("api", "worker")),
        ("http_response_size_bytes", ("method", "path"), ("api", "worker")),
        ("traces_ingested_total", ("source",), ("api",)),
        ("observations_ingested_total", ("source",), ("api",)),
        ("scores_created_total", ("source",), ("api",)),
        ("grpc_server_started_total", ("grpc_type", "grpc_service", "grpc_method"), ("api",)),
        ("grpc_server_handled_total", ("grpc_type", "grpc_service", "grpc_method", "grpc_code"), ("api",)),
        ("grpc_server_handling_seconds", ("grpc_type", "grpc_service", "grpc_method"), ("api",)),
        ("api_keys_created_total", (), ("api",)),
        ("kafka_publish_duration_seconds", (), ("api",)),
        ("worker_jobs_processed_total", ("type", "status"), ("worker",)),
        ("worker_job_duration_seconds", ("type",), ("worker",)),
        ("worker_queue_depth", ("queue",), ("worker",)),
        ("worker_active_jobs", ("type",), ("worker",)),
        ("db_connections_active", ("db",), ("api", "worker")),
        ("db_connections_idle", ("db",), ("api", "worker")),
        ("db_connections_max", ("db",), ("api", "worker")),
        ("db_query_duration_seconds", ("db", "operation"), ("api", "worker")),
        ("clickhouse_insert_rows_total", ("table",), ("worker",)),
        ("clickhouse_query_duration_seconds", ("operation",), ("worker",)),
    ]
}
HISTOGRAMS = {n for n in METRICS if n.endswith(("_seconds", "_bytes"))}
# Label values that must exist however little traffic there was (initialised at start-up).
REQUIRED_VALUES = {
    "traces_ingested_total": {"source": {"batch", "otlp", "otlp_grpc"}},
    "observations_ingested_total": {"source": {"batch", "otlp", "otlp_grpc"}},
    "scores_created_total": {"source": {"batch", "otlp", "otlp_grpc"}},
    "grpc_server_handled_total": {"grpc_code": {"OK", "Unauthenticated", "ResourceExhausted", "Unavailable"}},
    "worker_jobs_processed_total": {"type": {"clickhouse"}, "status": {"success", "retry", "dead_letter"}},
    "worker_queue_depth": {"queue": {"clickhouse"}},
    "worker_active_jobs": {"type": {"clickhouse"}},
    "worker_job_duration_seconds": {"type": {"clickhouse"}},
    "clickhouse_insert_rows_total": {"table": {"traces", "observations", "scores"}},
    "db_connections_active": {"db": {"postgres", "clickhouse"}},
    "db_query_duration_seconds": {"db": {"postgres", "clickhouse"}},
}
BASES = {"api": API, "worker": WORKER}
JOBS = {"api": "agenttrace-api", "worker": "agenttrace-worker"}


def series_name(metric: str) -> str:
    """The sample that carries a metric's own labels: `_count` for a histogram."""
    return f"{metric}_count" if metric in HISTOGRAMS else metric


def check_metric(metric: str, label_sets: list[dict[str, str]], where: str) -> list[str]:
    """Problems with one metric's series on one process (labels without job/instance)."""
    if not label_sets:
        return [f"{metric}: missing on {where}"]
    labels, _ = METRICS[metric]
    problems = [
        f"{metric} on {where}: labels {sorted(ls)} != {sorted(labels)}" for ls in label_sets if set(ls) != labels
    ]
    for label, values in REQUIRED_VALUES.get(metric, {}).items():
        seen = {ls.get(label) for ls in label_sets}
        if not values <= seen:
            problems.append(f"{metric} on {where}: {label} values {sorted(values - seen)} missing")
    return problems


# ---------------------------------------------------------------------------------------------
# Traffic that makes every metric of the table appear.


def langfuse_batch(trace_id: str, observations: int) -> dict:
    events = [
        {
            "id": str(uuid.uuid4()),
            "type": "trace-create",
            "timestamp": "2026-11-27T10:00:00Z",
            "body": {"id": trace_id, "name": "observability"},
        }
    ]
    events += [
        {
            "id": str(uuid.uuid4()),
            "type": "generation-create",
            "timestamp": "2026-11-27T10:00:01Z",
            "body": {
                "id": f"gen-{uuid.uuid4()}",
                "traceId": trace_id,
                "name": f"g{i}",
                "model": "gpt-4o",
                "usage": {"input": 3, "output": 2},
            },
        }
        for i in range(observations)
    ]
    events.append(
        {
            "id": str(uuid.uuid4()),
            "type": "score-create",
            "timestamp": "2026-11-27T10:00:02Z",
            "body": {"id": f"score-{uuid.uuid4()}", "traceId": trace_id, "name": "quality", "value": 1.0},
        }
    )
    return {"batch": events}


def otlp_json(trace_id: str, spans: int) -> bytes:
    items = [
        {
            "traceId": trace_id,
            "spanId": uuid.uuid4().hex[:16],
            "name": f"s{i}",
            "kind": 1,
            "startTimeUnixNano": "1795773600000000000",
            "endTimeUnixNano": "1795773601000000000",
        }
        for i in range(spans)
    ]
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": items}]}]})


async def make_traffic(http: aiohttp.ClientSession, key: NewKey) -> None:
    """Requests on both routes and both processes; labelled series that need no traffic were
    declared at start-up, so the worker need not have written anything yet."""
    async with http.post(
        f"{API}/api/public/ingestion", json=langfuse_batch(f"trace-{uuid.uuid4()}", 2), headers=basic_auth(key)
    ) as r:
        assert r.status == 207
    headers = {**basic_auth(key), "Content-Type": "application/json"}
    async with http.post(f"{API}/v1/traces", data=otlp_json(uuid.uuid4().hex, 2), headers=headers) as r:
        assert r.status == 200
    for base in (API, WORKER):
        async with http.get(f"{base}/health") as r:  # pings every store: query metrics on both
            await r.read()  # healthy or not: the contract here is the metrics, not the verdict


def label_sets(samples: dict, metric: str) -> list[dict[str, str]]:
    name = series_name(metric)
    return [dict(labels) for (sample_name, labels) in samples if sample_name == name]


async def test_every_guide_metric_exists_with_its_labels(http: aiohttp.ClientSession, project: NewKey) -> None:
    await make_traffic(http, project)
    problems = []
    for where, base in BASES.items():
        samples = await scrape(http, base)
        for metric, (_, processes) in METRICS.items():
            if where in processes:
                problems += check_metric(metric, label_sets(samples, metric), where)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Logs: one JSON object per line with the guide's fields; request lines carry their context.

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CALLER = re.compile(r"^[\w.\-]+\.py:\d+$")
LEVELS = {"debug", "info", "warn", "error"}


def _started_at(name: str) -> float:
    """Wall-clock start of the stack's `name` process, from /proc."""
    pid = int((PIDS / f"{name}.pid").read_text().split()[0])
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def current_run(name: str) -> list[str]:
    """The lines the running process wrote: from its first line stamped after it started."""
    log = LOGS / f"{name}.log"
    assert log.exists(), f"{log} missing: start the stack with `make up`"
    started = _started_at(name) - 1
    lines = log.read_text(errors="replace").splitlines()
    first = len(lines)
    for i in range(len(lines) - 1, -1, -1):
        try:
            ts = datetime.fromisoformat(orjson.loads(lines[i])["ts"].replace("Z", "+00:00")).timestamp()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            continue
        if ts < started:
            break
        first = i
    return lines[first:]


def parse_lines(lines: list[str], name: str) -> list[dict[str, Any]]:
    docs = []
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{name}.log: not a JSON line: {line[:300]!r}") from None
        assert isinstance(doc, dict), line
        assert doc.get("level") in LEVELS, line
        assert TS.match(doc.get("ts", "")), line
        assert isinstance(doc.get("msg"), str) and doc["msg"], line
        assert CALLER.match(doc.get("caller", "")), line
        docs.append(doc)
    return docs


async def _request_line(request_id: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        hits = [d for d in parse_lines(current_run("api"), "api") if d.get("request_id") == request_id]
        return hits[0] if hits else None

    return await eventually(find, lambda d: d is not None, timeout_s=5, every_s=0.1)


async def test_log_lines_are_json_with_the_guide_fields(http: aiohttp.ClientSession, project: NewKey) -> None:
    trace_id, request_id = f"trace-{uuid.uuid4()}", f"log-{uuid.uuid4().hex}"
    headers = {**basic_auth(project), "X-Request-ID": request_id}
    async with http.post(f"{API}/api/public/ingestion", json=langfuse_batch(trace_id, 3), headers=headers) as r:
        assert r.status == 207
    line = await _request_line(request_id)
    assert line["msg"] == "batch ingested"
    assert line["project_id"] == project.project_id
    assert line["trace_id"] == trace_id
    assert line["observations_count"] == 3
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0

    otlp_trace, request_id = uuid.uuid4().hex, f"log-{uuid.uuid4().hex}"
    headers = {**basic_auth(project), "Content-Type": "application/json", "X-Request-ID": request_id}
    async with http.post(f"{API}/v1/traces", data=otlp_json(otlp_trace, 4), headers=headers) as r:
        assert r.status == 200
    line = await _request_line(request_id)
    assert (line["trace_id"], line["observations_count"]) == (otlp_trace, 4)

    # Every line of both processes' current runs, not only request lines.
    for name in ("api", "worker"):
        assert parse_lines(current_run(name), name), f"{name}.log has no line from the running process"


async def test_the_request_id_reaches_the_worker_log(http: aiohttp.ClientSession, project: NewKey) -> None:
    request_id = f"flow-{uuid.uuid4().hex}"
    headers = {**basic_auth(project), "X-Request-ID": request_id}
    async with http.post(
        f"{API}/api/public/ingestion", json=langfuse_batch(f"trace-{uuid.uuid4()}", 2), headers=headers
    ) as r:
        assert r.status == 207

    def written() -> list[dict[str, Any]]:
        # The ClickHouse stage runs as two processes; either may hold the trace's partition.
        docs = [d for name in ("worker", "worker_2") for d in parse_lines(current_run(name), name)]
        return [
            d
            for d in docs
            if d["msg"] == "batch written"
            and (d.get("request_id") == request_id or request_id in (d.get("request_ids") or []))
        ]

    async def probe() -> list[dict[str, Any]]:
        return written()

    lines = await eventually(probe, lambda found: {d["stage"] for d in found} >= {"clickhouse"}, timeout_s=30)
    assert all(d["events"] >= 1 for d in lines)


async def test_secrets_never_reach_the_logs(http: aiohttp.ClientSession, project: NewKey) -> None:
    wrong = project.secret_key[:-4] + "XXXX"
    attempts = [
        basic_auth(project),
        {"Authorization": f"Bearer {project.secret_key}"},
        basic_auth(NewKey(project.project_id, project.public_key, wrong)),
        {"Authorization": f"Bearer {wrong}"},
    ]
    request_ids = []
    for headers in attempts:
        async with http.post(
            f"{API}/api/public/ingestion", json=langfuse_batch(f"trace-{uuid.uuid4()}", 1), headers=headers
        ) as r:
            assert r.status in (207, 401)
            request_ids.append(r.headers["X-Request-ID"])
    for request_id in request_ids:
        await _request_line(request_id)  # the requests were logged ...
    token_file = ROOT / ".stack" / "admin-token"
    secrets = {project.secret_key, wrong, "agenttrace:agenttrace@"}  # ... with no key, token or DSN password
    if token_file.exists():
        secrets.add(token_file.read_text().strip())
    for name in ("api", "worker"):
        text = (LOGS / f"{name}.log").read_text(errors="replace")
        leaked = [s[:12] + "..." for s in secrets if s in text]
        assert not leaked, f"{name}.log contains {leaked}"


# ---------------------------------------------------------------------------------------------
# A real Prometheus on the stack: targets up, series with their labels, rules and expressions.

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "ops" / "grafana" / "dashboards").glob("*.json"))
# Grafana's variables, replaced as Grafana would with a 1 s scrape interval.
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range": "5m",
    "${__range}": "5m",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every Prometheus target of every dashboard; Loki targets are LogQL."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, where: str, source: str) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and ds.get("type"):
                source = ds["type"]
            title = node.get("title")
            here = f"{where} / {title}" if isinstance(title, str) else where
            if isinstance(node.get("expr"), str) and source == "prometheus":
                found.append((here, node["expr"]))
            for key, value in node.items():
                if key != "templating":
                    walk(value, here, source)
        elif isinstance(node, list):
            for item in node:
                walk(item, where, source)

    for path in DASHBOARDS:
        walk(json.loads(path.read_text()), path.name, "prometheus")
    return found


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr.replace("$labels", ""), f"unreplaced Grafana variable in {expr!r}"
    return expr


@pytest.fixture
async def prometheus() -> AsyncIterator[str]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus not found: `make up` installs Debian's `prometheus` package")
    local = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.local.yml").read_text())
    local["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    local["rule_files"] = [str(RULES)]
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="agenttrace-prometheus-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(yaml.safe_dump(local))
        log = Path(tmp) / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            # Its query API answers 503 "Service Unavailable" until the TSDB is open.
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
                await eventually(lambda: _ready(http, base, proc), lambda ok: ok, timeout_s=30, every_s=0.2)
            yield base
        except BaseException:
            print(log.read_text(errors="replace")[-3000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


async def _ready(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, "prometheus exited during start-up"
    try:
        async with http.get(f"{base}/-/ready") as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _api(http: aiohttp.ClientSession, prom: str, path: str, **params: str) -> Any:
    try:
        async with http.get(f"{prom}{path}", params=params) as r:
            doc = await r.json(content_type=None)
    except (aiohttp.ClientConnectionError, ValueError):
        return None  # not up yet, or a plain-text 503 while starting: the caller polls
    return doc


async def _query(http: aiohttp.ClientSession, prom: str, expr: str) -> dict[str, Any]:
    return await _api(http, prom, "/api/v1/query", query=expr) or {}


async def test_prometheus_scrapes_and_evaluates_everything(
    http: aiohttp.ClientSession, project: NewKey, prometheus: str
) -> None:
    await make_traffic(http, project)
    for job in JOBS.values():
        await eventually(
            lambda job=job: _query(http, prometheus, f'up{{job="{job}"}} == 1'),
            lambda d: bool(d.get("data", {}).get("result")),
            timeout_s=20,
        )

    # Every metric with its labels, on the job where it applies, as Prometheus stored it.
    pattern = "|".join(sorted(series_name(m) for m in METRICS))

    async def series() -> list[dict[str, str]]:
        doc = await _api(http, prometheus, "/api/v1/series", **{"match[]": f'{{__name__=~"{pattern}"}}'})
        return (doc or {}).get("data", [])

    def problems_in(found: list[dict[str, str]]) -> list[str]:
        problems = []
        for where, job in JOBS.items():
            for metric, (_, processes) in METRICS.items():
                if where in processes:
                    sets = [
                        {k: v for k, v in s.items() if k not in ("__name__", "job", "instance")}
                        for s in found
                        if s["__name__"] == series_name(metric) and s.get("job") == job
                    ]
                    problems += check_metric(metric, sets, job)
        return problems

    found = await eventually(series, lambda f: not problems_in(f), timeout_s=10)
    assert not problems_in(found)

    # Every alert expression and dashboard query parses and evaluates.
    rules = yaml.safe_load(RULES.read_text())
    exprs = [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    exprs += [(where, grafana_to_promql(e)) for where, e in dashboard_exprs()]
    assert len(exprs) > len(rules["groups"])
    failures = []
    for where, expr in exprs:
        doc = await _query(http, prometheus, expr)
        if doc.get("status") != "success":
            failures.append(f"{where}: {doc.get('errorType')}: {doc.get('error')}\n    {expr}")
    assert not failures, "\n".join(failures)

    # The rules are loaded and have evaluated without error.
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}

    async def loaded() -> list[dict[str, Any]]:
        doc = await _api(http, prometheus, "/api/v1/rules")
        return [r for g in (doc or {}).get("data", {}).get("groups", []) for r in g["rules"]]

    def healthy(found_rules: list[dict[str, Any]]) -> bool:
        return {r["name"] for r in found_rules} == names and all(r.get("health") == "ok" for r in found_rules)

    loaded_rules = await eventually(loaded, healthy, timeout_s=10)
    assert healthy(loaded_rules)
