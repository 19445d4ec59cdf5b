"""Static checks of the deployment artifacts: compose/ and ops/k8s/.

docker-compose (Debian's 1.29.2, installed by `make up`) validates the Compose file
offline; no Docker engine is needed. A missing docker-compose fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
K8S = ROOT / "ops" / "k8s"

SETTINGS_ENV = {
    "AGENTTRACE_KAFKA_BOOTSTRAP",
    "AGENTTRACE_CLICKHOUSE_URL",
    "AGENTTRACE_POSTGRES_DSN",
    "AGENTTRACE_REDIS_URL",
}
# Cluster mode (README "Cluster mode"): in the Kubernetes config, next to the addresses.
CLUSTER_ENV = {
    "AGENTTRACE_TOPIC_PARTITIONS",
    "AGENTTRACE_TOPIC_REPLICATION",
    "AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS",
    "AGENTTRACE_CLICKHOUSE_CLUSTER",
}
COMPOSE_SERVICES = {
    "api",
    "worker",
    "migrate",
    "kafka",
    "kafka-2",
    "kafka-3",
    "clickhouse",
    "postgres",
    "redis",
    "prometheus",
    "grafana",
    "loki",
    "promtail",
    "alertmanager",
    "postgres-exporter",
    "redis-exporter",
}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def compose_file() -> dict:
    return load_yaml(COMPOSE / "docker-compose.yml")


def bind_mounts(service: dict) -> dict[Path, str]:
    """Host path -> container path of a service's bind mounts (`src:dst[:mode]`), with
    `${VAR:-default}` read as its default and named volumes left out."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", spec).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[(COMPOSE / source).resolve()] = target
    return mounts


# --- Docker Compose ---------------------------------------------------------------------


