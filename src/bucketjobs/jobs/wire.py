"""The Job object as the wire format shows it (camelCase, RFC 3339 ms timestamps)."""

from __future__ import annotations

from typing import Any

from bucketjobs.clock import rfc3339_ms

SECRET_PARAMS: frozenset[str] = frozenset()  # no job type takes a secret parameter yet
REDACTED = "***"


def job_view(row: Any) -> dict[str, Any]:
    params = {k: (REDACTED if k in SECRET_PARAMS else v) for k, v in row.params.items()}
    return {
        "jobId": {"id": row.id},
        "jobState": row.state,
        "jobType": row.job_type,
        "startTime": rfc3339_ms(row.created_at),
        "completeTime": rfc3339_ms(row.completed_at),
        "jobParams": params,
        "jobStats": {
            "processed": row.processed,
            "failed": row.failed,
            "total": row.total,
            "skipped": row.skipped,
            "bytes": row.bytes,
        },
        "bucketName": row.bucket_name,
        "userId": {"id": row.user_id} if row.user_id is not None else None,
        "updateTime": rfc3339_ms(row.updated_at),
        "message": row.message,
        "result": row.result,
    }


def failure_view(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "versionId": row.version_id,
        "errorCode": row.error_code,
        "httpStatus": row.http_status,
        "message": row.message,
        "attempts": row.attempts,
        "time": rfc3339_ms(row.time),
    }


def affected_view(row: Any) -> dict[str, Any]:
    return {
        "key": row.key,
        "versionId": row.version_id or None,
        "action": row.action,
        "rule": row.rule,
        "size": row.size,
    }
