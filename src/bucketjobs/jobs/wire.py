"""The Job object as the wire format shows it (camelCase, RFC 3339 ms timestamps): the
views the API answers with, and their models, which the served OpenAPI document states
and the SDK (bucketjobs.client) parses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bucketjobs.clock import rfc3339_ms
from bucketjobs.jobs.model import JobState, JobType


class Ref(BaseModel):
    id: int


class JobStats(BaseModel):
    processed: int
    failed: int
    total: int
    skipped: int
    bytes: int


class Job(BaseModel):
    jobId: Ref
    jobState: JobState
    jobType: JobType
    startTime: str
    completeTime: str | None
    jobParams: dict[str, str]
    jobStats: JobStats
    bucketName: str
    userId: Ref | None = None
    updateTime: str | None = None
    message: str | None = None
    result: dict[str, Any] | None = None


class ObjectFailure(BaseModel):
    key: str
    versionId: str | None
    errorCode: str
    httpStatus: int | None
    message: str
    attempts: int
    time: str


class AffectedObject(BaseModel):
    key: str
    versionId: str | None = Field(description="null: the key's current version")
    action: str = Field(description="what the job would do, e.g. expired, noncurrentExpired")
    rule: str = Field(description="the lifecycle rule's ID (rule-N when it has none)")
    size: int


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
