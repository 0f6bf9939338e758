"""Build the `JobContext` an operation sees from a job row."""

from __future__ import annotations

from typing import Any

from bucketjobs.engine.context import EngineContext
from bucketjobs.jobs.params import CommonParams
from bucketjobs.ops.base import JobContext


async def job_context(ctx: EngineContext, job: Any) -> JobContext:
    return JobContext(
        job_id=job.id,
        bucket=job.bucket_name,
        params=dict(job.params),
        common=CommonParams.parse(job.params),
        client=await ctx.client(job.component_id),
    )
