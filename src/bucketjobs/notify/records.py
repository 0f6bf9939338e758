"""S3 event records as AWS writes them (SPEC §4), for objects that already exist: pure.

A re-sent record describes the object's creation as the store saw it: `eventTime` and
`sequencer` come from the object's last-modified time, so a consumer that orders by them
puts a re-sent event where the original would have been; `reconciliation.jobId` tells it
apart from a live one (docs/DECISIONS.md).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote_plus

PRINCIPAL = "bucketjobs"


def encoded_key(key: str) -> str:
    """The key as S3 puts it in event records: form-encoded (a space is `+`, a `+` is
    `%2B`), with `/` left as it is."""
    return quote_plus(key, safe="/")


def sequencer(modified: dt.datetime) -> str:
    """16 hex digits that grow with the object's last-modified time (nanoseconds)."""
    nanos = int(modified.timestamp()) * 1_000_000_000 + modified.microsecond * 1000
    return f"{max(nanos, 0):016X}"


def event_record(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    version_id: str | None,
    modified: dt.datetime,
    event_name: str,
    job_id: int,
    configuration_id: str,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """One record of the `{"Records": [...]}` document."""
    obj: dict[str, Any] = {
        "key": encoded_key(key),
        "size": size,
        "eTag": etag.strip('"'),
        "sequencer": sequencer(modified),
    }
    if version_id and version_id != "null":
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": modified.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{modified.microsecond // 1000:03d}Z",
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": PRINCIPAL},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": f"bucketjobs-{job_id}", "x-amz-id-2": ""},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "ownerIdentity": {"principalId": PRINCIPAL},
            },
            "object": obj,
        },
        "reconciliation": {"jobId": job_id},
    }


def message(record: dict[str, Any]) -> bytes:
    """What a target receives for one event: the standard one-record document."""
    return json.dumps({"Records": [record]}, separators=(",", ":")).encode()


_HOLE = "@@hole@@"  # where a per-object field goes in a template (no bucket name holds @)


class Messages:
    """`message(event_record(...))` for many objects of one job and target, ~4x faster:
    everything but the object's fields is serialised once, and the per-object fields are
    spliced in (the encoded key is plain ASCII with no `"` or `\\`: quote_plus escaped
    them). tests/unit/test_notify_rules.py checks it against `message` byte for byte."""

    def __init__(self, **common: Any) -> None:
        self.common = common
        template = event_record(key="", size=0, etag="", version_id=None,
                                modified=dt.datetime.now(dt.UTC), **common)  # fmt: skip
        template["eventTime"] = _HOLE
        template["s3"]["object"] = _HOLE
        self.head, self.middle, self.tail = message(template).decode().split(f'"{_HOLE}"')

    def render(
        self, key: str, size: int, etag: str, version_id: str | None, modified: dt.datetime
    ) -> bytes:
        obj = (
            f'{{"key":"{encoded_key(key)}","size":{int(size)},"eTag":'
            f'{json.dumps(etag.strip(chr(34)))},"sequencer":"{sequencer(modified)}"'
        )
        if version_id and version_id != "null":
            obj += f',"versionId":{json.dumps(version_id)}'
        when = modified.astimezone(dt.UTC)
        stamp = f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"
        return f'{self.head}"{stamp}"{self.middle}{obj}}}{self.tail}'.encode()
