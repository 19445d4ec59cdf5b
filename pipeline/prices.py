"""Model prices, and the cost of a generation they imply.

A model definition (Langfuse's shape) matches generation model names by a regex, case-
insensitively, from an optional start date, and prices usage types per unit. A project's own
definitions win over the shipped defaults; among equals, the latest start date, then the newest
definition. A cost the client sent for a usage type always wins over an inferred one, and a
total cost the client sent stands alone. Both
projections price through `priced()`, so they agree on every generation's cost.

A definition may have conditional pricing tiers (Langfuse's `pricingTiers`): a provider's long-
context or priority prices. The first tier by priority whose conditions all hold prices the
generation, else the default tier (the definition's `prices`). A usage condition sums the usage
types whose names its regex finds and compares the sum; an attribute condition holds when a
top-level model parameter or metadata key, as text, is one of its values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import eq, ge, gt, le, lt, ne
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
DEFAULT_TIER: Final = "Standard"  # the default tier's name, as Langfuse names it
# A usage condition's operators: how its sum compares with its value.
_COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    "gt": gt,
    "gte": ge,
    "lt": lt,
    "lte": le,
    "eq": eq,
    "neq": ne,
}
OPERATORS: Final = tuple(_COMPARISONS)
# The observation attributes an attribute condition reads, by the name Langfuse gives them.
ATTRIBUTE_SOURCES: Final = ("model_parameters", "metadata")
# The longest value an attribute condition lists: a longer attribute matches none, so the
# Postgres stage need not keep it.
ATTRIBUTE_TEXT_MAX: Final = 1000


class TierCondition:
    """One condition of a pricing tier: on usage (`pattern` set) or on an attribute (`key`)."""

    def __init__(
        self,
        pattern: re.Pattern[str] | None = None,
        operator: str = "gt",
        value: float = 0.0,
        source: str = "",
        key: str = "",
        values: frozenset[str] = frozenset(),
    ) -> None:
        # An attribute condition (`in`) compares no sum.
        self.compare = _COMPARISONS[operator] if pattern is not None else eq
        self.pattern, self.value = pattern, value
        self.source, self.key, self.values = source, key, values

    def holds(
        self, usage: Mapping[str, int], params: Mapping[str, object] | None, metadata: Mapping[str, object] | None
    ) -> bool:
        pattern = self.pattern
        if pattern is None:
            attributes = params if self.source == "model_parameters" else metadata
            if not attributes or self.key not in attributes:
                return False
            text = attribute_text(attributes[self.key])
            return text is not None and text in self.values
        total = 0
        for name, n in usage.items():
            if pattern.search(name):
                total += n
        return self.compare(total, self.value)


class PriceTier:
    """A conditional tier: its prices apply when all its conditions hold."""

    def __init__(
        self, id: str, name: str, priority: int, conditions: tuple[TierCondition, ...], prices: Mapping[str, float]
    ) -> None:
        self.id, self.name, self.priority, self.conditions, self.prices = id, name, priority, conditions, prices

    def applies(
        self, usage: Mapping[str, int], params: Mapping[str, object] | None, metadata: Mapping[str, object] | None
    ) -> bool:
        return all(condition.holds(usage, params, metadata) for condition in self.conditions)


def attribute_text(v: object) -> str | None:
    """A model parameter's or metadata value as an attribute condition compares it: text as
    JavaScript's String() writes a string, number or boolean (Langfuse's), None otherwise."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        # Below 2^53 a double holds it exactly, and both write its digits; past that, JSON.parse
        # rounds it to a double first (String(2 ** 60) is "1152921504606847000").
        if -(2**53) <= v <= 2**53:
            return str(v)
        try:
            return js_number(float(v))
        except OverflowError:
            return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, float):
        return js_number(v)
    return None


def js_number(v: float) -> str:
    """JavaScript's String() of a number: the shortest digits that read back as `v` (which
    Python's repr finds too), laid out as ECMAScript's Number::toString lays them out. It writes
    positions from 1e-7 to 1e21 without an exponent ("0.000001", "123456789012345680000") and
    an exponent without padding ("1e-7", "1.5e+21"), where repr writes "1e-06" and "1e-07"."""
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return "0"  # -0 too
    mantissa, _, exponent = repr(abs(v)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # The decimal point falls after `point` of `digits`.
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    significant = significant.rstrip("0")
    sign, k, n = "-" if v < 0 else "", len(significant), point
    if k <= n <= 21:
        return sign + significant + "0" * (n - k)
    if 0 < n <= 21:
        return sign + significant[:n] + "." + significant[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + significant
    e = n - 1
    shown = significant if k == 1 else significant[0] + "." + significant[1:]
    return f"{sign}{shown}e{'+' if e >= 0 else '-'}{abs(e)}"


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
    # The conditional tiers, by priority; `prices` is the default tier's, named `default_tier`.
    tiers: tuple[PriceTier, ...] = ()
    default_tier: str = DEFAULT_TIER
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_pattern(self.match_pattern))

    def tier(
        self,
        usage: Mapping[str, int],
        params: Mapping[str, object] | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> tuple[str, Mapping[str, float]]:
        """The name and prices of the tier that prices this usage."""
        for tier in self.tiers:
            if tier.applies(usage, params, metadata):
                return tier.name, tier.prices
        return self.default_tier, self.prices


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
        # The attribute keys some tier's condition reads, by source: what the Postgres stage
        # keeps of a generation's model parameters and metadata.
        keys: dict[str, set[str]] = {source: set() for source in ATTRIBUTE_SOURCES}
        for m in self.models:
            for tier in m.tiers:
                for c in tier.conditions:
                    if c.pattern is None:
                        keys[c.source].add(c.key)
        self.attribute_keys: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in keys.items()}

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
    usage: Mapping[str, int],
    cost: Mapping[str, float],
    model: ModelPrice | None,
    params: Mapping[str, object] | None = None,
    metadata: Mapping[str, object] | None = None,
) -> tuple[dict[str, int], dict[str, float], str]:
    """Usage and cost with what the client left out: costs inferred per usage type from the
    prices of the model's tier for this usage (and model parameters and metadata), then the
    totals (each the sum of its parts, as Langfuse sums every usage type when no total was
    sent); and that tier's name, as Langfuse records it whenever a model and usage are there
    ('' otherwise)."""
    usage, cost = dict(usage), dict(cost)
    if usage and "total" not in usage:
        total = usage_total(usage)
        if total is not None:
            usage["total"] = total
    tier = ""
    if model is not None and usage:
        # The conditions see the usage with its total, as Langfuse's matcher does.
        tier, prices = model.tier(usage, params, metadata)
        # A total the client sent covers every usage type: nothing is inferred beside it.
        if "total" not in cost:
            priced_part = False
            for u, n in usage.items():
                if u != "total" and u in prices:
                    priced_part = True
                    if u not in cost:
                        cost[u] = n * prices[u]
            # A price for "total" alone (no per-type price used) prices the total usage.
            if not priced_part and "total" in prices:
                cost["total"] = usage["total"] * prices["total"]
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return usage, cost, tier
