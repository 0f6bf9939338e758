"""BATCH_REPLICATE: copy the bucket's current objects to a destination bucket.

`prepare` settles the destination once for every worker (the plan): component, bucket,
prefix, and whether copies are server-side. Each page is then compared against the
destination *by listing it* — one request per thousand keys instead of a HEAD per object —
and what is missing or different is copied, many objects at a time.

Only current versions are copied (ListObjectsV2): a destination gets the bucket as a
reader sees it now, not its history.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from bucketjobs.jobs.params import ReplicateParams, ReplicationFilter
from bucketjobs.ops.base import Completion, Delta, Failure, JobFailed, RunningJob
from bucketjobs.storage.bucket_config import replication_destination
from bucketjobs.storage.copy import server_side_copy, streamed_copy
from bucketjobs.storage.lister import Entry
from bucketjobs.storage.listing import DELIMITER, Scope, sort_key
from bucketjobs.storage.retry import StorageError, with_retries
from bucketjobs.storage.store import Store

LANES = 64  # objects in flight per page; the component's pool caps the process
# A partition of copies ends at the first key past this many bytes: a bucket of large
# objects then shows progress, spreads over workers and repeats at most about this much
# copying after a crash, instead of 1,000 objects of any size (docs/DECISIONS.md).
PARTITION_BYTES = 1024**3


def is_md5_etag(etag: str) -> bool:
    """A single-part upload's ETag is the MD5 of the bytes; a multipart one is not."""
    return len(etag) == 32 and "-" not in etag


def identical(source: Entry, destination: Entry | None) -> bool:
    """MISSING's rule: the destination already holds this object.

    Same size, and the same ETag when both are content MD5s. When either was written in
    parts its ETag says nothing about the bytes: a copy no older than the source counts.
    """
    if destination is None or source.size != destination.size:
        return False
    if is_md5_etag(source.etag) and is_md5_etag(destination.etag):
        return bool(source.etag == destination.etag)
    return bool(destination.last_modified >= source.last_modified)


def destination_of(plan: Mapping[str, Any]) -> tuple[int, str, str]:
    dest = plan["destination"]
    return int(dest["component"]), str(dest["bucket"]), str(dest.get("prefix", ""))


def _params(job: RunningJob) -> ReplicateParams:
    assert isinstance(job.params, ReplicateParams)
    return job.params


