"""A Kafka outage against a pipeline of its own: log volume, time to 503, recovery, nothing lost.

    .venv/bin/python bench/outage.py                 # one 60 s outage
    .venv/bin/python bench/outage.py --runs 3 --down-s 60

Starts a PRIVATE single-node KRaft broker (the jars of .stack/kafka/libs, data in a temp dir,
127.0.0.1:19092, controller 19093; the shared broker on 9092 is never touched), then an api
(--api-port 18100, OTLP/gRPC 18104) and two workers (ClickHouse stage on 18101, Postgres stage
on 18102) bootstrapped to it, on topics of their own and the shared ClickHouse and Postgres. It
sends steady load (Langfuse batches of --batch events at --rate events/s, never retried),
stops the broker (SIGTERM; --kill for SIGKILL) for --down-s seconds, starts it again on the
same data, keeps sending for --after-s, then waits until every accepted event is in ClickHouse.
Everything it started is stopped at the end.

Per run it prints: the bytes each process logged from the broker's stop until 5 s after the
first accepted request since its restart (budget: 1 MB in all), the most lines any message kind
wrote in one second per process, the time from the stop to the first 503 and the latency of
503s once Kafka is known down, when /readyz went unready and ready again, the time from the
restart to the first 207, and accepted against persisted observations (0 lost).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agenttrace.settings import Settings
from bench.load import batch_body, new_key
from sinks.clickhouse.client import ClickHouse

ROOT = Path(__file__).resolve().parents[1]
AGENTTRACE = ROOT / ".venv" / "bin" / "agenttrace"
LOG_BUDGET_BYTES = 1_000_000
WINDOW_TAIL_S = 5.0
BROKER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Broker:
    """A single-node KRaft broker of this script's own, stopped and started on the same data."""

    def __init__(self, workdir: Path, port: int, controller: int) -> None:
        self.port = port
        self.dir = workdir / "kafka"
        self.log = workdir / "kafka.log"
        self.props = self.dir / "server.properties"
        self.libs = ROOT / ".stack" / "kafka" / "libs"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True)
        self.props.write_text(BROKER_PROPERTIES.format(port=port, controller=controller, data=self.dir / "data"))
        java = ["java", "-cp", f"{self.libs}/*", "kafka.tools.StorageTool"]
        cluster = subprocess.run([*java, "random-uuid"], capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run([*java, "format", "-t", cluster, "-c", str(self.props)], capture_output=True, check=True)

    def start(self) -> None:
        log4j = ROOT / "ops" / "stack" / "kafka" / "log4j2.yaml"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "java",
                    "-Xms128m",
                    "-Xmx512m",
                    f"-Dlog4j2.configurationFile={log4j}",
                    "-cp",
                    f"{self.libs}/*",
                    "kafka.Kafka",
                    str(self.props),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, since: int, timeout_s: float = 120) -> None:
        """Until the broker logged that it started (after byte `since` of its log) and listens."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b"Kafka Server started" in self.log.read_bytes()[since:] and not port_free(self.port):
                return
            assert self.proc is not None and self.proc.poll() is None, f"broker exited; see {self.log}"
            await asyncio.sleep(0.2)
        raise SystemExit(f"the broker did not start within {timeout_s}s; see {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class App:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]


def start_app(name: str, args: list[str], port: int, env: dict[str, str], workdir: Path) -> App:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return App(name, port, log, proc)


async def readyz(http: aiohttp.ClientSession, port: int) -> int:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


@dataclass
class Answer:
    sent: float
    done: float
    status: int
    observations: tuple[str, ...] = ()  # the generations' ids it accepted


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    readyz: list[tuple[float, int]] = field(default_factory=list)
    # (time, the size of each process's log), sampled with /readyz
    log_sizes: list[tuple[float, list[int]]] = field(default_factory=list)


def log_window(app: App, start: int, end: int) -> tuple[int, dict[str, int], dict[str, int]]:
    """Bytes of `app`'s log between two offsets, the most lines per second of each message
    kind (level and message; "other" for lines that are not JSON), and lines per kind."""
    with app.log.open("rb") as f:
        f.seek(start)
        text = f.read(end - start)
    per_second: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for line in text.splitlines():
        try:
            doc = orjson.loads(line)
            kind, second = f"{doc.get('level')}: {doc.get('msg')}", str(doc.get("ts", ""))[:19]
        except orjson.JSONDecodeError:
            kind, second = "other (not JSON)", "?"
        per_second[kind][second] += 1
        total[kind] += 1
    return len(text), {k: max(c.values()) for k, c in per_second.items()}, dict(total)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def one_run(args: argparse.Namespace, run: int) -> dict:
    for port in (args.kafka_port, args.controller_port, args.api_port, args.grpc_port, *args.worker_ports):
        if not port_free(port):
            raise SystemExit(f"port {port} is in use; stop what listens there or choose others")
    workdir = Path(tempfile.mkdtemp(prefix="agenttrace-outage-"))
    name = f"outage{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "AGENTTRACE_KAFKA_BOOTSTRAP": f"127.0.0.1:{args.kafka_port}",
        "AGENTTRACE_TOPIC_EVENTS": f"agenttrace.{name}.events",
        "AGENTTRACE_TOPIC_DLQ": f"agenttrace.{name}.dlq",
        "AGENTTRACE_CONSUMER_GROUP_PREFIX": f"{name}-",
        "AGENTTRACE_GRPC_ADDRESS": f"127.0.0.1:{args.grpc_port}",
        "PYTHONPATH": str(ROOT),
    }
    broker = Broker(workdir, args.kafka_port, args.controller_port)
    apps: list[App] = []
    try:
        broker.start()
        await broker.ready(0)
        migrate = await asyncio.create_subprocess_exec(
            str(AGENTTRACE), "migrate", cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(migrate.communicate(), 180)
        if migrate.returncode:
            raise SystemExit(f"agenttrace migrate failed: {err.decode(errors='replace')[-2000:]}")
        ch_port, pg_port = args.worker_ports
        apps = [
            start_app("api", [str(AGENTTRACE), "api", "--port", str(args.api_port)], args.api_port, env, workdir),
            start_app(
                "worker",
                [str(AGENTTRACE), "worker", "--stage", "clickhouse", "--port", str(ch_port)],
                ch_port,
                env,
                workdir,
            ),
            start_app(
                "worker_postgres",
                ["nice", "-n", "10", str(AGENTTRACE), "worker", "--stage", "postgres", "--port", str(pg_port)],
                pg_port,
                env,
                workdir,
            ),
        ]
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            for app in apps:
                while await readyz(http, app.port) != 200:
                    assert time.monotonic() < deadline, f"{app.name} not ready; see {app.log}"
                    await asyncio.sleep(0.3)
        return await outage(args, run, broker, apps)
    finally:
        for app in apps:
            if app.proc.poll() is None:
                app.proc.send_signal(signal.SIGTERM)
        for app in apps:
            try:
                app.proc.wait(30)
            except subprocess.TimeoutExpired:
                app.proc.kill()
        broker.stop()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def outage(args: argparse.Namespace, run: int, broker: Broker, apps: list[App]) -> dict:
    project_id, pk, sk = await new_key()
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode(),
        "Content-Type": "application/json",
    }
    url = f"http://127.0.0.1:{args.api_port}/api/public/ingestion"
    tag = uuid.uuid4().hex[:8]
    load = Load()
    stop_sending = asyncio.Event()
    sizes = lambda: [app.log.stat().st_size for app in apps]  # noqa: E731

    async def send(http: aiohttp.ClientSession, n: int) -> None:
        sent = time.monotonic()
        try:
            async with http.post(url, data=batch_body(tag, n, args.batch), headers=headers) as r:
                doc = await r.read()
                observations: tuple[str, ...] = ()
                if r.status == 207:
                    answer = orjson.loads(doc)
                    ok = {s["id"] for s in answer["successes"]}
                    # batch_body's generation i has event id {tag}-e{n}-{i}, observation id {tag}-g{n}-{i}
                    observations = tuple(f"{tag}-g{n}-{i}" for i in range(1, args.batch) if f"{tag}-e{n}-{i}" in ok)
                load.answers.append(Answer(sent, time.monotonic(), r.status, observations))
        except (aiohttp.ClientError, TimeoutError):
            load.answers.append(Answer(sent, time.monotonic(), 0))

    async def sender(http: aiohttp.ClientSession) -> None:
        interval = args.batch / args.rate
        tasks: set[asyncio.Task[None]] = set()
        n, next_at = 0, time.monotonic()
        while not stop_sending.is_set():
            if len(tasks) < 1000:  # requests waiting on a timeout are not multiplied without end
                task = asyncio.create_task(send(http, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            n += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)

    async def prober(http: aiohttp.ClientSession) -> None:
        while not stop_sending.is_set():
            load.readyz.append((time.monotonic(), await readyz(http, args.api_port)))
            load.log_sizes.append((time.monotonic(), sizes()))
            await asyncio.sleep(0.5)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        senders = asyncio.gather(sender(http), prober(http))
        await asyncio.sleep(args.before_s)
        before = sizes()
        t_stop = time.monotonic()
        broker.stop(signal.SIGKILL if args.kill else signal.SIGTERM)
        t_stopped = time.monotonic()
        print(f"run {run}: broker stopped in {t_stopped - t_stop:.1f}s; down for {args.down_s:.0f}s", flush=True)
        await asyncio.sleep(max(0.0, args.down_s - (t_stopped - t_stop)))
        t_restart = time.monotonic()
        offset = broker.log.stat().st_size
        broker.start()
        await broker.ready(offset)
        t_ready = time.monotonic()
        await asyncio.sleep(args.after_s)
        stop_sending.set()
        await senders
    answers = load.answers
    statuses = Counter(a.status for a in answers)
    first_503 = min((a.done for a in answers if a.status == 503 and a.done >= t_stop), default=None)
    known_down = [a.done - a.sent for a in answers if a.status == 503 and first_503 and a.sent >= first_503]
    recovered = min((a.done for a in answers if a.status == 207 and a.sent >= t_restart), default=None)
    last_503 = max((a.done for a in answers if a.status == 503), default=None)
    unready = min((t for t, s in load.readyz if t >= t_stop and s != 200), default=None)
    ready_again = min((t for t, s in load.readyz if unready and t >= t_restart and s == 200), default=None)
    # The window: from the stop until WINDOW_TAIL_S after the first acceptance since the
    # restart (its recovery lines included), cut at the log sizes sampled then.
    closes = (recovered or t_ready) + WINDOW_TAIL_S
    window_end = next((sz for t, sz in load.log_sizes if t >= closes), sizes())
    logs = {}
    for app, start, end in zip(apps, before, window_end, strict=True):
        written, peak_rate, kinds = log_window(app, start, end)
        logs[app.name] = {"bytes": written, "max_lines_per_s": peak_rate, "lines": kinds}
    accepted = {i for a in answers for i in a.observations}
    ch = ClickHouse(Settings.from_env().clickhouse)
    await ch.start()
    sql = f"SELECT DISTINCT id FROM observations WHERE project_id = '{project_id}'"
    deadline = time.monotonic() + args.persist_timeout_s
    while not accepted <= (persisted := {row[0] for row in await ch.fetch(sql)}) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await ch.close()
    total_log = sum(v["bytes"] for v in logs.values())
    return {
        "run": run,
        "load_average": os.getloadavg()[0],
        "down_s": round(t_ready - t_stop, 1),
        "requests": dict(statuses),
        "log_bytes_outage": {k: v["bytes"] for k, v in logs.items()},
        "log_bytes_outage_total": total_log,
        "log_within_budget": total_log <= LOG_BUDGET_BYTES,
        "max_lines_per_s": {k: v["max_lines_per_s"] for k, v in logs.items()},
        "lines": {k: v["lines"] for k, v in logs.items()},
        "stop_to_first_503_s": None if first_503 is None else round(first_503 - t_stop, 3),
        "broker_exit_to_first_503_s": None if first_503 is None else round(first_503 - t_stopped, 3),
        "known_down_503_ms": {
            "n": len(known_down),
            "p50": round(pct(known_down, 0.5) * 1000, 1),
            "p99": round(pct(known_down, 0.99) * 1000, 1),
            "max": round(max(known_down, default=float("nan")) * 1000, 1),
        },
        "stop_to_unready_s": None if unready is None else round(unready - t_stop, 1),
        "restart_to_ready_again_s": None if ready_again is None else round(ready_again - t_restart, 1),
        "broker_restart_s": round(t_ready - t_restart, 1),
        "broker_ready_to_first_207_s": None if recovered is None else round(recovered - t_ready, 2),
        "last_503_after_broker_ready_s": None if last_503 is None else round(last_503 - t_ready, 2),
        "accepted_observations": len(accepted),
        "persisted_observations": len(persisted),
        "lost": len(accepted - persisted),
        # Answered 503 (or cut off) but written all the same: at least once, a retry carries the same ids.
        "written_though_refused": len(persisted - accepted),
    }


def summary(results: list[dict]) -> None:
    def med(key: str) -> str:
        values = [r[key] for r in results if r[key] is not None]
        return f"{statistics.median(values)} ({', '.join(str(v) for v in values)})" if values else "n/a"

    print(f"medians of {len(results)} run(s):")
    for key in (
        "log_bytes_outage_total",
        "stop_to_first_503_s",
        "broker_exit_to_first_503_s",
        "stop_to_unready_s",
        "broker_ready_to_first_207_s",
        "restart_to_ready_again_s",
        "lost",
        "written_though_refused",
    ):
        print(f"  {key:30} {med(key)}")
    p99s = [r["known_down_503_ms"]["p99"] for r in results]
    print(f"  {'known_down_503_p99_ms':30} {statistics.median(p99s)} ({', '.join(str(v) for v in p99s)})")


async def main(args: argparse.Namespace) -> int:
    results = []
    for run in range(1, args.runs + 1):
        result = await one_run(args, run)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode(), flush=True)
        results.append(result)
    summary(results)
    ok = all(r["log_within_budget"] and r["lost"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--down-s", type=float, default=60, help="how long the broker stays down")
    p.add_argument("--before-s", type=float, default=10, help="load before the stop")
    p.add_argument("--after-s", type=float, default=15, help="load after the broker is back")
    p.add_argument("--rate", type=float, default=500, help="events/s offered")
    p.add_argument("--batch", type=int, default=10, help="events per request (a trace and its generations)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--kill", action="store_true", help="SIGKILL the broker instead of SIGTERM")
    p.add_argument("--kafka-port", type=int, default=19092)
    p.add_argument("--controller-port", type=int, default=19093)
    p.add_argument("--api-port", type=int, default=18100)
    p.add_argument("--grpc-port", type=int, default=18104)
    p.add_argument("--worker-ports", type=int, nargs=2, default=[18101, 18102], metavar=("CLICKHOUSE", "POSTGRES"))
    p.add_argument("--persist-timeout-s", type=float, default=180)
    p.add_argument("--keep", action="store_true", help="keep the broker's data and the logs")
    raise SystemExit(asyncio.run(main(p.parse_args())))
