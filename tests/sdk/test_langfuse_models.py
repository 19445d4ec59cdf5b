"""Pricing tiers through the current Langfuse Python SDK, unchanged: its API client's typed model
with conditional tiers is stored and read back as it was sent, and the generations it traces
(over OTLP) are priced by the tier their usage and model parameters fall in, in both
projections, each naming its tier as Langfuse's v2 observations do."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from tests.sdk.conftest import sdk_runner
from tests.support import API, basic_auth, eventually

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

LONG = {"usageDetailPattern": "input", "operator": "gt", "value": 200000.0, "caseSensitive": False}
PRIORITY = {"source": "model_parameters", "key": "service_tier", "operator": "in", "values": ["priority"]}
# (tier, total cost) of each generation the client traces.
EXPECTED = {
    "short": ("Standard", 1000 * 1e-6 + 100 * 2e-6),
    "long": ("Large Context", 250_000 * 2e-6 + 100 * 4e-6),
    "priority": ("Priority", 1000 * 5e-6 + 100 * 1e-5),
}


async def test_the_current_python_sdk_defines_tiers_that_price_its_generations(
    langfuse_v5_python: Path, project: NewKey, http: aiohttp.ClientSession, pg: Postgres
) -> None:
    got = await sdk_runner(langfuse_v5_python, "langfuse_v5_models.py", project)(uuid.uuid4().hex[:12])
    assert got["sdk_version"].startswith("5."), got
    assert got["tiers"] == [
        {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [],
         "prices": {"input": 1e-6, "output": 2e-6}},
        {"name": "Large Context", "isDefault": False, "priority": 1, "conditions": [LONG],
         "prices": {"input": 2e-6, "output": 4e-6}},
        {"name": "Priority", "isDefault": False, "priority": 2, "conditions": [PRIORITY],
         "prices": {"input": 5e-6, "output": 1e-5}},
    ]  # fmt: skip
    assert len(set(got["tier_ids"])) == 3 and got["listed"]
    assert got["prices"] == {"input": 1e-6, "output": 2e-6}  # the default tier's, as Langfuse's `prices`

    async def observations() -> dict[str, dict[str, Any]]:
        url = f"{API}/api/public/v2/observations?traceId={got['trace_id']}&fields=core,basic,model,usage"
        async with http.get(url, headers=basic_auth(project)) as r:
            assert r.status == 200, await r.text()
            return {o["name"]: o for o in (await r.json())["data"] if o["type"] == "GENERATION"}

    found = await eventually(observations, lambda o: len(o) == 3, timeout_s=30)
    for label, (tier, total) in EXPECTED.items():
        o = found[label]
        assert o["id"] == got["ids"][label] and o["internalModelId"] == got["id"], o
        assert o["usagePricingTierName"] == tier, (label, o)
        assert float(o["totalCost"]) == pytest.approx(total), (label, o)

    async def ledger() -> Decimal:
        rows = await pg.fetch(
            "SELECT coalesce(sum(cost), 0) FROM usage_daily WHERE project_id = %s", (project.project_id,)
        )
        return Decimal(rows[0][0])

    want = Decimal(repr(sum(total for _, total in EXPECTED.values())))
    await eventually(ledger, lambda c: abs(c - want) < Decimal("1e-9"), timeout_s=30)
