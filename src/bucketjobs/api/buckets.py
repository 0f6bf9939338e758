"""`/mapi/v1/bucket/metrics` [ext]: the stored usage metrics of a bucket."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import BucketBody, errors, request_body
from bucketjobs.api.security import authenticate, state_of
from bucketjobs.auth import grants
from bucketjobs.auth.access import Access
from bucketjobs.auth.caller import Caller
from bucketjobs.clock import rfc3339_ms
from bucketjobs.db.models import bucket_metrics

router = APIRouter(tags=["buckets"])


@router.post(
    "/bucket/metrics",
    responses=errors(400, 401, 403, 404, 413, 500, 503),
    openapi_extra=request_body(BucketBody),
)
async def get_bucket_metrics(
    request: Request, caller: Caller = Depends(authenticate)
) -> dict[str, Any]:
    """[ext] The bucket's stored usage metrics, as its last METRIC_RECONCILIATION left them."""
    body = parse(BucketBody, await json_object(request))
    component_id = await request.app.state.storage.primary_id()
    async with state_of(request).db.connect() as conn:
        if await grants.reaches(conn, caller, [(component_id, body.bucketName, Access.READ)]):
            raise ApiError(403, f"no READ access to bucket {body.bucketName[:64]!r}")
        row = (
            await conn.execute(
                select(bucket_metrics).where(
                    bucket_metrics.c.component_id == component_id,
                    bucket_metrics.c.bucket_name == body.bucketName,
                )
            )
        ).first()
    if row is None:
        raise ApiError(404, f"no metrics stored for bucket {body.bucketName!r}", code="NOT_FOUND")
    return {
        "bucketName": body.bucketName,
        "metrics": row.metrics,
        "reconciledTime": rfc3339_ms(row.reconciled_at),
        "jobId": {"id": row.job_id},
    }