def test_docker_compose_accepts_the_file():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not found: install Debian's `docker-compose` package (`make up` does)")
    result = subprocess.run(
        [exe, "-f", str(COMPOSE / "docker-compose.yml"), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_whole_stack_with_healthchecks():
    services = compose_file()["services"]
    assert set(services) == COMPOSE_SERVICES
    for name, service in services.items():
        if service.get("restart") != "no":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["api"]["command"] == ["api", "--host", "0.0.0.0"]
    assert services["worker"]["command"] == ["worker", "--host", "0.0.0.0"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert set(services[name]["environment"]) >= SETTINGS_ENV, name
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
    assert all(c["condition"] == "service_healthy" for c in services["migrate"]["depends_on"].values())


PROFILE = ("--profile", "cluster", "config")


def test_compose_cluster_profile_runs_three_brokers_in_one_quorum():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not found: install Debian's `docker-compose` package (`make up` does)")
    result = subprocess.run(
        [exe, "-f", str(COMPOSE / "docker-compose.yml"), "--env-file", str(COMPOSE / "cluster.env"), *PROFILE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    brokers = [services[name]["environment"] for name in ("kafka", "kafka-2", "kafka-3")]
    assert sorted(int(b["KAFKA_NODE_ID"]) for b in brokers) == [1, 2, 3]
    voters = {b["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert {b["KAFKA_ADVERTISED_LISTENERS"] for b in brokers} == {
        f"PLAINTEXT://{n}:9092" for n in ("kafka", "kafka-2", "kafka-3")
    }
    assert all(int(b["KAFKA_MIN_INSYNC_REPLICAS"]) == 2 for b in brokers)
    app = services["api"]["environment"]
    assert app["AGENTTRACE_KAFKA_BOOTSTRAP"] == "kafka:9092,kafka-2:9092,kafka-3:9092"
    assert (app["AGENTTRACE_TOPIC_REPLICATION"], app["AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    # Without the profile the extra brokers stay out and the single node keeps its settings.
    raw = compose_file()["services"]
    assert raw["kafka-2"]["profiles"] == raw["kafka-3"]["profiles"] == ["cluster"]
    assert "profiles" not in raw["kafka"]


def test_compose_builds_a_non_root_python_image():
    build = compose_file()["services"]["api"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == COMPOSE / "Dockerfile"
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim") >= 1
    assert "compose/install.sh /opt/agenttrace" in dockerfile  # pip install . and the compiled modules
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("root", "0")), "the image must not run as root"


def build_context(into: Path) -> None:
    """What the Dockerfile's build stage copies, as its COPY lines and the .dockerignore say."""
    (dockerfile,) = [s for s in (COMPOSE / "Dockerfile").read_text().split("\nFROM ") if " AS build\n" in s]
    ignored = [
        line.removeprefix("**/")
        for line in (COMPOSE / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("**/")
    ]
    assert "*.so" in ignored, "a working tree's compiled modules must stay out of the image"
    for *sources, dest in (line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")):
        for source in sources:
            path, target = ROOT / source, into / dest
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns(*ignored), dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)


def seed_compiler_state(src: Path) -> None:
    """This checkout's build state (`make up` compiled the same modules) as the copy's: mypyc
    still type-checks and generates the C, and setuptools, finding the library newer than that
    C, links nothing anew. That saves the copy ~3 of this test's ~4 minutes; a compile from
    nothing is `make up`'s in every fresh checkout. Changed sources generate other C, which is
    compiled."""
    built = ROOT / ".stack" / "native"
    if not (built / "lib").is_dir():
        return
    into = src / ".stack" / "native"
    for part in ("c", "lib", "mypy_cache"):
        shutil.copytree(built / part, into / part)


@pytest.mark.timeout(900)
def test_the_image_install_compiles_the_per_event_modules(tmp_path):
    """compose/install.sh, as the image's build stage runs it, on a copy of its build context:
    the installed package runs the compiled modules, and nothing in it is older than its source
    (the image's user could not remove a stale build: it would fail to start)."""
    src, prefix = tmp_path / "src", tmp_path / "opt"
    build_context(src)
    assert not list(src.rglob("*.so"))
    seed_compiler_state(src)
    python = Path(sys.base_prefix) / "bin" / "python3"  # a venv's base, as the image's python
    done = subprocess.run(
        ["sh", str(src / "compose" / "install.sh"), str(prefix)],
        env={**os.environ, "PYTHON": str(python)},
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "install: the per-event modules run compiled" in done.stdout, done.stdout + done.stderr
    check = subprocess.run(
        [
            str(prefix / "bin" / "python"),
            "-c",
            "import sys, pipeline.compiled as c, pipeline.envelope as e, sinks.clickhouse.writer as w;"
            "assert str(c.ROOT) != sys.argv[1], c.ROOT;"  # the installed package, not this tree
            "assert c.active() and not c.stale(c.extensions(), c.LIBRARY);"
            "assert e.__file__.endswith('.so') and w.__file__.endswith('.so'), (e.__file__, w.__file__)",
            str(ROOT),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    cli = subprocess.run([str(prefix / "bin" / "agenttrace"), "--help"], capture_output=True, text=True)
    assert cli.returncode == 0 and "worker" in cli.stdout, cli.stdout + cli.stderr


def test_kafka_runs_in_kraft_mode():
    env = compose_file()["services"]["kafka"]["environment"]
    assert compose_file()["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # kafka-storage.sh accepts only a base64-encoded 16-byte UUID.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])


def test_compose_service_names_are_the_scrape_targets():
    services = compose_file()["services"]
    config = load_yaml(ROOT / "ops" / "prometheus" / "prometheus.yml")
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    targets += config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        host, _port = target.rsplit(":", 1)
        if host != "localhost":
            assert host in services, f"scrape target {target} is no Compose service"


def test_compose_mounts_the_shared_ops_files():
    services = compose_file()["services"]
    mounts = {name: bind_mounts(service) for name, service in services.items()}
    ops = ROOT / "ops"
    assert mounts["prometheus"][ops / "prometheus"] == "/etc/prometheus"
    assert mounts["alertmanager"][ops / "alertmanager" / "alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"
    assert mounts["grafana"][ops / "grafana" / "provisioning"] == "/etc/grafana/provisioning"
    assert mounts["grafana"][ops / "grafana" / "dashboards"] == "/etc/grafana/dashboards"
    assert mounts["loki"][ops / "loki" / "loki-config.yaml"] == "/etc/loki/loki-config.yaml"
    assert mounts["promtail"][ops / "loki" / "promtail-config.yaml"] == "/etc/promtail/promtail-config.yaml"
    assert mounts["promtail"][ROOT / ".stack" / "logs"] == "/var/log/agenttrace"
    for name, paths in mounts.items():
        for path in paths:
            if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".stack"):
                assert path.exists(), f"{name} mounts missing {path}"


def test_clickhouse_serves_prometheus_metrics_on_9363():
    mounts = bind_mounts(compose_file()["services"]["clickhouse"])
    (snippet,) = [src for src, dst in mounts.items() if dst.startswith("/etc/clickhouse-server/config.d/")]
    xml = snippet.read_text()
    assert "<port>9363</port>" in xml and "<endpoint>/metrics</endpoint>" in xml


# --- Kubernetes -------------------------------------------------------------------------


def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def k8s(kind: str, name: str) -> dict:
    (obj,) = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()
    return float(number) * (1024 if unit == "Gi" else 1)


def test_kustomization_lists_every_manifest():
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["namespace"] == "agenttrace"
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for obj in k8s_objects():
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]


@pytest.mark.parametrize(
    ("name", "ports", "memory_limit_mi"),
    [("agenttrace-api", {"http": 8080, "grpc": 4317}, 200), ("agenttrace-worker", {"http": 8081}, 400)],
)
def test_deployments_probe_and_limit_the_processes(name, ports, memory_limit_mi):
    deployment = k8s("Deployment", name)
    assert deployment["metadata"]["namespace"] == "agenttrace"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == name
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": name}
    (container,) = pod["spec"]["containers"]
    role = name.removeprefix("agenttrace-")
    assert container["command"] + container["args"] == ["agenttrace", role, "--host", "0.0.0.0"]
    assert container["ports"] == [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports.items()]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    resources = container["resources"]
    assert mebibytes(resources["limits"]["memory"]) == memory_limit_mi
    assert mebibytes(resources["requests"]["memory"]) <= memory_limit_mi
    assert resources["requests"]["cpu"]
    env = {e["name"]: e["valueFrom"] for e in container["env"]}
    assert set(env) == SETTINGS_ENV | CLUSTER_ENV
    for var, source in env.items():
        ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
        assert ref["key"] == var
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_migrations_run_as_a_job():
    job = k8s("Job", "agenttrace-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] + container["args"] == ["agenttrace", "migrate"]
    assert {e["name"] for e in container["env"]} == SETTINGS_ENV | CLUSTER_ENV


@pytest.mark.parametrize(("name", "port"), [("agenttrace-api", 8080), ("agenttrace-worker", 8081)])
def test_services_and_service_monitors_expose_port_http(name, port):
    service = k8s("Service", name)
    assert service["metadata"]["labels"]["app"] == name
    assert service["spec"]["selector"] == {"app": name}
    assert service["spec"]["ports"][0]["name"] == "http" and service["spec"]["ports"][0]["port"] == port
    monitor = k8s("ServiceMonitor", name)
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": name}}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["agenttrace"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}


def test_otlp_grpc_is_exposed_on_4317():
    # `--host 0.0.0.0` makes the api's gRPC listener (127.0.0.1:4317 by default) reachable too.
    service = k8s("Service", "agenttrace-api")
    grpc_port = {p["name"]: p for p in service["spec"]["ports"]}["grpc"]
    assert (grpc_port["port"], grpc_port["targetPort"], grpc_port["appProtocol"]) == (4317, "grpc", "grpc")
    api = compose_file()["services"]["api"]
    assert api["command"] == ["api", "--host", "0.0.0.0"]
    assert "127.0.0.1:4317:4317" in api["ports"]
    assert "4317" in re.findall(r"^EXPOSE (.+)$", (COMPOSE / "Dockerfile").read_text(), re.M)[0].split()


def test_worker_autoscales_on_queue_depth():
    hpa = k8s("HorizontalPodAutoscaler", "agenttrace-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agenttrace-worker"}
    (metric,) = hpa["spec"]["metrics"]
    source = metric[metric["type"].lower()]
    assert metric["type"] in {"Pods", "External"}
    assert source["metric"]["name"] == "worker_queue_depth"
    assert source["target"]["type"] == "AverageValue"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in k8s("Deployment", "agenttrace-worker")["spec"], "the HPA owns the replica count"
    adapter = load_yaml(K8S / "prometheus-adapter" / "rules.yaml")
    (rule,) = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    assert rule["seriesQuery"].startswith("worker_queue_depth{")
    assert rule["name"]["as"] == "worker_queue_depth"


def test_prometheus_rule_matches_alerts_yml():
    rule = k8s("PrometheusRule", "agenttrace")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = load_yaml(ROOT / "ops" / "prometheus" / "alerts.yml")
    assert rule["spec"]["groups"] == alerts["groups"], "ops/k8s/prometheusrule.yaml is out of step with alerts.yml"


def test_disruptions_take_one_pod_at_a_time_and_workers_spread_over_nodes():
    assert k8s("PodDisruptionBudget", "agenttrace-api")["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": {"app": "agenttrace-api"}},
    }
    assert k8s("PodDisruptionBudget", "agenttrace-worker")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app": "agenttrace-worker"}},
    }
    assert k8s("Deployment", "agenttrace-api")["spec"]["replicas"] >= 2
    for name in ("agenttrace-api", "agenttrace-worker"):
        anti = k8s("Deployment", name)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        by_host = [t for t in terms if t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"]
        assert by_host and by_host[0]["podAffinityTerm"]["labelSelector"] == {"matchLabels": {"app": name}}


def test_cluster_config_matches_the_engines():
    config = k8s("ConfigMap", "agenttrace-config")["data"]
    assert set(config) >= CLUSTER_ENV
    kafka = k8s("Kafka", "agenttrace")
    (pool,) = [o for o in k8s_objects() if o["kind"] == "KafkaNodePool"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "agenttrace"
    assert pool["spec"]["replicas"] >= int(config["AGENTTRACE_TOPIC_REPLICATION"])
    assert set(pool["spec"]["roles"]) == {"broker", "controller"}
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    kafka_config = kafka["spec"]["kafka"]["config"]
    assert kafka_config["min.insync.replicas"] == int(config["AGENTTRACE_TOPIC_MIN_INSYNC_REPLICAS"])
    assert kafka_config["auto.create.topics.enable"] is False
    host = config["AGENTTRACE_KAFKA_BOOTSTRAP"].split(":")[0]
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap.{kafka['metadata']['namespace']}.svc"

    chi = k8s("ClickHouseInstallation", "agenttrace")
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["name"] == config["AGENTTRACE_CLICKHOUSE_CLUSTER"]
    assert cluster["layout"]["shardsCount"] == 2 and cluster["layout"]["replicasCount"] == 2
    assert all(s["internalReplication"] == "true" for s in cluster["layout"]["shards"])
    assert chi["spec"]["configuration"]["zookeeper"]["nodes"], "Replicated tables need Keeper"
    keeper = k8s("ClickHouseKeeperInstallation", "agenttrace")
    assert keeper["spec"]["configuration"]["clusters"][0]["layout"]["replicasCount"] == 3
    profile = {k.split("/", 1)[1]: v for k, v in chi["spec"]["configuration"]["profiles"].items()}
    assert profile["load_balancing"] == "in_order" and profile["insert_distributed_sync"] == 1
