"""Cost from model prices, against the running stages: the shipped defaults, a project's own
models through the public API, a client's costs winning, and both projections agreeing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from sinks.clickhouse.client import ClickHouse
from sinks.postgres.client import Postgres
from sinks.postgres.keys import NewKey
from tests.support import API, basic_auth, eventually

pytestmark = pytest.mark.stack

TIMEOUT_S = 30.0
START = "2026-11-20T10:00:00Z"


async def ingest(
    http: aiohttp.ClientSession, key: NewKey, *bodies: dict[str, Any], etype: str = "generation-create"
) -> None:
    batch = [{"id": str(uuid.uuid4()), "type": etype, "timestamp": START, "body": b} for b in bodies]
    async with http.post(f"{API}/api/public/ingestion", json={"batch": batch}, headers=basic_auth(key)) as r:
        assert r.status == 207 and (await r.json())["errors"] == []


def generation(model: str, usage: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {"id": f"gen-{uuid.uuid4()}", "traceId": f"tr-{uuid.uuid4()}", "model": model, "startTime": START,
            "usageDetails": usage, **extra}  # fmt: skip


async def row(ch: ClickHouse, project_id: str, gen_id: str) -> dict[str, Any] | None:
    rows = await ch.fetch(
        "SELECT cost_details, total_cost, usage_pricing_model_id FROM observations FINAL "
        "WHERE project_id = %(p)s AND id = %(id)s",
        {"p": project_id, "id": gen_id},
    )
    if not rows:
        return None
    cost, total, model_id = rows[0]
    return {"cost": orjson.loads(cost), "total": total, "model_id": model_id}


async def ledger_cost(pg: Postgres, project_id: str) -> Decimal:
    rows = await pg.fetch("SELECT coalesce(sum(cost), 0) FROM usage_daily WHERE project_id = %s", (project_id,))
    return Decimal(rows[0][0])


async def test_a_gpt_4o_generation_without_cost_is_priced_in_both_projections(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse, pg: Postgres
) -> None:
    plain = generation("gpt-4o", {"input": 1000, "output": 500})
    dated = generation("gpt-4o-2024-08-06", {"input": 2000, "output": 0})
    await ingest(http, project, plain, dated)
    got = await eventually(
        lambda: row(ch, project.project_id, plain["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["cost"] == pytest.approx({"input": 0.0025, "output": 0.005, "total": 0.0075})
    assert got["total"] == pytest.approx(0.0075) and got["model_id"] == "at-openai-gpt-4o"
    got = await eventually(
        lambda: row(ch, project.project_id, dated["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["total"] == pytest.approx(0.005) and got["model_id"] == "at-openai-gpt-4o"
    # The read API links the model definition that priced it, as Langfuse's modelId, with its
    # per-unit prices (gpt-4o: $2.50 and $10 per 1M input and output tokens); v2 as strings.
    for path in (
        f"/api/public/observations/{plain['id']}",
        f"/api/public/observations?traceId={plain['traceId']}",
        f"/api/public/traces/{plain['traceId']}",
        f"/api/public/v2/observations?traceId={plain['traceId']}&fields=core,model",
    ):
        async with http.get(f"{API}{path}", headers=basic_auth(project)) as r:
            assert r.status == 200, await r.text()
            doc = await r.json()
        found = doc["data"][0] if "data" in doc else doc["observations"][0] if "observations" in doc else doc
        assert found["modelId"] == "at-openai-gpt-4o", doc
        prices = (found["inputPrice"], found["outputPrice"], found["totalPrice"])
        if "/v2/" in path:
            assert prices == ("0.0000025", "0.00001", None), prices
        else:
            assert prices == (pytest.approx(2.5e-06), pytest.approx(1e-05), None), prices
    # The ledger sums the same costs.
    await eventually(
        lambda: ledger_cost(pg, project.project_id), lambda c: abs(c - Decimal("0.0125")) < 1e-12, timeout_s=TIMEOUT_S
    )


async def test_the_read_api_sums_every_input_and_links_the_model_of_a_generation_priced_by_its_client(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse
) -> None:
    # As Langfuse reads them: usage.input and promptTokens (and calculatedInputCost) are the sum
    # of every type that names input, cached tokens included; modelId is the definition the model
    # matches, also when the client's own cost left nothing to infer from its prices.
    paid = generation(
        "gpt-4o",
        {"input": 1000, "input_cached_tokens": 600, "output": 200},
        costDetails={"input": 0.001, "input_cached_tokens": 0.0003, "output": 0.002},
    )
    await ingest(http, project, paid)
    got = await eventually(
        lambda: row(ch, project.project_id, paid["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["model_id"] == "at-openai-gpt-4o"
    assert got["cost"] == pytest.approx(
        {"input": 0.001, "input_cached_tokens": 0.0003, "output": 0.002, "total": 0.0033}
    )
    async with http.get(f"{API}/api/public/observations/{paid['id']}", headers=basic_auth(project)) as r:
        assert r.status == 200, await r.text()
        doc = await r.json()
    assert (doc["promptTokens"], doc["completionTokens"], doc["totalTokens"]) == (1600, 200, 1800)
    assert doc["usage"] == {"input": 1600, "output": 200, "total": 1800, "unit": "TOKENS"}
    assert doc["calculatedInputCost"] == pytest.approx(0.0013)
    assert doc["calculatedOutputCost"] == pytest.approx(0.002)
    assert doc["modelId"] == "at-openai-gpt-4o" and doc["inputPrice"] == pytest.approx(2.5e-06)
    assert doc["usageDetails"] == {"input": 1000, "input_cached_tokens": 600, "output": 200, "total": 1800}


async def test_a_cost_the_client_sent_wins_and_an_embedding_is_priced(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse
) -> None:
    sent = generation("gpt-4o", {"input": 1000, "output": 1000}, costDetails={"input": 1.0})
    embedding = generation("text-embedding-3-small", {"input": 1_000_000})
    # Embeddings are priced by their total, as Langfuse prices them: a client that reports only
    # a total (the Vercel AI SDK's exporter) is priced too.
    total_only = generation("text-embedding-3-small", {"total": 500_000})
    await ingest(http, project, sent)
    await ingest(http, project, embedding, total_only, etype="embedding-create")
    got = await eventually(
        lambda: row(ch, project.project_id, sent["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["cost"] == pytest.approx({"input": 1.0, "output": 0.01, "total": 1.01})
    got = await eventually(
        lambda: row(ch, project.project_id, embedding["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["total"] == pytest.approx(0.02) and got["model_id"] == "at-openai-text-embedding-3-small"
    got = await eventually(
        lambda: row(ch, project.project_id, total_only["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
    )
    assert got["cost"] == pytest.approx({"total": 0.01}) and got["model_id"] == "at-openai-text-embedding-3-small"


async def test_anthropic_usage_keys_as_sent_are_priced(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse
) -> None:
    # SDK users pass Anthropic's usage object on (`usage_details=message.usage`): its cache keys
    # keep their names, as in Langfuse, and are priced at the cache rates ($0.30 and $3.75 per 1M).
    usage = {"input_tokens": 100, "output_tokens": 50}
    usage |= {"cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}
    gen = generation("claude-sonnet-4-5-20250929", usage)
    await ingest(http, project, gen)
    got = await eventually(lambda: row(ch, project.project_id, gen["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S)
    assert got["model_id"] == "at-anthropic-claude-sonnet"
    assert got["cost"] == pytest.approx(
        {
            "input": 3e-4,
            "output": 7.5e-4,
            "cache_read_input_tokens": 3e-4,
            "cache_creation_input_tokens": 7.5e-4,
            "total": 2.1e-3,
        }
    )


async def test_a_project_s_own_model_overrides_the_default_within_seconds(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse, pg: Postgres
) -> None:
    own = {"modelName": "gpt-4o", "matchPattern": "(?i)^gpt-4o$", "inputPrice": 0.001, "outputPrice": 0.002}
    async with http.post(f"{API}/api/public/models", json=own, headers=basic_auth(project)) as r:
        assert r.status == 200
        model = await r.json()
    assert model["isLangfuseManaged"] is False and model["prices"] == {
        "input": {"price": 0.001},
        "output": {"price": 0.002},
    }

    async def priced_total() -> Any:
        gen = generation("gpt-4o", {"input": 10, "output": 10})
        await ingest(http, project, gen)
        got = await eventually(
            lambda: row(ch, project.project_id, gen["id"]), lambda r: r is not None, timeout_s=TIMEOUT_S
        )
        return got["model_id"], got["total"]

    # The workers reload prices every 2 s: a new event is priced by the project's model soon after.
    _, total = await eventually(priced_total, lambda r: r[0] == model["id"], timeout_s=15, every_s=1.0)
    assert total == pytest.approx(0.03)
    # Another project still gets the default price.
    async with http.get(f"{API}/api/public/models/{model['id']}", headers=basic_auth(project)) as r:
        assert r.status == 200 and (await r.json())["id"] == model["id"]


async def test_models_api_scopes_validates_and_protects_defaults(
    http: aiohttp.ClientSession, project: NewKey, pg: Postgres
) -> None:
    from sinks.postgres.keys import create_key

    other = await create_key(pg, f"test-{uuid.uuid4().hex[:12]}")
    own = {"modelName": "mine", "matchPattern": "^mine$", "prices": {"input": 1e-6, "input_cached_tokens": 5e-7}}
    async with http.post(f"{API}/api/public/models", json=own, headers=basic_auth(project)) as r:
        assert r.status == 200
        mine = await r.json()
    async with http.get(f"{API}/api/public/models?limit=100", headers=basic_auth(project)) as r:
        listed = await r.json()
    assert listed["meta"]["totalItems"] >= 40 and listed["data"][0]["id"] == mine["id"]  # own first
    assert any(m["id"] == "at-openai-gpt-4o" and m["isLangfuseManaged"] for m in listed["data"])
    # Another project's key sees neither it nor can delete it.
    async with http.get(f"{API}/api/public/models/{mine['id']}", headers=basic_auth(other)) as r:
        assert r.status == 404
    async with http.delete(f"{API}/api/public/models/{mine['id']}", headers=basic_auth(other)) as r:
        assert r.status == 404
    async with http.delete(f"{API}/api/public/models/at-openai-gpt-4o", headers=basic_auth(project)) as r:
        assert r.status == 404 and "cannot be deleted" in (await r.json())["message"]
    for bad in (
        {"modelName": "x", "matchPattern": "(", "inputPrice": 1},
        {"modelName": "x", "matchPattern": "^x$", "inputPrice": -1},
        {"modelName": "x", "matchPattern": "^x$", "prices": {"tokens of joy": 1}},
    ):
        async with http.post(f"{API}/api/public/models", json=bad, headers=basic_auth(project)) as r:
            assert r.status == 400, bad
            assert (await r.json())["message"]
    async with http.get(f"{API}/api/public/models?limit=1000", headers=basic_auth(project)) as r:
        assert r.status == 400
    async with http.delete(f"{API}/api/public/models/{mine['id']}", headers=basic_auth(project)) as r:
        assert r.status == 200
    async with http.get(f"{API}/api/public/models/{mine['id']}", headers=basic_auth(project)) as r:
        assert r.status == 404


async def test_models_pages_refuse_other_scripts_digits(http: aiohttp.ClientSession, project: NewKey) -> None:
    # "²".isdigit() is true and int("²") raises: it was a 500.
    for page in ("²", "٣", "-1", "0"):
        async with http.get(f"{API}/api/public/models?page={page}", headers=basic_auth(project)) as r:
            assert r.status == 400, page


async def test_models_api_refuses_what_postgres_cannot_hold_with_a_4xx(
    http: aiohttp.ClientSession, project: NewKey
) -> None:
    # Found by the OpenAPI fuzz: each was a 500, or a 503 that told the client to retry.
    base = {"modelName": "x", "matchPattern": "^x$", "inputPrice": 1e-6}
    for bad in (
        {**base, "unit": [None, None]},
        {**base, "modelName": "x\x00"},
        {**base, "tokenizerConfig": {"k": "\x00"}},
        {**base, "startDate": "0001-01-01T00:00:00+01:00"},
    ):
        async with http.post(f"{API}/api/public/models", json=bad, headers=basic_auth(project)) as r:
            assert r.status == 400, bad
            assert (await r.json())["message"]
    deep = b'{"modelName":"x","matchPattern":"^x$","inputPrice":1,"tokenizerConfig":' + b"[" * 300 + b"]" * 300 + b"}"
    headers = basic_auth(project) | {"Content-Type": "application/json"}
    async with http.post(f"{API}/api/public/models", data=deep, headers=headers) as r:
        assert r.status == 400 and "deeply" in (await r.json())["message"]
    for method in ("GET", "DELETE"):
        async with http.request(method, f"{API}/api/public/models/a%00b", headers=basic_auth(project)) as r:
            assert r.status == 404, method


async def test_the_shipped_tiers_price_long_context_and_flex_in_both_projections(
    http: aiohttp.ClientSession, project: NewKey, ch: ClickHouse, pg: Postgres
) -> None:
    # Gemini 2.5 Pro doubles its input price past 200k prompt tokens (cached ones count); GPT-5's
    # flex service tier halves it. Sent through the batch API, as Langfuse's v2 SDKs send them.
    long = generation("gemini-2.5-pro", {"input": 150_000, "input_cached_tokens": 60_000, "output": 1000})
    flex = generation("gpt-5", {"input": 1000, "output": 1000}, modelParameters={"service_tier": "flex"})
    plain = generation("gpt-5", {"input": 1000, "output": 1000}, modelParameters={"service_tier": "default"})
    await ingest(http, project, long, flex, plain)
    expected = {
        long["id"]: ("Large Context", 150_000 * 2.5e-6 + 60_000 * 0.25e-6 + 1000 * 15e-6),
        flex["id"]: ("Flex", 1000 * 0.625e-6 + 1000 * 5e-6),
        plain["id"]: ("Standard", 1000 * 1.25e-6 + 1000 * 10e-6),
    }

    async def tiers() -> dict[str, tuple[str, float]]:
        rows = await ch.fetch(
            "SELECT id, usage_pricing_tier_name, total_cost FROM observations FINAL WHERE project_id = %(p)s",
            {"p": project.project_id},
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    got = await eventually(tiers, lambda t: len(t) == 3, timeout_s=TIMEOUT_S)
    for gen_id, (tier, total) in expected.items():
        assert got[gen_id][0] == tier and got[gen_id][1] == pytest.approx(total), (tier, got[gen_id])
    want = Decimal(repr(sum(total for _, total in expected.values())))
    await eventually(
        lambda: ledger_cost(pg, project.project_id), lambda c: abs(c - want) < Decimal("1e-9"), timeout_s=TIMEOUT_S
    )
    # The models API shows the shipped tiers in Langfuse's shape, the default first.
    async with http.get(f"{API}/api/public/models/at-openai-gpt-5", headers=basic_auth(project)) as r:
        assert r.status == 200
        model = await r.json()
    assert [(t["name"], t["isDefault"], t["priority"]) for t in model["pricingTiers"]] == [
        ("Standard", True, 0),
        ("Fast mode", False, 1),
        ("Flex", False, 2),
    ]
    flex_tier = model["pricingTiers"][2]
    assert flex_tier["conditions"] == [
        {"source": "model_parameters", "key": "service_tier", "operator": "in", "values": ["flex"]}
    ]
    assert flex_tier["prices"]["input"] == pytest.approx(0.625e-6)
    assert model["prices"]["input"] == {"price": 1.25e-6}


async def test_models_api_refuses_tiers_langfuse_refuses(http: aiohttp.ClientSession, project: NewKey) -> None:
    standard = {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [], "prices": {"input": 1e-6}}
    long = {"name": "Long", "isDefault": False, "priority": 1, "prices": {"input": 2e-6},
            "conditions": [{"usageDetailPattern": "input", "operator": "gt", "value": 200000}]}  # fmt: skip
    for tiers, message in (
        ([long], "isDefault"),
        ([standard, long | {"priority": 0}], "unique"),
        ([standard, long | {"conditions": []}], "condition"),
        ([standard, long | {"prices": {"output": 1e-6}}], "same usage types"),
        ([standard, long | {"conditions": [{"usageDetailPattern": "(", "operator": "gt", "value": 1}]}], "regular"),
    ):
        doc = {"modelName": "x", "matchPattern": "^x$", "pricingTiers": tiers}
        async with http.post(f"{API}/api/public/models", json=doc, headers=basic_auth(project)) as r:
            assert r.status == 400, (tiers, await r.text())
            assert message in (await r.json())["message"], message
