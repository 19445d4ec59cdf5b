"""Edge metrics of the monitoring guide: what was ingested (HTTP traffic: health/http.py)."""

from prometheus_client import Counter, Histogram

from pipeline.envelope import OTLP_GRPC, OTLP_HTTP, OTLP_LOGS, OTLP_LOGS_GRPC

TRACES_INGESTED = Counter("traces_ingested_total", "Total traces ingested", ["source"])
OBSERVATIONS_INGESTED = Counter("observations_ingested_total", "Total observations ingested", ["source"])
SCORES_CREATED = Counter("scores_created_total", "Total scores created", ["source"])
API_KEYS_CREATED = Counter("api_keys_created_total", "API keys generated")
API_KEYS_REVOKED = Counter("api_keys_revoked_total", "API keys revoked")

# Every source exists (at 0) from the start, so a dashboard never sees a series appear late.
SOURCES = ("batch", OTLP_HTTP, OTLP_GRPC, OTLP_LOGS, OTLP_LOGS_GRPC)
for _source in SOURCES:
    for _counter in (TRACES_INGESTED, OBSERVATIONS_INGESTED, SCORES_CREATED):
        _counter.labels(_source)
TRACES_DELETED = Counter("traces_deleted_total", "Traces deleted through the API (each id of a request counts)")
SCORES_DELETED = Counter("scores_deleted_total", "Scores deleted through the API")
# Where an edge request's time goes beyond the api's own work: the wait for Kafka's
# acknowledgement of its records (acks=all), which http_request_duration_seconds includes.
KAFKA_PUBLISH_SECONDS = Histogram(
    "kafka_publish_duration_seconds",
    "Time from handing a request's records to Kafka to their acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
