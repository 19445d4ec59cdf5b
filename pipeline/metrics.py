"""Worker metrics of the monitoring guide; `type` is the stage, `queue` the stage's backlog."""

from prometheus_client import Counter, Gauge, Histogram

JOBS_PROCESSED = Counter("worker_jobs_processed_total", "Jobs processed by type and status", ["type", "status"])
JOB_SECONDS = Histogram(
    "worker_job_duration_seconds",
    "Job processing time",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
QUEUE_DEPTH = Gauge("worker_queue_depth", "Current queue depth by queue", ["queue"])
ACTIVE_JOBS = Gauge("worker_active_jobs", "Currently processing jobs", ["type"])

STATUSES = ("success", "retry", "dead_letter")


def declare(stage: str) -> None:
    """Create a stage's label sets at once, so its series exist (at 0) before its first job;
    prometheus_client leaves a labelled metric out of /metrics until a label set is used."""
    for status in STATUSES:
        JOBS_PROCESSED.labels(stage, status)
    JOB_SECONDS.labels(stage)
    QUEUE_DEPTH.labels(stage)
    ACTIVE_JOBS.labels(stage)
