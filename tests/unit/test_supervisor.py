"""The supervisor's pure parts: its restart back-off, the pool gauges it sums from its
children's scrapes, and its processes' process_* series. Its processes are tested against the
real stack (tests/stack/test_supervisor.py)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agenttrace.supervisor import (
    RESTART_DELAY_S,
    RESTART_MAX_S,
    STEADY_S,
    ProcessTree,
    SummedGauges,
    restart_delay,
)


def test_a_child_that_keeps_dying_at_once_waits_longer_each_time_up_to_the_cap() -> None:
    delays = [restart_delay(0.0, 0.1)]
    for _ in range(8):
        delays.append(restart_delay(delays[-1], 0.1))
    assert delays[0] == RESTART_DELAY_S
    assert delays == sorted(delays) and delays[1] == 2 * RESTART_DELAY_S
    assert delays[-1] == RESTART_MAX_S


def test_a_child_that_ran_steadily_is_restarted_after_the_first_delay_again() -> None:
    assert restart_delay(RESTART_MAX_S, STEADY_S + 1) == RESTART_DELAY_S


def _child(active: int, idle: int, most: int) -> str:
    return (
        "# HELP db_connections_active Active database connections\n# TYPE db_connections_active gauge\n"
        f'db_connections_active{{db="postgres"}} {active}\ndb_connections_active{{db="clickhouse"}} 1.0\n'
        "# HELP db_connections_idle Idle database connections\n# TYPE db_connections_idle gauge\n"
        f'db_connections_idle{{db="postgres"}} {idle}\n'
        "# HELP db_connections_max Maximum database connections\n# TYPE db_connections_max gauge\n"
        f'db_connections_max{{db="postgres"}} {most}\n'
        "# HELP worker_queue_depth Current queue depth by queue\n# TYPE worker_queue_depth gauge\n"
        'worker_queue_depth{queue="clickhouse"} 7.0\n'
    )


def test_the_pool_gauges_of_the_children_are_summed_per_label_set() -> None:
    registry = CollectorRegistry()
    registry.register(SummedGauges([_child(2, 3, 10), _child(4, 1, 10)]))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples == {
        ("db_connections_active", (("db", "postgres"),)): 6.0,
        ("db_connections_active", (("db", "clickhouse"),)): 2.0,
        ("db_connections_idle", (("db", "postgres"),)): 4.0,
        ("db_connections_max", (("db", "postgres"),)): 20.0,
    }


def _samples(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def test_each_process_is_a_series_with_prometheus_clients_figures() -> None:
    ours = _samples(ProcessTree({"supervisor": os.getpid(), "0": 2**22 + 12345}))  # the second does not exist
    reference = _samples(ProcessCollector(registry=None))
    me = (("process", "supervisor"),)
    for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds"):
        assert ours[(name, me)] > 0
        assert abs(ours[(name, me)] - reference[(name, ())]) <= 0.01 * reference[(name, ())], name
    assert abs(ours[("process_cpu_seconds_total", me)] - reference[("process_cpu_seconds_total", ())]) < 0.5
    assert ours[("process_open_fds", me)] > 0
    assert not [k for k in ours if ("process", "0") in k[1]]  # a process gone is left out
