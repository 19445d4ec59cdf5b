"""Edge metrics of the monitoring guide: what was ingested (HTTP traffic: health/http.py)."""

from prometheus_client import Counter

from pipeline.envelope import OTLP_GRPC, OTLP_HTTP

TRACES_INGESTED = Counter("traces_ingested_total", "Total traces ingested", ["source"])
OBSERVATIONS_INGESTED = Counter("observations_ingested_total", "Total observations ingested", ["source"])
SCORES_CREATED = Counter("scores_created_total", "Total scores created", ["source"])
API_KEYS_CREATED = Counter("api_keys_created_total", "API keys generated")
API_KEYS_REVOKED = Counter("api_keys_revoked_total", "API keys revoked")

# Every source exists (at 0) from the start, so a dashboard never sees a series appear late.
SOURCES = ("batch", OTLP_HTTP, OTLP_GRPC)
for _source in SOURCES:
    for _counter in (TRACES_INGESTED, OBSERVATIONS_INGESTED, SCORES_CREATED):
        _counter.labels(_source)
TRACES_DELETED = Counter("traces_deleted_total", "Traces deleted through the API (each id of a request counts)")
SCORES_DELETED = Counter("scores_deleted_total", "Scores deleted through the API")
