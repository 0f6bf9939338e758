"""Build what a step needs from a job row: the op's `JobContext` and the listing setup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bucketjobs.engine.context import EngineContext
from bucketjobs.jobs.params import CommonParams
from bucketjobs.ops.base import JobContext
from bucketjobs.storage.lister import S3Lister
from bucketjobs.storage.listing import LEXICOGRAPHIC


@dataclass(frozen=True)
class Step:
    """One job as a step of the engine sees it."""

    job: Any
    op: JobContext
    lister: S3Lister
    order: str

    @property
    def versions(self) -> bool:
        return bool((self.job.plan or {}).get("versions", True))


async def load_step(ctx: EngineContext, job: Any) -> Step:
    component = await ctx.component(job.component_id)
    op = JobContext(
        job_id=job.id,
        bucket=job.bucket_name,
        params=dict(job.params),
        common=CommonParams.parse(job.params),
        client=await ctx.client(job.component_id),
    )
    order = str(component.config.get("listingOrder") or LEXICOGRAPHIC)
    return Step(job, op, await ctx.lister(job.component_id), order)
