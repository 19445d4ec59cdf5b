"""The views of Langfuse's metrics API over our projections: which dimensions and measures each
has, under Langfuse's names, as SQL over one row per entity; and a checked query over one
(sinks/clickhouse/metrics.py builds its SQL, metric_rows.py shapes its rows).

A row is the newest undeleted version of an entity of the view's table, joined, when a field
needs it, to a relation: the trace of an observation or score, the observation of a score, or
per-entity aggregates of observations and scores. In the SQL, `US(column)` is a time column as
µs since the epoch and `DT(column)` as a UTC DateTime, whatever the dialect.

Names Langfuse declares that our schema has no column for are listed in `unsupported`, so the
API can say why it refuses them rather than call them unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.fold import OBSERVATION, SCORE, TRACE

# Relations (built in metrics.py): the columns each adds to a row.
TRACE_OF = "trace"  # trace_name, trace_tags, trace_user_id, trace_session_id, trace_release, trace_version
OBSERVATION_OF = "observation"  # obs_name, obs_model, obs_prompt_name, obs_prompt_version
OBSERVATIONS_OF_TRACE = "observations"  # obs_count, obs_start_us, obs_end_us, obs_cost, obs_tokens
SCORES_OF_TRACE = "trace_scores"  # score_count
SCORES_OF_OBSERVATION = "observation_scores"  # score_count


@dataclass(frozen=True)
class Dimension:
    sql: str
    columns: tuple[str, ...] = ()  # of the view's own table
    relation: str | None = None
    kind: str = "string"  # string | array | number | boolean
    # Langfuse's column is Nullable: our '' answers null.
    nullable: bool = False
    # Refused as a grouping by the v2 endpoint (a filter on it is fine).
    high_cardinality: bool = False


@dataclass(frozen=True)
class Measure:
    sql: str
    columns: tuple[str, ...] = ()
    relation: str | None = None
    integral: bool = True  # its sum, min and max are 64-bit integers (answered as strings)
    # For `count` and `uniq`: the distinct values of this instead (unique users or sessions).
    distinct: str | None = None
    # Not a number (an id): only `count` and `uniq` apply, as Langfuse's string measures.
    text: bool = False


@dataclass(frozen=True)
class View:
    table: str
    time: str  # the time column: the query's window, and Langfuse's name for filtering on it
    dimensions: dict[str, Dimension]
    measures: dict[str, Measure]
    segment: str = ""  # a fixed condition on the row (the data types of a scores view)
    unsupported: frozenset[str] = field(default_factory=frozenset)
    # Dimensions and measures of Langfuse's v2 declaration of the view that its v1 lacks.
    v2_dimensions: frozenset[str] = field(default_factory=frozenset)
    v2_measures: frozenset[str] = field(default_factory=frozenset)


# Tool calls and experiments have no columns here; the cost and usage types are keys of JSON
# text, which 18.16 cannot list.
_NO_COLUMN_OBSERVATION_FIELDS = frozenset(
    [
        "toolNames",
        "calledToolNames",
        "toolDefinitions",
        "toolCalls",
        "costByType",
        "costType",
        "usageByType",
        "usageType",
        "experimentName",
        "experimentDatasetId",
        "experimentId",
    ]
)


def _own(column: str, **kw: object) -> Dimension:
    return Dimension(column, (column,), **kw)  # type: ignore[arg-type]


def _of(relation: str, column: str, **kw: object) -> Dimension:
    return Dimension(column, (), relation, **kw)  # type: ignore[arg-type]


def _month(column: str) -> Dimension:
    # YYYY-MM without formatDateTime: a '%' in the SQL is the driver's parameter syntax.
    return Dimension(f"substring(toString(toDate(DT({column}))), 1, 7)", (column,))


def _ms(end: str, start: str) -> str:
    return f"intDiv(US({end}) - US({start}), 1000)"


def keys_sum(column: str, word: str) -> str:
    """A row's sum of the values of a JSON map column (`{"k":n,..}` as the writer writes it)
    under the keys whose name holds `word`, in any case: Langfuse's input (output) usage and
    cost count every type so named, cached input too. 18.16 cannot list an object's keys; a
    regex over the text it runs."""
    values = f'extractAll({column}, \'(?i)"[^"]*{word}[^"]*":(-?[0-9.eE+-]+)\')'
    return f"arraySum(arrayMap(x -> toFloat64OrZero(x), {values}))"


_INPUT_TOKENS = f"toInt64({keys_sum('usage_details', 'input')})"
_OUTPUT_TOKENS = f"toInt64({keys_sum('usage_details', 'output')})"


def _per_second(tokens: str, end: str, start: str) -> str:
    return f"{tokens} / nullIf((US({end}) - US({start})) / 1000000, 0)"


_TRACE_DIMENSIONS = {
    "traceName": _of(TRACE_OF, "trace_name"),
    "tags": _of(TRACE_OF, "trace_tags", kind="array"),
    "userId": _of(TRACE_OF, "trace_user_id", nullable=True, high_cardinality=True),
    "sessionId": _of(TRACE_OF, "trace_session_id", nullable=True, high_cardinality=True),
    "traceRelease": _of(TRACE_OF, "trace_release", nullable=True),
    "traceVersion": _of(TRACE_OF, "trace_version", nullable=True),
}

TRACES = View(
    table=TRACE,
    time="timestamp",
    dimensions={
        "id": _own("id"),
        "name": _own("name"),
        "tags": _own("tags", kind="array"),
        "userId": _own("user_id", nullable=True),
        "sessionId": _own("session_id", nullable=True),
        "release": _own("release", nullable=True),
        "version": _own("version", nullable=True),
        "environment": _own("environment"),
        "timestampMonth": _month("timestamp"),
    },
    measures={
        "count": Measure("1"),
        "observationsCount": Measure("obs_count", relation=OBSERVATIONS_OF_TRACE),
        "scoresCount": Measure("score_count", relation=SCORES_OF_TRACE),
        "uniqueUserIds": Measure("toUInt8(user_id != '')", ("user_id",), distinct="nullIf(user_id, '')"),
        "uniqueSessionIds": Measure("toUInt8(session_id != '')", ("session_id",), distinct="nullIf(session_id, '')"),
        "latency": Measure("intDiv(obs_end_us - obs_start_us, 1000)", relation=OBSERVATIONS_OF_TRACE),
        "totalTokens": Measure("obs_tokens", relation=OBSERVATIONS_OF_TRACE),
        "totalCost": Measure("obs_cost", relation=OBSERVATIONS_OF_TRACE, integral=False),
    },
)

OBSERVATIONS = View(
    table=OBSERVATION,
    time="start_time",
    dimensions={
        "id": _own("id", high_cardinality=True),
        "traceId": _own("trace_id", high_cardinality=True),
        "traceName": _TRACE_DIMENSIONS["traceName"],
        "environment": _own("environment"),
        "parentObservationId": _own("parent_observation_id", nullable=True, high_cardinality=True),
        "type": _own("type"),
        "name": _own("name"),
        "level": _own("level"),
        "version": _own("version", nullable=True),
        "tags": _TRACE_DIMENSIONS["tags"],
        # v2 reads the trace's release from the observation itself; ours is the trace's.
        "release": _TRACE_DIMENSIONS["traceRelease"],
        "providedModelName": _own("provided_model_name", nullable=True),
        "promptName": _own("prompt_name", nullable=True),
        "promptVersion": _own("prompt_version", nullable=True),
        "userId": _TRACE_DIMENSIONS["userId"],
        "sessionId": _TRACE_DIMENSIONS["sessionId"],
        "traceRelease": _TRACE_DIMENSIONS["traceRelease"],
        "traceVersion": _TRACE_DIMENSIONS["traceVersion"],
        "startTimeMonth": _month("start_time"),
        "isRootObservation": Dimension("parent_observation_id = ''", ("parent_observation_id",), kind="boolean"),
    },
    measures={
        "count": Measure("1"),
        "latency": Measure(_ms("end_time", "start_time"), ("start_time", "end_time")),
        "streamingLatency": Measure(_ms("end_time", "completion_start_time"), ("completion_start_time", "end_time")),
        "timeToFirstToken": Measure(
            _ms("completion_start_time", "start_time"), ("start_time", "completion_start_time")
        ),
        "inputTokens": Measure(_INPUT_TOKENS, ("usage_details",)),
        "outputTokens": Measure(_OUTPUT_TOKENS, ("usage_details",)),
        "totalTokens": Measure("total_tokens", ("total_tokens",)),
        "outputTokensPerSecond": Measure(
            _per_second(f"({_OUTPUT_TOKENS})", "end_time", "completion_start_time"),
            ("usage_details", "end_time", "completion_start_time"),
            integral=False,
        ),
        "tokensPerSecond": Measure(
            _per_second("total_tokens", "end_time", "start_time"),
            ("total_tokens", "end_time", "start_time"),
            integral=False,
        ),
        "inputCost": Measure(keys_sum("cost_details", "input"), ("cost_details",), integral=False),
        "outputCost": Measure(keys_sum("cost_details", "output"), ("cost_details",), integral=False),
        "totalCost": Measure("total_cost", ("total_cost",), integral=False),
        "countScores": Measure("score_count", relation=SCORES_OF_OBSERVATION),
        "traceId": Measure("trace_id", ("trace_id",), text=True),
        "uniqueUserIds": Measure("nullIf(trace_user_id, '')", relation=TRACE_OF, text=True),
        "uniqueSessionIds": Measure("nullIf(trace_session_id, '')", relation=TRACE_OF, text=True),
    },
    unsupported=_NO_COLUMN_OBSERVATION_FIELDS,
    v2_dimensions=frozenset({"isRootObservation"}),
    v2_measures=frozenset({"traceId", "uniqueUserIds", "uniqueSessionIds"}),
)


def _scores(data_types: str, value: tuple[str, Dimension], measures: dict[str, Measure]) -> View:
    return View(
        table=SCORE,
        time="timestamp",
        dimensions={
            **_TRACE_DIMENSIONS,
            "observationName": _of(OBSERVATION_OF, "obs_name"),
            "observationModelName": _of(OBSERVATION_OF, "obs_model", nullable=True),
            "observationPromptName": _of(OBSERVATION_OF, "obs_prompt_name", nullable=True),
            "observationPromptVersion": _of(OBSERVATION_OF, "obs_prompt_version", nullable=True),
            "id": _own("id", high_cardinality=True),
            "environment": _own("environment"),
            "name": _own("name"),
            "source": _own("source"),
            "dataType": _own("data_type"),
            "traceId": _own("trace_id", high_cardinality=True),
            "configId": _own("config_id", nullable=True),
            "timestampMonth": _month("timestamp"),
            "timestampDay": Dimension("toString(toDate(DT(timestamp)))", ("timestamp",)),
            "observationId": _own("observation_id", nullable=True, high_cardinality=True),
            value[0]: value[1],
        },
        measures={"count": Measure("1"), **measures},
        segment=f"data_type IN ({data_types})",
        unsupported=frozenset({"evaluatorId", "datasetRunId", "experimentName", "experimentId"}),
    )


_VALUE = {"value": Measure("value", ("value",), integral=False)}

VIEWS = {
    "traces": TRACES,
    "observations": OBSERVATIONS,
    "scores-numeric": _scores("'NUMERIC', 'BOOLEAN'", ("value", _own("value", kind="number")), _VALUE),
    "scores-categorical": _scores("'CATEGORICAL'", ("stringValue", _own("string_value")), {}),
    "scores-boolean": _scores(
        "'BOOLEAN'", ("booleanValue", Dimension("value != 0", ("value",), kind="boolean")), _VALUE
    ),
}
# The v2 endpoint (/api/public/v2/metrics) has no traces view.
VIEWS_V2 = frozenset(VIEWS) - {"traces"}

AGGREGATIONS = frozenset({"sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99", "histogram", "uniq"})
GRANULARITIES = ("minute", "hour", "day", "week", "month")


@dataclass(frozen=True)
class Metric:
    measure: str
    aggregation: str

    @property
    def alias(self) -> str:
        return f"{self.aggregation}_{self.measure}"


@dataclass(frozen=True)
class Filter:
    """A checked condition: `column` a dimension of the view, its time column or `metadata`;
    `kind` the value's type (string, options, array, number, datetime, boolean, null, metadata)."""

    column: str
    kind: str
    operator: str
    value: Any
    key: str = ""


@dataclass(frozen=True)
class MetricsQuery:
    view: str
    dimensions: tuple[str, ...]
    metrics: tuple[Metric, ...]
    filters: tuple[Filter, ...]
    granularity: str | None  # minute..month, `auto` already resolved
    from_us: int
    to_us: int  # inclusive, as Langfuse's
    order: tuple[tuple[str, str], ...]  # (answer field, asc|desc); () for the default
    bins: int
    limit: int


def auto_granularity(from_us: int, to_us: int) -> str:
    """Langfuse's `auto`: about 50 buckets over the window."""
    hours = (to_us - from_us) / 3_600_000_000
    for limit, granularity in ((2, "minute"), (72, "hour"), (1440, "day"), (8760, "week")):
        if hours < limit:
            return granularity
    return "month"
