"""Every metric an alert rule or a dashboard queries exists, with the labels it has.

Our metrics are the table of ARCHITECTURE.md, copied below: a rename there, or a typo in a
panel, fails here instead of leaving an empty graph or an alert that can never fire.
Exporter metrics are listed one by one for the same reason. promtool (installed by
`make up`) parses every dashboard expression; a missing promtool fails the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"

# The metric table of ARCHITECTURE.md: name -> labels the code sets.
OUR_METRICS: dict[str, frozenset[str]] = {
    "http_requests_total": frozenset({"method", "path", "status"}),
    "http_request_duration_seconds": frozenset({"method", "path"}),
    "http_request_size_bytes": frozenset({"method", "path"}),
    "http_response_size_bytes": frozenset({"method", "path"}),
    "traces_ingested_total": frozenset({"source"}),
    "observations_ingested_total": frozenset({"source"}),
    "scores_created_total": frozenset({"source"}),
    "grpc_server_started_total": frozenset({"grpc_type", "grpc_service", "grpc_method"}),
    "grpc_server_handled_total": frozenset({"grpc_type", "grpc_service", "grpc_method", "grpc_code"}),
    "grpc_server_handling_seconds": frozenset({"grpc_type", "grpc_service", "grpc_method"}),
    "api_keys_created_total": frozenset(),
    "http_connections_open": frozenset(),
    "http_connections_refused_total": frozenset({"reason"}),
    "api_keys_revoked_total": frozenset(),
    "worker_jobs_processed_total": frozenset({"type", "status"}),
    "dead_letters_total": frozenset({"stage", "reason"}),
    "worker_job_duration_seconds": frozenset({"type"}),
    "worker_queue_depth": frozenset({"queue"}),
    "worker_active_jobs": frozenset({"type"}),
    "db_connections_active": frozenset({"db"}),
    "db_connections_idle": frozenset({"db"}),
    "db_connections_max": frozenset({"db"}),
    "db_query_duration_seconds": frozenset({"db", "operation"}),
    "clickhouse_insert_rows_total": frozenset({"table"}),
    "clickhouse_query_duration_seconds": frozenset({"operation"}),
    "traces_deleted_total": frozenset(),
    "clickhouse_purged_traces_total": frozenset(),
    "scores_deleted_total": frozenset(),
    "clickhouse_purged_scores_total": frozenset(),
    "retention_rows_deleted_total": frozenset({"table"}),
}
HISTOGRAMS = {
    "http_request_duration_seconds",
    "grpc_server_handling_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "worker_job_duration_seconds",
    "db_query_duration_seconds",
    "clickhouse_query_duration_seconds",
}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})

# Metrics of other programs that the rules and dashboards may use, listed one by one so a
# typo fails. node_filesystem_* (node_exporter) is accepted as a family.
EXPORTER_METRICS = {
    "up",
    # postgres_exporter
    "pg_up",
    "pg_settings_max_connections",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_deadlocks",
    "pg_stat_database_conflicts",
    # redis_exporter
    "redis_up",
    "redis_connected_clients",
    "redis_commands_processed_total",
    "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_memory_used_bytes",
    # ClickHouse's own endpoint (<prometheus> on :9363)
    "ClickHouseProfileEvents_InsertedRows",
    "ClickHouseProfileEvents_InsertQuery",
    "ClickHouseProfileEvents_DelayedInserts",
    "ClickHouseProfileEvents_RejectedInserts",
    "ClickHouseProfileEvents_MergedRows",
    "ClickHouseProfileEvents_Query",
    "ClickHouseProfileEvents_FailedQuery",
    "ClickHouseMetrics_Merge",
    "ClickHouseMetrics_Query",
    "ClickHouseMetrics_MemoryTracking",
    "ClickHouseAsyncMetrics_MaxPartCountForPartition",
    "ClickHouseAsyncMetrics_FilesystemMainPathAvailableBytes",
    "ClickHouseAsyncMetrics_FilesystemMainPathTotalBytes",
}


def alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def prometheus_targets() -> list[tuple[str, dict]]:
    """(where, target) for every dashboard target that queries Prometheus."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        nested = [child for p in board["panels"] for child in p.get("panels", [])]
        for panel in board["panels"] + nested:
            for target in panel.get("targets", []):
                ds = target.get("datasource", panel.get("datasource")) or {}
                if ds.get("type") == "prometheus":
                    found.append((f"{path.name}: {panel['title']} {target['refId']}", target))
    return found


