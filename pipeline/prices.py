"""Model prices, and the cost of a generation they imply.

A model definition (Langfuse's shape) matches generation model names by a regex, case-
insensitively, from an optional start date, and prices usage types per unit. A project's own
definitions win over the shipped defaults; among equals, the latest start date, then the newest
definition. A cost the client sent for a usage type always wins over an inferred one, and a
total cost the client sent stands alone. Both
projections price through `priced()`, so they agree on every generation's cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

# The usage types of Langfuse's prices and of the OTLP mapping; a price may name others too.
USAGE_TYPES: Final = frozenset(
    {
        "input",
        "output",
        "total",
        "input_cached_tokens",
        "input_cache_read",
        "input_cache_creation",
        "input_cache_write",
        "output_reasoning_tokens",
        "input_audio_tokens",
        "output_audio_tokens",
        "input_image_tokens",
        "output_image_tokens",
    }
)
UNITS: Final = frozenset({"TOKENS", "CHARACTERS", "MILLISECONDS", "SECONDS", "IMAGES", "REQUESTS"})
_NO_START: Final = -(2**63)
_CACHED_NAMES: Final = 50_000  # distinct (project, model name) pairs whose candidates are kept


@dataclass(frozen=True)
class ModelPrice:
    id: str
    project_id: str | None  # None: a shipped default
    model_name: str
    match_pattern: str
    prices: Mapping[str, float]  # usage type -> USD per unit
    start_us: int | None = None
    created_us: int = 0
    unit: str = "TOKENS"
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_pattern(self.match_pattern))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The pattern as Langfuse users write it: `(?i)` inline or not, always case-insensitive.

    Raises ValueError for an invalid regex.
    """
    try:
        return re.compile(pattern, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"matchPattern is not a valid regular expression: {exc}") from None


class PriceBook:
    """Every model definition, indexed for the fold: one lookup per generation."""

    def __init__(self, models: Iterable[ModelPrice] = ()) -> None:
        self.models = tuple(models)
        self._candidates: dict[tuple[str, str], tuple[ModelPrice, ...]] = {}

    def match(self, project_id: str, model_name: str, at_us: int) -> ModelPrice | None:
        """The definition that prices `model_name` for `project_id` at time `at_us`, if any."""
        if not model_name:
            return None
        key = (project_id, model_name)
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._rank(project_id, model_name)
            if len(self._candidates) >= _CACHED_NAMES:
                self._candidates.clear()
            self._candidates[key] = candidates
        for model in candidates:
            if model.start_us is None or model.start_us <= at_us:
                return model
        return None

    def _rank(self, project_id: str, model_name: str) -> tuple[ModelPrice, ...]:
        found = [
            m
            for m in self.models
            if (m.project_id is None or m.project_id == project_id) and m.pattern.search(model_name)
        ]
        found.sort(
            key=lambda m: (m.project_id is not None, _NO_START if m.start_us is None else m.start_us, m.created_us),
            reverse=True,
        )
        return tuple(found)


def usage_total(usage: Mapping[str, int]) -> int | None:
    """The total usage: the one sent, else the sum of every type (as Langfuse sums them);
    None past what the stores' counts hold, rather than a failed write."""
    total = usage.get("total")
    if total is None and usage:
        total = sum(usage.values())
        return total if total < 2**63 else None
    return total


def priced(
    usage: Mapping[str, int], cost: Mapping[str, float], model: ModelPrice | None
) -> tuple[dict[str, int], dict[str, float], bool]:
    """Usage and cost with what the client left out: costs inferred per usage type from the
    model's prices, then the totals (each the sum of its parts, as Langfuse sums every usage
    type when no total was sent); and whether any cost was inferred from the model."""
    usage, cost = dict(usage), dict(cost)
    if usage and "total" not in usage:
        total = usage_total(usage)
        if total is not None:
            usage["total"] = total
    inferred = False
    # A total the client sent covers every usage type: nothing is inferred beside it.
    if model is not None and usage and "total" not in cost:
        prices = model.prices
        priced_part = False
        for u, n in usage.items():
            if u != "total" and u in prices:
                priced_part = True
                if u not in cost:
                    cost[u] = n * prices[u]
                    inferred = True
        # A price for "total" alone (no per-type price used) prices the total usage.
        if not priced_part and "total" in prices and "total" not in cost:
            cost["total"] = usage["total"] * prices["total"]
            inferred = True
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return usage, cost, inferred