class Replicate:
    pure = False
    inline = False
    partition_bytes: int | None = PARTITION_BYTES

    def count_entry(self, entry: Entry) -> bool:
        return not entry.delete_marker

    async def prepare(self, job: RunningJob) -> dict[str, Any]:
        params = _params(job)
        bucket = params.destination_bucket or await replication_destination(job.client, job.bucket)
        if not bucket:
            raise JobFailed(
                f"no destinationBucket, and bucket {job.bucket!r} has no replication rule"
                " naming one"
            )
        component = params.destination_component or job.source.id
        try:
            dest = await job.store(component)
        except LookupError as exc:
            raise JobFailed(f"destination component {component} does not exist") from exc
        try:
            await with_retries(lambda: dest.client.head_bucket(Bucket=bucket), attempts=4)
        except StorageError as exc:
            where = f"destination bucket {bucket!r} on component {component} ({dest.http.endpoint})"
            if exc.http_status == 404:
                raise JobFailed(f"{where} does not exist") from exc
            raise JobFailed(f"{where} is unreachable: {exc}") from exc
        return {
            "versions": False,
            "destination": {
                "component": component,
                "bucket": bucket,
                "prefix": params.destination_prefix,
            },
            "serverSide": component == job.source.id,
        }

    async def act(self, job: RunningJob, entries: Sequence[Entry], after: str | None) -> Delta:
        component, bucket, prefix = destination_of(job.plan)
        dest = await job.store(component)
        delta = Delta()
        todo = [e for e in entries if not e.delete_marker]
        if _params(job).replication_filter is ReplicationFilter.MISSING:
            present = await _listed(dest, bucket, prefix, job.scope, after, todo)
            copy = [e for e in todo if not identical(e, present.get(prefix + e.key))]
            delta.skipped = len(todo) - len(copy)
            todo = copy
        if job.params.dry_run:
            delta.processed = len(todo)
            delta.partial = {"bytesCopied": 0}
            return delta

        server_side = bool(job.plan["serverSide"])
        pending = iter(todo)

        async def copy_one(entry: Entry) -> int:
            size = entry.size
            # SeaweedFS keeps a `dir/` marker as a directory: GET works, CopyObject answers
            # NoSuchKey. A marker is empty, so reading and writing it costs nothing extra.
            if server_side and not entry.key.endswith("/"):
                if size is None:  # a FAILED re-run knows keys, not sizes
                    _, head, _ = await job.source.http.request("HEAD", job.bucket, entry.key)
                    size = int(head.get("Content-Length", "0"))
                await server_side_copy(
                    job.source.http, job.bucket, entry.key, bucket, prefix + entry.key, size
                )
                return size
            return await streamed_copy(
                job.source.http, dest.http, job.bucket, entry.key, bucket, prefix + entry.key,
                size_hint=size,
            )  # fmt: skip

        async def lane() -> None:
            for entry in pending:
                if job.stopping():
                    return
                try:
                    async with job.slot():
                        copied = await with_retries(functools.partial(copy_one, entry))
                except StorageError as exc:
                    if exc.http_status is None:
                        # No answer at all after every retry: a store is down, not this object.
                        raise JobFailed(f"copying {entry.key!r}: {exc}") from exc
                    if exc.http_status == 404 and entry.size is None:
                        delta.skipped += 1  # failed before, deleted since: nothing to copy
                        continue
                    delta.failed += 1
                    delta.failures.append(
                        Failure(entry.key, None, exc.code, exc.http_status, exc.message,
                                exc.attempts, dt.datetime.now(dt.UTC))
                    )  # fmt: skip
                else:
                    delta.processed += 1
                    delta.bytes += copied

        try:
            async with asyncio.TaskGroup() as lanes:  # one lane failing the job stops all
                for _ in range(min(LANES, len(todo))):
                    lanes.create_task(lane())
        except* JobFailed as group:
            raise group.exceptions[0] from None
        delta.partial = {"bytesCopied": delta.bytes}
        return delta

    async def finish(self, job: RunningJob, totals: Mapping[str, int]) -> Completion:
        component, bucket, prefix = destination_of(job.plan)
        result: dict[str, Any] = {
            "bytesCopied": int(totals.get("bytesCopied", 0)),
            "destination": {"component": component, "bucket": bucket, "prefix": prefix},
            "replicationFilter": _params(job).replication_filter.value,
            "versions": "current versions only",
        }
        if job.source_job_id is not None:
            result["failedKeysOf"] = {"id": job.source_job_id}
        return Completion(result)


async def _listed(
    dest: Store,
    bucket: str,
    dest_prefix: str,
    scope: Scope,
    after: str | None,
    entries: Sequence[Any],
) -> dict[str, Any]:
    """The destination's entries for `entries`' keys, from a listing of the same key range.

    Pages are read until every wanted key is found or passed (in the destination's order),
    so a destination with many other keys costs more pages, never a wrong answer: a key not
    seen is copied, and copying is idempotent.
    """
    wanted = {dest_prefix + e.key for e in entries}
    if not wanted:
        return {}
    order = sort_key(dest.order)
    last = max(order(k) for k in wanted)
    found: dict[str, Any] = {}
    cursor = dest_prefix + after if after is not None else None
    token: str | None = None
    delimiter = DELIMITER if scope.delimited else None
    while True:
        call = functools.partial(
            dest.lister.page, bucket, versions=False, prefix=dest_prefix + scope.prefix,
            after=cursor, delimiter=delimiter, token=token,
        )  # fmt: skip
        try:
            page = await with_retries(call)
        except StorageError as exc:
            message = f"listing the destination: {exc.message}"
            raise StorageError(exc.code, message, exc.http_status, exc.attempts) from exc
        for entry in page.entries:
            if entry.key in wanted:
                found[entry.key] = entry
        passed = bool(page.entries) and order(page.entries[-1].key) >= last
        if passed or not page.truncated or not (page.entries or page.token):
            return found
        cursor = page.entries[-1].key if page.entries else cursor
        token = page.token
