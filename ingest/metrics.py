"""Edge metrics of the monitoring guide: HTTP traffic and what was ingested."""

from prometheus_client import Counter, Histogram

# Around the guide's SLOs: 50 ms (p50), 500 ms (p99) and 2 s (critical) are bucket edges.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
SIZE_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 5_000_000, 10_000_000)

HTTP_REQUESTS = Counter("http_requests_total", "Total HTTP requests", ["method", "path", "status"])
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds", "Request latency", ["method", "path"], buckets=LATENCY_BUCKETS
)
HTTP_REQUEST_BYTES = Histogram(
    "http_request_size_bytes", "Request body sizes", ["method", "path"], buckets=SIZE_BUCKETS
)
HTTP_RESPONSE_BYTES = Histogram(
    "http_response_size_bytes", "Response body sizes", ["method", "path"], buckets=SIZE_BUCKETS
)

TRACES_INGESTED = Counter("traces_ingested_total", "Total traces ingested", ["source"])
OBSERVATIONS_INGESTED = Counter("observations_ingested_total", "Total observations ingested", ["source"])
SCORES_CREATED = Counter("scores_created_total", "Total scores created", ["source"])
API_KEYS_CREATED = Counter("api_keys_created_total", "API keys generated")

# Both sources exist (at 0) from the start, so a dashboard never sees a series appear late.
SOURCES = ("batch", "otlp")
for _source in SOURCES:
    for _counter in (TRACES_INGESTED, OBSERVATIONS_INGESTED, SCORES_CREATED):
        _counter.labels(_source)