# --- a small PromQL reader: enough to list the metrics and labels an expression uses ------

_GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def grafana_to_promql(expr: str) -> str:
    for macro, value in _GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def analyse(expr: str) -> tuple[set[str], list[tuple[str | None, set[str]]], set[str]]:
    """Metric names, (metric, matcher labels) per selector, and grouping labels of `expr`."""
    text = _STRING.sub('""', grafana_to_promql(expr))
    selectors = [(m.group(1), set(_MATCHER.findall(m.group(2)))) for m in _SELECTOR.finditer(text)]
    grouping = {label.strip() for m in _GROUPING.finditer(text) for label in m.group(1).split(",") if label.strip()}
    bare = _RANGE.sub(" ", _GROUPING.sub(" ", _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)))
    names = {n for n in _IDENT.findall(bare) if n not in _KEYWORDS}
    return names, selectors, grouping


def base_metric(name: str) -> str | None:
    if name in OUR_METRICS:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return None


def known_metric(name: str) -> bool:
    return base_metric(name) is not None or name in EXPORTER_METRICS or name.startswith("node_filesystem_")


def label_problems(expr: str) -> list[str]:
    names, selectors, grouping = analyse(expr)
    problems = [f"unknown metric {n}" for n in sorted(names) if not known_metric(n)]
    allowed_in_expr = set(TARGET_LABELS)
    for name in names:
        base = base_metric(name)
        if base is None:
            continue
        allowed = OUR_METRICS[base] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        allowed_in_expr |= allowed
        for selected, labels in selectors:
            if selected == name and labels - allowed:
                problems.append(f"{name} has no label(s) {sorted(labels - allowed)}")
    if names and all(base_metric(n) for n in names) and grouping - allowed_in_expr:
        problems.append(f"grouping by unknown label(s) {sorted(grouping - allowed_in_expr)}")
    return problems


def test_promql_reader_finds_metrics_and_labels():
    names, selectors, grouping = analyse(
        "histogram_quantile(0.99, sum by (le, path) (rate(http_request_duration_seconds_bucket"
        '{job="agenttrace-api",path=~"/v1.*"}[$__rate_interval]))) > 1e3 and on (path) up offset 5m'
    )
    assert names == {"http_request_duration_seconds_bucket", "up"}
    assert selectors == [("http_request_duration_seconds_bucket", {"job", "path"})]
    assert grouping == {"le", "path"}
    assert label_problems('sum by (stage) (worker_queue_depth{queue="x"})') == [
        "grouping by unknown label(s) ['stage']"
    ]
    assert label_problems('worker_queue_dept{stage="x"}') == ["unknown metric worker_queue_dept"]
    assert label_problems('worker_queue_depth{stage="x"}') == ["worker_queue_depth has no label(s) ['stage']"]


def test_alert_exprs_use_known_metrics_and_labels():
    problems = {name: label_problems(expr) for name, expr in alert_exprs().items()}
    assert not {k: v for k, v in problems.items() if v}


def test_dashboard_exprs_use_known_metrics_and_labels():
    problems = {where: label_problems(t["expr"]) for where, t in prometheus_targets()}
    assert not {k: v for k, v in problems.items() if v}


def test_promtool_parses_every_dashboard_expr(tmp_path):
    targets = prometheus_targets()
    assert len(targets) > 40
    rules = [{"alert": f"Expr{i}", "expr": grafana_to_promql(t["expr"])} for i, (_, t) in enumerate(targets)]
    rules_file = tmp_path / "dashboard_exprs.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (`make up` does)")
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    index = "\n".join(f"Expr{i}: {where}" for i, (where, _) in enumerate(targets))
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + index
