"""Worker metrics of the monitoring guide; `type` is the stage, `queue` the stage's backlog."""

from prometheus_client import Counter, Gauge, Histogram

JOBS_PROCESSED = Counter("worker_jobs_processed_total", "Jobs processed by type and status", ["type", "status"])
JOB_SECONDS = Histogram(
    "worker_job_duration_seconds",
    "Job processing time",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
# Under `agenttrace worker --processes N` (prometheus multiprocess mode) the live processes'
# values are summed: each reports the lag of the partitions it holds, so the sum is the stage's,
# in the one series per queue that a single worker serves; a dead process's value goes with it.
QUEUE_DEPTH = Gauge("worker_queue_depth", "Current queue depth by queue", ["queue"], multiprocess_mode="livesum")
ACTIVE_JOBS = Gauge("worker_active_jobs", "Currently processing jobs", ["type"], multiprocess_mode="livesum")

DEAD_LETTERS = Counter("dead_letters_total", "Events dead-lettered by stage and reason", ["stage", "reason"])

STATUSES = ("success", "retry", "dead_letter")
# A closed set (pipeline/dead_letters.py, reason_kind): the stored reason text says the rest.
DEAD_LETTER_REASONS = ("undecodable", "bad_time", "out_of_range", "store_refused", "other")


def declare(stage: str) -> None:
    """Create a stage's label sets at once, so its series exist (at 0) before its first job;
    prometheus_client leaves a labelled metric out of /metrics until a label set is used."""
    for status in STATUSES:
        JOBS_PROCESSED.labels(stage, status)
    for reason in DEAD_LETTER_REASONS:
        DEAD_LETTERS.labels(stage, reason)
    JOB_SECONDS.labels(stage)
    QUEUE_DEPTH.labels(stage)
    ACTIVE_JOBS.labels(stage)
