"""Reading a bucket's own configuration from its store (rare calls: aiobotocore)."""

from __future__ import annotations

from typing import Any

from bucketjobs.storage.retry import StorageError, with_retries


async def replication_destination(client: Any, bucket: str) -> str | None:
    """The destination bucket named by the first enabled rule of the bucket's S3
    replication configuration, if it has one."""
    try:
        answer = await with_retries(lambda: client.get_bucket_replication(Bucket=bucket))
    except StorageError as exc:
        if exc.http_status == 404 or "NotFound" in exc.code:
            return None
        raise
    for rule in answer.get("ReplicationConfiguration", {}).get("Rules", []):
        if rule.get("Status") == "Enabled":
            arn = str(rule.get("Destination", {}).get("Bucket", ""))
            return arn.rsplit(":", 1)[-1] or None
    return None
