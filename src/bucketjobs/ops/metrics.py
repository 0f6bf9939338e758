"""METRIC_RECONCILIATION: recount a bucket's usage from the store itself.

Each partition counts its key range; incomplete multipart uploads are counted while the
job prepares (a snapshot, like the listing); `finish` adds the partitions up, and its
`StoredMetrics.commit` compares them with the stored metrics and replaces those, inside
the transaction that completes the job. With a `prefix` the job reports the prefix's
usage but does not replace the bucket's stored metrics (they describe the whole bucket);
a dry run stores nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.db.models import bucket_metrics
from bucketjobs.ops.base import Completion, Delta, RunningJob
from bucketjobs.storage.listing import Entry, iter_uploads
from bucketjobs.storage.retry import with_retries

METRIC_NAMES = (
    "objectCount",
    "bytes",
    "noncurrentVersionCount",
    "noncurrentBytes",
    "deleteMarkerCount",
    "incompleteUploadCount",
    "incompleteUploadBytes",
)


def count_entries(entries: Sequence[Entry]) -> dict[str, int]:
    """Pure counting of one page: current objects, noncurrent versions, delete markers."""
    counts = dict.fromkeys(METRIC_NAMES[:5], 0)
    for entry in entries:
        if entry.delete_marker:
            counts["deleteMarkerCount"] += 1
        elif entry.is_latest:
            counts["objectCount"] += 1
            counts["bytes"] += entry.size or 0
        else:
            counts["noncurrentVersionCount"] += 1
            counts["noncurrentBytes"] += entry.size or 0
    return counts


def difference(new: Mapping[str, int], previous: Mapping[str, int] | None) -> dict[str, int]:
    base = previous or {}
    return {name: int(new.get(name, 0)) - int(base.get(name, 0)) for name in METRIC_NAMES}


@dataclass(frozen=True)
class StoredMetrics(Completion):
    """The recount, stored as the bucket's metrics when `store` (whole bucket, not a dry
    run). The previous metrics are read under a row lock in the same transaction, so the
    reported difference is against exactly what the new metrics replace."""

    metrics: dict[str, int] = field(default_factory=dict)
    store: bool = False

    async def commit(
        self, conn: AsyncConnection, job: RunningJob, now: dt.datetime
    ) -> dict[str, Any]:
        key = {"component_id": job.source.id, "bucket_name": job.bucket}
        previous = (
            await conn.execute(
                select(bucket_metrics.c.metrics)
                .where(*(bucket_metrics.c[name] == value for name, value in key.items()))
                .with_for_update()
            )
        ).scalar()
        if self.store:
            values = {"metrics": self.metrics, "reconciled_at": now, "job_id": job.job_id}
            await conn.execute(
                insert(bucket_metrics)
                .values(**key, **values)
                .on_conflict_do_update(index_elements=list(key), set_=values)
            )
        return {
            "metrics": self.metrics,
            "previous": previous,
            "difference": difference(self.metrics, previous),
            "stored": self.store,
        }


_UPLOADS = ("incompleteUploadCount", "incompleteUploadBytes")


async def _count_uploads(job: RunningJob) -> dict[str, int]:
    count = size = 0
    async for upload in iter_uploads(job.client, job.bucket, prefix=job.params.prefix):
        count += 1
        size += upload.size
    return dict(zip(_UPLOADS, (count, size), strict=True))


class MetricReconciliation:
    pure = True
    inline = True
    partition_bytes: int | None = None

    def count_entry(self, entry: Entry) -> bool:
        return True

    async def prepare(self, job: RunningJob) -> dict[str, Any]:
        """A bucket that never had versioning has no noncurrent versions or delete markers:
        the much cheaper ListObjectsV2 sees everything then. Incomplete uploads are counted
        here, beside that question, rather than after the listing, where they would add
        their round trips to the job's end."""
        versioning, uploads = await asyncio.gather(
            with_retries(functools.partial(job.client.get_bucket_versioning, Bucket=job.bucket)),
            _count_uploads(job),
        )
        return {"versions": versioning.get("Status") in ("Enabled", "Suspended"), **uploads}

    async def act(self, job: RunningJob, entries: Sequence[Entry], after: str | None) -> Delta:
        counts = count_entries(entries)
        return Delta(processed=len(entries), bytes=counts["bytes"], partial=counts)

    async def finish(self, job: RunningJob, totals: Mapping[str, int]) -> StoredMetrics:
        metrics = {name: int(totals.get(name, 0)) for name in METRIC_NAMES}
        uploads = job.plan if _UPLOADS[0] in job.plan else await _count_uploads(job)
        for name in _UPLOADS:  # a plan from before uploads were counted at prepare has none
            metrics[name] += int(uploads[name])
        store = not job.params.dry_run and not job.params.prefix
        return StoredMetrics(metrics=metrics, store=store)
