"""Health aggregation: statuses, timeouts and the guide's uptime format."""

import asyncio
import re
import time

from health.checks import Check, Health


async def _ok() -> None:
    return None


async def _fail() -> None:
    raise ConnectionError("refused")


async def _hang() -> None:
    await asyncio.sleep(60)


async def test_a_failing_optional_check_degrades_and_a_required_one_fails() -> None:
    status, checks = await Health([Check("postgres", _ok), Check("redis", _fail, required=False)]).report()
    assert status == "degraded"
    assert checks["redis"]["status"] == "unhealthy" and "refused" in checks["redis"]["error"]
    status, _ = await Health([Check("postgres", _fail), Check("redis", _ok, required=False)]).report()
    assert status == "unhealthy"


async def test_a_hanging_dependency_cannot_hang_the_probe() -> None:
    health = Health([Check("kafka", _hang), Check("postgres", _ok)], timeout_s=0.2)
    start = time.monotonic()
    status, checks = await health.report()
    assert time.monotonic() - start < 1.0
    assert status == "unhealthy"
    assert checks["kafka"]["error"] == "timeout"
    assert checks["postgres"]["status"] == "healthy"


def test_uptime_is_formatted_like_the_guide() -> None:
    health = Health([])
    health.started -= 2 * 3600 + 15 * 60 + 30
    assert health.uptime() == "2h15m30s"
    assert re.fullmatch(r"\d+h\d+m\d+s", Health([]).uptime())


def test_request_series_are_found_once_and_unknown_methods_mint_none() -> None:
    from health.http import HTTP_REQUESTS, _series_of

    first = _series_of("POST", "/api/public/ingestion", 207)
    assert _series_of("POST", "/api/public/ingestion", 207) is first
    before = HTTP_REQUESTS.labels("OTHER", "unmatched", "400")._value.get()
    for i in range(50):
        _series_of(f"M{i}", "unmatched", 400)[0].inc()
    assert HTTP_REQUESTS.labels("OTHER", "unmatched", "400")._value.get() == before + 50
    assert not [s for s in HTTP_REQUESTS.collect()[0].samples if s.labels.get("method", "").startswith("M")]
