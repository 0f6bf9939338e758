"""BATCH_REPLICATE's rules at create time: a job that cannot work is refused with a 400.

Checked here, before a job exists: the destination component exists and is ACTIVE; there is
a destination bucket (the parameter, or the source bucket's replication configuration); the
destination is not where the job reads from; a FAILED re-run has a finished job to take its
keys from.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.db.models import jobs, storage_components
from bucketjobs.jobs import errors
from bucketjobs.jobs.model import TERMINAL_STATES, JobType
from bucketjobs.jobs.params import ReplicateParams, ReplicationFilter


class ReplicationSource(Protocol):
    async def replication_destination(self, bucket: str) -> str | None: ...


def writes_into_source(same_bucket: bool, prefix: str, destination_prefix: str) -> bool:
    """Whether copies would land among the keys the job lists (and be copied again)."""
    return same_bucket and (destination_prefix + prefix).startswith(prefix)


async def destination_of(
    storage: ReplicationSource, component_id: int, bucket: str, params: ReplicateParams
) -> tuple[int, str]:
    """Where the job copies to: (component, bucket), from its parameters or, without a
    destinationBucket, from the source bucket's replication configuration."""
    destination_component = params.destination_component or component_id
    destination = params.destination_bucket
    if destination is None:
        destination = await storage.replication_destination(bucket)
        if destination is None:
            raise errors.InvalidRequest(
                "jobParams.destinationBucket is required: bucket"
                f" {bucket!r} has no replication configuration with an enabled rule"
            )
    return destination_component, destination


async def check(
    conn: AsyncConnection,
    component_id: int,
    bucket: str,
    params: ReplicateParams,
    destination: tuple[int, str],
) -> int | None:
    """Raise InvalidRequest for a job that cannot run; return a FAILED re-run's source job."""
    destination_component, destination_bucket = destination
    row: Any = (
        await conn.execute(
            select(storage_components.c.state).where(
                storage_components.c.id == destination_component
            )
        )
    ).first()
    if row is None:
        raise errors.InvalidRequest(
            f"jobParams.destinationComponent {destination_component} is not a storage component"
        )
    if row.state != "ACTIVE":  # a component's state (storage/components.py)
        raise errors.InvalidRequest(
            f"jobParams.destinationComponent {destination_component} is {row.state}"
        )
    same = destination_component == component_id and destination_bucket == bucket
    if writes_into_source(same, params.prefix, params.destination_prefix):
        raise errors.InvalidRequest(
            "the destination is the source: copies would land among the keys being copied"
        )
    if params.replication_filter is not ReplicationFilter.FAILED:
        return None
    return await rerun_source(
        conn, component_id, bucket, params, destination_component, destination_bucket
    )


async def rerun_source(
    conn: AsyncConnection,
    component_id: int,
    bucket: str,
    params: ReplicateParams,
    destination_component: int,
    destination: str,
) -> int:
    """The job a FAILED re-run takes its keys from: the latest finished BATCH_REPLICATE of
    the same source bucket and prefix into the same destination (component, bucket and
    prefix). Another destination's failures say nothing about this one."""
    plan = jobs.c.plan["destination"]
    source = await conn.scalar(
        select(jobs.c.id)
        .where(
            jobs.c.component_id == component_id,
            jobs.c.bucket_name == bucket,
            jobs.c.job_type == JobType.BATCH_REPLICATE.value,
            jobs.c.state.in_([s.value for s in TERMINAL_STATES]),
            func.coalesce(jobs.c.params["prefix"].astext, "") == params.prefix,
            plan["component"].as_integer() == destination_component,
            plan["bucket"].astext == destination,
            func.coalesce(plan["prefix"].astext, "") == params.destination_prefix,
        )
        .order_by(jobs.c.completed_at.desc(), jobs.c.id.desc())
        .limit(1)
    )
    if source is None:
        raise errors.InvalidRequest(
            f"replicationFilter FAILED: bucket {bucket!r} has no finished BATCH_REPLICATE job"
            f" into bucket {destination!r} of component {destination_component} with the same"
            " prefix and destinationPrefix"
        )
    return int(source)
