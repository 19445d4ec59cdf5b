"""The metrics API through the Langfuse SDKs' own clients, unchanged: Python 4.x's
`api.metrics.metrics` (v2) and `api.legacy.metrics_v1.metrics` (v1), JS 3.x's `api.metricsMetrics`
(v1), over the project test_read_sdks.py seeds (one trace, a span, a generation and scores)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.sdk.test_read_sdks import seed

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]


async def test_langfuse_v4_metrics(langfuse_v4_python: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    await seed(project, run)
    got = await sdk_runner(langfuse_v4_python, "langfuse_v4_metrics.py", project)(run)
    assert got["sdk_version"].startswith("4."), got
    assert got["v2"] == [
        "MetricsV2Response",
        [
            {"name": "llm", "count_count": "1", "max_latency": "1000"},
            {"name": "plan", "count_count": "1", "max_latency": "2000"},
        ],
    ]
    assert got["v1"] == [
        "MetricsResponse",
        [{"userId": f"user-{run}", "time_dimension": "2026-11-25", "sum_totalCost": 0.002}],
    ]
    status, body = got["refused"]
    assert status == 400 and body["error"] == "bad_request" and "view 'traces'" in body["message"]


async def test_langfuse_js_v3_metrics(langfuse_js_v3: Path, project: NewKey) -> None:
    run = uuid.uuid4().hex[:12]
    await seed(project, run)
    node = Path(shutil.which("node") or "node")
    got = await sdk_runner(node, "langfuse_js3_metrics.cjs", project, str(langfuse_js_v3))(run)
    assert got["scores"] == {"data": [{"name": "ok", "avg_value": 1}, {"name": "quality", "avg_value": 0.9}]}
