"""METRIC_RECONCILIATION: recount a bucket's usage from the store itself.

Each partition counts its key range; `finish` adds the partitions up, counts incomplete
multipart uploads, and hands the engine the metrics to store in the same transaction that
completes the job. With a `prefix` the job reports the prefix's usage but does not replace
the bucket's stored metrics (they describe the whole bucket); a dry run stores nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from bucketjobs.ops.base import Delta, JobContext
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


class MetricReconciliation:
    pure = True

    def count_entry(self, entry: Entry) -> bool:
        return True

    async def prepare(self, ctx: JobContext) -> dict[str, Any]:
        """A bucket that never had versioning has no noncurrent versions or delete markers:
        the much cheaper ListObjectsV2 sees everything then."""
        answer = await with_retries(
            functools.partial(ctx.client.get_bucket_versioning, Bucket=ctx.bucket)
        )
        return {"versions": answer.get("Status") in ("Enabled", "Suspended")}

    async def act(self, ctx: JobContext, entries: Sequence[Entry], after: str | None) -> Delta:
        counts = count_entries(entries)
        return Delta(processed=len(entries), bytes=counts["bytes"], partial=counts)

    async def finish(
        self, ctx: JobContext, totals: Mapping[str, int], previous: Any
    ) -> dict[str, Any]:
        metrics = {name: int(totals.get(name, 0)) for name in METRIC_NAMES}
        async for upload in iter_uploads(ctx.client, ctx.bucket, prefix=ctx.common.prefix):
            metrics["incompleteUploadCount"] += 1
            metrics["incompleteUploadBytes"] += upload.size
        stored = not ctx.common.dry_run and not ctx.common.prefix
        return {
            "metrics": metrics,
            "previous": previous,
            "difference": difference(metrics, previous),
            "stored": stored,
        }
