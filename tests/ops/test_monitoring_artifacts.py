"""Static checks of the monitoring artifacts: ops/prometheus, ops/alertmanager, ops/grafana, ops/loki.

Nothing here needs the stack. promtool (Debian's `prometheus` package) is installed by
`make up`; when it is missing the tests fail instead of skipping, so a green run always
means the rules were parsed and unit-tested.
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
PROMETHEUS = ROOT / "ops" / "prometheus"
GRAFANA = ROOT / "ops" / "grafana"
LOKI = ROOT / "ops" / "loki"

# The monitoring guide's alert rules, which operators' runbooks key on.
GUIDE_ALERTS = {
    "AgentTraceDown": (
        'up{job="agenttrace-api"} == 0',
        "1m",
        "critical",
        "AgentTrace API is down",
        "AgentTrace API has been down for more than 1 minute",
    ),
    "HighErrorRate": (
        'sum(rate(http_requests_total{job="agenttrace-api",status=~"5.."}[5m])) '
        '/ sum(rate(http_requests_total{job="agenttrace-api"}[5m])) > 0.05',
        "5m",
        "critical",
        "High error rate detected",
        "Error rate is above 5% for the last 5 minutes",
    ),
    "DatabaseConnectionExhausted": (
        "db_connections_active / db_connections_max > 0.9",
        "5m",
        "critical",
        "Database connections nearly exhausted",
        "More than 90% of database connections are in use",
    ),
    "HighLatency": (
        'histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{job="agenttrace-api"}[5m])) > 1',
        "10m",
        "warning",
        "High API latency",
        "P99 latency is above 1 second",
    ),
    "WorkerQueueBacklog": (
        "worker_queue_depth > 10000",
        "15m",
        "warning",
        "Worker queue backlog",
        "Worker queue depth is above 10000 for 15 minutes",
    ),
    "ClickHouseSlowQueries": (
        "histogram_quantile(0.99, rate(clickhouse_query_duration_seconds_bucket[5m])) > 10",
        "10m",
        "warning",
        "Slow ClickHouse queries",
        "P99 ClickHouse query time is above 10 seconds",
    ),
    "LowDiskSpace": (
        '(node_filesystem_avail_bytes{mountpoint="/var/lib/clickhouse"} '
        '/ node_filesystem_size_bytes{mountpoint="/var/lib/clickhouse"}) < 0.15',
        "30m",
        "warning",
        "Low disk space on ClickHouse volume",
        "Less than 15% disk space remaining",
    ),
}
OUR_ALERTS = {"WorkerDown", "ConsumerLagGrowing", "DeadLettersArriving"}

# The guide's sample dashboard: title -> (expr, legendFormat).
GUIDE_PANELS = {
    "Request Rate": ('rate(http_requests_total{job="agenttrace-api"}[5m])', "{{method}} {{path}}"),
    "Error Rate": (
        'sum(rate(http_requests_total{job="agenttrace-api",status=~"5.."}[5m])) '
        '/ sum(rate(http_requests_total{job="agenttrace-api"}[5m])) * 100',
        None,
    ),
    "P99 Latency": (
        'histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{job="agenttrace-api"}[5m]))',
        "p99",
    ),
    "Traces Ingested": ("rate(traces_ingested_total[5m])", "traces/sec"),
    "Worker Queue Depth": ("worker_queue_depth", "{{queue}}"),
}
DASHBOARDS = {
    "agenttrace-overview.json": "AgentTrace Overview",
    "agenttrace-api.json": "API Performance",
    "agenttrace-worker.json": "Worker Performance",
    "agenttrace-database.json": "Database Health",
    "agenttrace-clickhouse.json": "ClickHouse Metrics",
}
GUIDE_LOG_FIELDS = {"level", "msg", "request_id", "project_id", "trace_id", "caller", "duration_ms"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (`make up` does)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def squash(expr: str) -> str:
    return " ".join(expr.split())


def alert_rules() -> dict[str, dict]:
    return {r["alert"]: r for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for r in g["rules"]}


def dashboards() -> dict[str, dict]:
    return {name: json.loads((GRAFANA / "dashboards" / name).read_text()) for name in DASHBOARDS}


def panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p["type"] != "row"]


# --- Prometheus -------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_promtool_accepts_the_prometheus_config(config):
    # `check config` also loads and checks every rule file the config names.
    result = promtool("check", "config", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_guide_targets():
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    expected = {
        "agenttrace-api": "api:8080",
        "agenttrace-worker": "worker:8081",
        "clickhouse": "clickhouse:9363",
        "postgres": "postgres-exporter:9187",
        "redis": "redis-exporter:9121",
    }
    for job, target in expected.items():
        assert jobs[job]["static_configs"][0]["targets"] == [target], job
    for job in ("agenttrace-api", "agenttrace-worker", "clickhouse"):
        assert jobs[job]["metrics_path"] == "/metrics"
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_local_prometheus_scrapes_the_loopback_stack():
    config = load_yaml(PROMETHEUS / "prometheus.local.yml")
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs["agenttrace-api"] == ["127.0.0.1:8080"]
    assert jobs["agenttrace-worker"] == ["127.0.0.1:8081", "127.0.0.1:8083", "127.0.0.1:8082"]
    assert config["global"]["scrape_interval"] == "2s"
    assert config["rule_files"] == ["alerts.yml"]


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent():
    tests = [t for case in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"] for t in case["alert_rule_test"]]
    for alert in alert_rules():
        checks = [t for t in tests if t["alertname"] == alert]
        assert any(t.get("exp_alerts") for t in checks), f"{alert} is never shown firing"
        assert any(not t.get("exp_alerts") for t in checks), f"{alert} is never shown silent"


def test_alerts_keep_the_guide_contract():
    rules = alert_rules()
    assert set(rules) == set(GUIDE_ALERTS) | OUR_ALERTS
    for alert, (expr, for_, severity, summary, description) in GUIDE_ALERTS.items():
        rule = rules[alert]
        assert squash(rule["expr"]) == squash(expr), alert
        assert rule["for"] == for_, alert
        assert rule["labels"] == {"severity": severity}, alert
        assert rule["annotations"] == {"summary": summary, "description": description}, alert
    groups = {g["name"]: {r["alert"] for r in g["rules"]} for g in load_yaml(PROMETHEUS / "alerts.yml")["groups"]}
    assert groups["agenttrace-critical"] == {"AgentTraceDown", "HighErrorRate", "DatabaseConnectionExhausted"}
    assert groups["agenttrace-warning"] == {
        "HighLatency",
        "WorkerQueueBacklog",
        "ClickHouseSlowQueries",
        "LowDiskSpace",
    }


def test_pipeline_alerts_watch_lag_dead_letters_and_the_worker():
    rules = alert_rules()
    assert squash(rules["WorkerDown"]["expr"]) == 'up{job="agenttrace-worker"} == 0'
    assert "deriv(worker_queue_depth[" in rules["ConsumerLagGrowing"]["expr"]
    assert re.search(r"worker_queue_depth > \d+", rules["ConsumerLagGrowing"]["expr"])
    assert "increase(dead_letters_total[" in rules["DeadLettersArriving"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description"} <= set(rule["annotations"])


# --- Alertmanager -----------------------------------------------------------------------


def test_alertmanager_routes_by_severity():
    config = load_yaml(ROOT / "ops" / "alertmanager" / "alertmanager.yml")
    receivers = {r["name"] for r in config["receivers"]}
    route = config["route"]
    assert route["receiver"] in receivers
    by_severity = {m: r["receiver"] for r in route["routes"] for m in r["matchers"]}
    assert by_severity['severity="critical"'] in receivers
    assert by_severity['severity="warning"'] in receivers
    assert by_severity['severity="critical"'] != by_severity['severity="warning"']


# --- Grafana ----------------------------------------------------------------------------


def test_grafana_provisions_prometheus_and_loki():
    sources = {
        d["name"]: d for d in load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    }
    assert sources["Prometheus"]["type"] == "prometheus"
    assert sources["Prometheus"]["url"] == "http://prometheus:9090"
    assert sources["Prometheus"]["isDefault"] is True
    assert sources["Loki"]["type"] == "loki"
    assert sources["Loki"]["url"] == "http://loki:3100"
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"


def test_the_five_dashboards_are_provisionable():
    files = {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    assert files == set(DASHBOARDS)
    uids = set()
    for name, board in dashboards().items():
        assert board["title"] == DASHBOARDS[name]
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), name
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36, name
        assert "agenttrace" in board["tags"], name
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for p in panels(board):
            # graph and singlestat are Angular panels, removed from current Grafana.
            assert p["type"] in {"timeseries", "stat", "gauge", "bargauge", "table", "logs"}, (name, p["title"])
            assert p["datasource"]["uid"].startswith("${"), (name, p["title"])
            assert p["targets"], (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"][2:-1] in variables, (name, p["title"])
    assert len(uids) == len(DASHBOARDS)


def test_overview_has_the_guide_sample_panels():
    overview = {p["title"]: p for p in panels(dashboards()["agenttrace-overview.json"])}
    for title, (expr, legend) in GUIDE_PANELS.items():
        assert title in overview, title
        targets = overview[title]["targets"]
        match = [t for t in targets if squash(t["expr"]) == squash(expr)]
        assert match, f"{title}: expected the guide's expr {expr}"
        if legend:
            assert match[0]["legendFormat"] == legend, title
    assert overview["Error Rate"]["type"] == "stat"


def test_logs_panels_query_the_promtail_labels():
    for name, board in dashboards().items():
        for p in panels(board):
            if p["type"] == "logs":
                for t in p["targets"]:
                    assert t["expr"].startswith('{job="agenttrace"'), (name, p["title"])


# --- Loki and Promtail ------------------------------------------------------------------


def test_loki_keeps_the_guide_schema():
    config = load_yaml(LOKI / "loki-config.yaml")
    assert config["server"]["http_listen_port"] == 3100
    assert config["auth_enabled"] is False
    assert config["ingester"]["lifecycler"]["ring"]["kvstore"]["store"] == "inmemory"
    (period,) = config["schema_config"]["configs"]
    assert (period["store"], period["object_store"], period["schema"]) == ("boltdb-shipper", "filesystem", "v11")
    assert period["index"] == {"prefix": "index_", "period": "24h"}
    shipper = config["storage_config"]["boltdb_shipper"]
    assert shipper == {
        "active_index_directory": "/loki/index",
        "cache_location": "/loki/cache",
        "shared_store": "filesystem",
    }
    assert config["storage_config"]["filesystem"]["directory"] == "/loki/chunks"


def _stage(stages: list[dict], kind: str) -> list[dict]:
    return [s[kind] for s in stages if kind in s]


def test_promtail_parses_json_logs_into_few_labels():
    config = load_yaml(LOKI / "promtail-config.yaml")
    assert config["clients"] == [{"url": "http://loki:3100/loki/api/v1/push"}]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}

    docker = jobs["agenttrace"]
    assert docker["docker_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"
    relabels = {r["target_label"]: r for r in docker["relabel_configs"]}
    assert relabels["container"]["source_labels"] == ["__meta_docker_container_name"]
    assert relabels["service"]["source_labels"] == ["__meta_docker_container_label_com_docker_compose_service"]
    assert relabels["job"]["replacement"] == "agenttrace"

    files = next(j for j in config["scrape_configs"] if "static_configs" in j)
    assert files["static_configs"][0]["labels"]["__path__"] == "/var/log/agenttrace/*.log"
    assert files["static_configs"][0]["labels"]["job"] == "agenttrace"

    for job in (docker, files):
        stages = job["pipeline_stages"]
        (json_stage,) = _stage(stages, "json")
        assert set(json_stage["expressions"]) >= GUIDE_LOG_FIELDS, job["job_name"]
        labels = {name for stage in _stage(stages, "labels") for name in stage}
        assert "level" in labels
        # Unbounded values must never become stream labels.
        assert labels <= {"level", "service"}, job["job_name"]
