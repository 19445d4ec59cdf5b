"""Model prices with pricing tiers through the current Langfuse Python SDK, unchanged: the API
client creates a model with a default, a long-context and a priority tier (its typed inputs),
reads it back and lists it (its typed answers), then traces three generations of that model:
a short one, a long-context one and one with the priority service tier in its model parameters.

Arguments: one JSON object with host, public_key, secret_key and a run id. Prints one JSON object
with the SDK version, the model as the SDK read it, and the generations' trace and ids.
"""

from __future__ import annotations

import json
import sys
import time

# The workers reload model prices every 2 s (sinks/postgres/models.py, PriceRefresher).
PRICES_REFRESH_S = 4.0


def main() -> None:
    args = json.loads(sys.argv[1])

    from langfuse import Langfuse
    from langfuse._version import __version__
    from langfuse.api import PricingTierAttributeCondition, PricingTierInput, PricingTierUsageConditionInput

    lf = Langfuse(public_key=args["public_key"], secret_key=args["secret_key"], base_url=args["host"], timeout=10)
    name = f"tiered-{args['run']}"
    created = lf.api.models.create(
        model_name=name,
        match_pattern=f"(?i)^{name}$",
        unit="TOKENS",
        pricing_tiers=[
            PricingTierInput(
                name="Standard", is_default=True, priority=0, conditions=[], prices={"input": 1e-6, "output": 2e-6}
            ),
            PricingTierInput(
                name="Large Context",
                is_default=False,
                priority=1,
                conditions=[PricingTierUsageConditionInput(usage_detail_pattern="input", operator="gt", value=200000)],
                prices={"input": 2e-6, "output": 4e-6},
            ),
            PricingTierInput(
                name="Priority",
                is_default=False,
                priority=2,
                conditions=[
                    PricingTierAttributeCondition(source="model_parameters", key="service_tier", values=["priority"])
                ],
                prices={"input": 5e-6, "output": 1e-5},
            ),
        ],
    )
    got = lf.api.models.get(created.id)
    listed = lf.api.models.list(limit=100)
    time.sleep(PRICES_REFRESH_S)
    ids = {}
    with lf.start_as_current_observation(name="agent", as_type="span") as root:
        for label, usage, params in (
            ("short", {"input": 1000, "output": 100}, {"temperature": 0.2}),
            ("long", {"input": 250_000, "output": 100}, {}),
            ("priority", {"input": 1000, "output": 100}, {"service_tier": "priority"}),
        ):
            gen = root.start_observation(
                name=label, as_type="generation", model=name, usage_details=usage, model_parameters=params
            )
            gen.end()
            ids[label] = gen.id
        trace_id = root.trace_id
    lf.flush()
    lf.shutdown()
    tiers = [
        {
            "name": t.name,
            "isDefault": t.is_default,
            "priority": t.priority,
            "conditions": [c.dict(by_alias=True, exclude_none=True) for c in t.conditions],
            "prices": t.prices,
        }
        for t in got.pricing_tiers
    ]
    out = {
        "sdk_version": __version__,
        "id": created.id,
        "tiers": tiers,
        "tier_ids": [t.id for t in got.pricing_tiers],
        "prices": {k: v.price for k, v in got.prices.items()},
        "listed": any(m.id == created.id and len(m.pricing_tiers) == 3 for m in listed.data),
        "trace_id": trace_id,
        "ids": ids,
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
