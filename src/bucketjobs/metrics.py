"""The Prometheus figures bucketjobs exports, beside the client library's process ones.

Two kinds, with bounded label sets (no job ids, bucket names or keys as labels):
- **Per process**, counted where they happen: storage requests (a latency histogram by S3
  operation and status, in workers and the API) and refused logins (in the API).
- **Per installation**, read from the database when scraped: jobs by type and state, the
  objects and bytes they processed or failed, partitions queued and running, and live
  workers. The API reads them at most once every SNAPSHOT_SECONDS (one query each, shared by
  every scrape in that time): `/metrics` needs no token, so a flood of scrapes must not
  become a flood of queries.

Workers serve their own figures on `bucketjobs worker --metrics-port` (docs/DECISIONS.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

SNAPSHOT_SECONDS = 5.0
SNAPSHOT_TIMEOUT = 2.0  # a database that does not answer must not hold the scrape

STORAGE_SECONDS = Histogram(
    "bucketjobs_storage_request_seconds",
    "Seconds an S3 request took, by operation and HTTP status (0: no answer).",
    ["operation", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LOGIN_FAILURES = Counter(
    "bucketjobs_login_failures", "Logins refused (wrong user or password, or throttled)."
)


def operation(method: str, key: str | None, query: Mapping[str, str] | None,
              headers: Mapping[str, str] | None) -> str:  # fmt: skip
    """The S3 operation a request is, from a fixed set (a label must stay bounded)."""
    query = query or {}
    if key is None:
        if method == "GET":
            if "versions" in query:
                return "ListObjectVersions"
            if "uploads" in query:
                return "ListMultipartUploads"
            return "ListObjectsV2" if "list-type" in query else "GetBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"HEAD": "HeadBucket", "PUT": "PutBucket", "DELETE": "DeleteBucket"}.get(
            method, "Other"
        )
    copy = any(h.lower() == "x-amz-copy-source" for h in headers or {})
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if copy else "UploadPart"
        return {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload",
                "GET": "ListParts"}.get(method, "Other")  # fmt: skip
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if "tagging" in query:
        return "GetObjectTagging" if method == "GET" else "ObjectTagging"
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")


_JOBS = text(
    "SELECT job_type, state, count(*), coalesce(sum(processed), 0), coalesce(sum(failed), 0),"
    " coalesce(sum(bytes), 0) FROM jobs GROUP BY job_type, state"
)
_PARTITIONS = text(
    "SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = 'bucketjobs'"
    " AND task_name = 'bucketjobs.partition' AND status IN ('todo', 'doing') GROUP BY status"
)
_WORKERS = text(
    "SELECT count(*) FROM procrastinate_workers"
    " WHERE last_heartbeat > now() - make_interval(secs => :s)"
)


class InstallationMetrics(Collector):
    """Jobs, partitions and workers as the database has them, from the last snapshot."""

    def __init__(self, db: AsyncEngine, stalled_after: float = 20.0) -> None:
        self.db = db
        self.stalled_after = stalled_after
        self._jobs: list[Any] = []
        self._partitions: dict[str, int] = {}
        self._workers = 0
        self._up = False
        self._taken = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """A new snapshot, unless the last one is younger than SNAPSHOT_SECONDS. With the
        database down the scrape still answers: this process's own figures, and
        `bucketjobs_database_up 0` in place of the installation's (no stale counts)."""
        async with self._lock:
            if time.monotonic() - self._taken < SNAPSHOT_SECONDS:
                return
            try:
                async with asyncio.timeout(SNAPSHOT_TIMEOUT), self.db.connect() as conn:
                    jobs = list((await conn.execute(_JOBS)).all())
                    rows = (await conn.execute(_PARTITIONS)).all()
                    workers = await conn.scalar(_WORKERS, {"s": self.stalled_after})
            except (SQLAlchemyError, OSError, TimeoutError):
                self._up = False
            else:
                self._jobs, self._workers, self._up = jobs, int(workers or 0), True
                self._partitions = {str(status): int(n) for status, n in rows}
            self._taken = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "bucketjobs_database_up", "1 if the last snapshot of the database succeeded, else 0."
        )
        up.add_metric([], 1 if self._up else 0)
        yield up
        if not self._up:
            return
        jobs = GaugeMetricFamily("bucketjobs_jobs", "Jobs by type and state.",
                                 labels=["type", "state"])  # fmt: skip
        objects = GaugeMetricFamily(
            "bucketjobs_job_objects",
            "Objects the recorded jobs processed or failed, by type (sums over jobs kept).",
            labels=["type", "outcome"],
        )
        volume = GaugeMetricFamily("bucketjobs_job_bytes",
                                   "Bytes the recorded jobs processed, by type.",
                                   labels=["type"])  # fmt: skip
        processed: dict[str, int] = {}
        failed: dict[str, int] = {}
        moved: dict[str, int] = {}
        for job_type, state, count, done, refused, size in self._jobs:
            jobs.add_metric([job_type, state], count)
            processed[job_type] = processed.get(job_type, 0) + int(done)
            failed[job_type] = failed.get(job_type, 0) + int(refused)
            moved[job_type] = moved.get(job_type, 0) + int(size)
        for job_type in processed:
            objects.add_metric([job_type, "processed"], processed[job_type])
            objects.add_metric([job_type, "failed"], failed[job_type])
            volume.add_metric([job_type], moved[job_type])
        partitions = GaugeMetricFamily("bucketjobs_partitions",
                                       "Partitions waiting for a worker or being worked on.",
                                       labels=["state"])  # fmt: skip
        partitions.add_metric(["queued"], self._partitions.get("todo", 0))
        partitions.add_metric(["running"], self._partitions.get("doing", 0))
        workers = GaugeMetricFamily("bucketjobs_live_workers",
                                    "Worker processes with a recent heartbeat.")  # fmt: skip
        workers.add_metric([], self._workers)
        yield from (jobs, objects, volume, partitions, workers)


def register_installation(db: AsyncEngine) -> InstallationMetrics:
    """The installation's collector, registered once per process (a second API app in the
    same process, as in tests, replaces the first)."""
    global _installed
    if _installed is not None:
        REGISTRY.unregister(_installed)
    _installed = InstallationMetrics(db)
    REGISTRY.register(_installed)
    return _installed


_installed: InstallationMetrics | None = None
