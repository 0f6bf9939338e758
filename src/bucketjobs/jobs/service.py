"""Create, list, read and cancel jobs: the rules of SPEC §3 over the database.

Every state change here is committed before the caller answers, and the job row, its
planning task and (on cancel) the broadcast to workers commit in one transaction.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bucketjobs.auth import grants
from bucketjobs.auth import permissions as perm
from bucketjobs.auth.access import SOURCE_ACCESS, Access
from bucketjobs.auth.caller import Caller
from bucketjobs.clock import Clock
from bucketjobs.db.models import idempotency_keys, job_affected, job_failures, jobs
from bucketjobs.db.session import read
from bucketjobs.engine import queue
from bucketjobs.jobs import errors, replication
from bucketjobs.jobs.model import ACTIVE_STATES, INT32_MAX, INT32_MIN, JobState, JobType
from bucketjobs.jobs.pages import BadPageToken, PageTokens
from bucketjobs.jobs.params import ParamError, ReplicateParams, accept, valid_bucket_name

IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class ListQuery:
    bucket_name: str | None = None
    user_id: int | None = None
    job_type: JobType | None = None
    job_states: tuple[JobState, ...] | None = None
    page_size: int = 100
    page_token: str | None = None


class SourceStore(replication.ReplicationSource, Protocol):
    """What creating a job asks of the primary store."""

    async def bucket_exists(self, bucket: str) -> bool: ...


def check_job_id(job_id: int) -> int:
    if not INT32_MIN <= job_id <= INT32_MAX or job_id == 0:
        raise errors.InvalidRequest("jobId.id must be a non-zero signed 32-bit integer")
    return job_id


async def _require(
    conn: AsyncConnection, caller: Caller, wanted: list[tuple[int, str, Access]]
) -> None:
    missing = await grants.reaches(conn, caller, wanted)
    if missing is not None:
        component_id, bucket, needed = missing
        raise errors.Forbidden(
            f"no {needed.value} access to bucket {bucket!r} on component {component_id}",
            "ask an administrator for a grant (bucketjobs users grant)",
        )


_JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("id"))  # built once: jobs/status


class JobService:
    def __init__(
        self,
        db: AsyncEngine,
        reads: AsyncEngine,
        pages: PageTokens,
        clock: Clock,
        supported: frozenset[JobType],
    ) -> None:
        self.db = db
        self.reads = reads  # status and list are one read each (db/session.create_read_engine)
        self.pages = pages
        self.clock = clock
        self.supported = supported

    # -- create ---------------------------------------------------------------------------

    async def create(
        self,
        caller: Caller,
        job_type: str,
        bucket_name: str,
        job_params: Mapping[str, object] | None,
        *,
        component_id: int,
        storage: SourceStore,
        idempotency_key: str | None = None,
    ) -> Any:
        try:
            kind = JobType(job_type)
        except ValueError:
            known = ", ".join(t.value for t in JobType)
            raise errors.InvalidRequest(
                f"unknown jobType {job_type[:64]!r}", f"one of {known}"
            ) from None
        if kind not in self.supported:
            raise errors.InvalidRequest(f"jobType {kind.value} is not supported by this server yet")
        if not valid_bucket_name(bucket_name):
            raise errors.InvalidRequest(
                f"bucketName {bucket_name[:64]!r} is not a valid S3 bucket name"
            )
        try:
            params, typed = accept(kind, job_params)
        except ParamError as exc:
            raise errors.InvalidRequest(str(exc)) from None
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
            raise errors.InvalidRequest("Idempotency-Key must be 1 to 255 characters")

        async with self.db.begin() as conn:
            if idempotency_key is not None:
                earlier = await self._idempotent_job(conn, caller.user_id, idempotency_key)
                if earlier is not None:
                    return earlier
            # Access first, before any storage request: a 403 says nothing about existence.
            wanted = [(component_id, bucket_name, SOURCE_ACCESS[kind])]
            if isinstance(typed, ReplicateParams) and typed.destination_bucket is not None:
                wanted.append(
                    (typed.destination_component or component_id, typed.destination_bucket,
                     Access.WRITE)
                )  # fmt: skip
            await _require(conn, caller, wanted)
            if not await storage.bucket_exists(bucket_name):
                raise errors.NoSuchBucket(f"bucket {bucket_name!r} does not exist")
            source_job_id = None
            if isinstance(typed, ReplicateParams):
                destination = await replication.destination_of(
                    storage, component_id, bucket_name, typed
                )
                await _require(conn, caller, [(*destination, Access.WRITE)])
                source_job_id = await replication.check(
                    conn, component_id, bucket_name, typed, destination
                )
            row = await self._insert(
                conn, caller, kind, bucket_name, params, component_id, source_job_id
            )
            await queue.enqueue(conn, queue.PLAN_TASK, {"job_id": row.id}, lock=f"plan-{row.id}")
            if idempotency_key is not None:
                await conn.execute(
                    insert(idempotency_keys).values(
                        user_id=caller.user_id,
                        key=idempotency_key,
                        job_id=row.id,
                        created_at=row.created_at,
                    )
                )
            return row

    async def _idempotent_job(self, conn: AsyncConnection, user_id: int, key: str) -> Any:
        # Serialise creators using the same key so exactly one job is created.
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, :u))"), {"k": key, "u": user_id}
        )
        match = and_(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        found = (await conn.execute(select(idempotency_keys).where(match))).first()
        if found is None:
            return None
        if found.created_at > self.clock.now() - IDEMPOTENCY_WINDOW:
            return (await conn.execute(select(jobs).where(jobs.c.id == found.job_id))).first()
        await conn.execute(delete(idempotency_keys).where(match))
        return None

    async def _insert(
        self,
        conn: AsyncConnection,
        caller: Caller,
        kind: JobType,
        bucket_name: str,
        params: dict[str, str],
        component_id: int,
        source_job_id: int | None,
    ) -> Any:
        now = self.clock.now()
        for _ in range(16):
            job_id = 0
            while job_id == 0:
                job_id = random.randint(INT32_MIN, INT32_MAX)
            row = (
                await conn.execute(
                    insert(jobs)
                    .values(
                        id=job_id,
                        user_id=caller.user_id,
                        job_type=kind.value,
                        bucket_name=bucket_name,
                        component_id=component_id,
                        state=JobState.EXAMINING.value,
                        params=params,
                        source_job_id=source_job_id,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(jobs)
                )
            ).first()
            if row is not None:
                return row
            active = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.user_id).where(
                        jobs.c.component_id == component_id,
                        jobs.c.bucket_name == bucket_name,
                        jobs.c.job_type == kind.value,
                        jobs.c.state.in_([s.value for s in ACTIVE_STATES]),
                    )
                )
            ).first()
            if active is not None:
                # The id only to callers who may read that job (SPEC §2).
                visible = active.user_id == caller.user_id or caller.can(perm.JOBS_ADMIN_LIST)
                raise errors.JobAlreadyActive(
                    f"a {kind.value} job is already active on bucket {bucket_name!r}",
                    f"jobId {active.id}" if visible else "",
                )
        raise RuntimeError("could not allocate a job id")  # 16 collisions in 2^32: never

    # -- read -----------------------------------------------------------------------------

    async def _visible(self, conn: AsyncConnection, caller: Caller, job_id: int) -> Any:
        row = (await conn.execute(_JOB_BY_ID, {"id": check_job_id(job_id)})).first()
        if row is None or (row.user_id != caller.user_id and not caller.can(perm.JOBS_ADMIN_LIST)):
            raise errors.JobNotFound(f"job {job_id} not found")
        return row

    async def status(self, caller: Caller, job_id: int) -> Any:
        return await read(self.reads, lambda conn: self._visible(conn, caller, job_id))

    async def row(self, job_id: int) -> Any:
        """A job's row with no access check: for streams whose callers were checked when
        they subscribed (api/job_feed.py). None if it is gone."""
        return await read(self.reads, lambda conn: _first(conn.execute(_JOB_BY_ID, {"id": job_id})))

    async def list(self, caller: Caller, query: ListQuery) -> tuple[Sequence[Any], str | None]:
        user_id = query.user_id
        if not caller.can(perm.JOBS_ADMIN_LIST):
            if user_id is not None and user_id != caller.user_id:
                raise errors.Forbidden("listing another user's jobs needs mapi:jobs:admin_list")
            user_id = caller.user_id
        if not 1 <= query.page_size <= 1000:
            raise errors.InvalidRequest("pageSize must be between 1 and 1000")
        filters: dict[str, Any] = {
            "bucketName": query.bucket_name,
            "userId": user_id,
            "jobType": query.job_type.value if query.job_type else None,
            "jobStates": sorted(s.value for s in query.job_states) if query.job_states else None,
        }
        stmt = select(jobs)
        if user_id is not None:
            stmt = stmt.where(jobs.c.user_id == user_id)
        if query.bucket_name is not None:
            stmt = stmt.where(jobs.c.bucket_name == query.bucket_name)
        if query.job_type is not None:
            stmt = stmt.where(jobs.c.job_type == query.job_type.value)
        if query.job_states:
            stmt = stmt.where(jobs.c.state.in_(filters["jobStates"]))
        if query.page_token:
            try:
                created_raw, last_id = self.pages.decode(query.page_token, filters)
                created = dt.datetime.fromisoformat(created_raw)
            except (BadPageToken, ValueError, TypeError) as exc:
                raise errors.InvalidRequest(str(exc) or "pageToken is invalid") from None
            stmt = stmt.where(tuple_(jobs.c.created_at, jobs.c.id) < tuple_(created, last_id))
        stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(query.page_size + 1)

        async def page(conn: AsyncConnection) -> Sequence[Any]:
            return (await conn.execute(stmt)).fetchall()

        rows = await read(self.reads, page)
        token = None
        if len(rows) > query.page_size:
            rows = rows[: query.page_size]
            token = self.pages.encode((rows[-1].created_at, rows[-1].id), filters)
        return rows, token

    async def failures(
        self, caller: Caller, job_id: int, page_size: int, page_token: str | None
    ) -> tuple[Sequence[Any], str | None]:
        """The job's permanent failures in the order they were recorded, a page at a time."""
        return await self._job_rows(
            caller, job_id, page_size, page_token, "failuresOf",
            select(job_failures).where(job_failures.c.job_id == job_id),
            {"id": job_failures.c.id},
        )  # fmt: skip

    async def affected(
        self, caller: Caller, job_id: int, page_size: int, page_token: str | None
    ) -> tuple[Sequence[Any], str | None]:
        """What the job (a dry run) would act on: its first objects in key order, a page
        at a time."""
        order = {name: job_affected.c[name].collate("C") for name in ("key", "version_id")}
        return await self._job_rows(
            caller, job_id, page_size, page_token, "affectedOf",
            select(job_affected).where(job_affected.c.job_id == job_id), order,
        )  # fmt: skip

    async def _job_rows(
        self,
        caller: Caller,
        job_id: int,
        page_size: int,
        page_token: str | None,
        kind: str,
        stmt: Any,
        order: Mapping[str, Any],
    ) -> tuple[Sequence[Any], str | None]:
        """A keyset page of one visible job's rows in `order` (row attribute → the
        expression to sort by; text or integer values); the token carries the last row's."""
        if not 1 <= page_size <= 1000:
            raise errors.InvalidRequest("pageSize must be between 1 and 1000")
        filters = {kind: job_id}
        if page_token:
            try:
                last = self.pages.decode(page_token, filters)
                if len(last) != len(order) or not all(isinstance(v, str | int) for v in last):
                    raise ValueError("pageToken is invalid")
            except (BadPageToken, ValueError, TypeError) as exc:
                raise errors.InvalidRequest(str(exc) or "pageToken is invalid") from None
            stmt = stmt.where(tuple_(*order.values()) > tuple_(*last))
        stmt = stmt.order_by(*order.values()).limit(page_size + 1)
        async with self.db.connect() as conn:
            await self._visible(conn, caller, job_id)
            rows = (await conn.execute(stmt)).fetchall()
        token = None
        if len(rows) > page_size:
            rows = rows[:page_size]
            token = self.pages.encode(tuple(getattr(rows[-1], n) for n in order), filters)
        return rows, token

    # -- cancel ---------------------------------------------------------------------------

    async def cancel(self, caller: Caller, job_id: int) -> Any:
        async with self.db.begin() as conn:
            row = await self._visible(conn, caller, job_id)
            own = row.user_id == caller.user_id
            if not (caller.can(perm.JOBS_ADMIN_CANCEL) or (own and caller.can(perm.JOBS_CANCEL))):
                if not own:
                    raise errors.JobNotFound(f"job {job_id} not found")
                raise errors.Forbidden("cancelling jobs needs mapi:jobs:cancel")
            now = self.clock.now()
            cancelled = (
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.state.in_([s.value for s in ACTIVE_STATES]))
                    .values(
                        state=JobState.CANCELLED.value,
                        completed_at=now,
                        updated_at=now,
                        message=f"cancelled by {caller.username}",
                    )
                    .returning(jobs)
                )
            ).first()
            if cancelled is not None:
                await queue.drop_queued(conn, row.id)
                await queue.notify_cancel(conn, row.id)
                return cancelled
            current = (await conn.execute(select(jobs).where(jobs.c.id == row.id))).one()
            if current.state == JobState.CANCELLED.value:
                return current
            raise errors.JobNotCancellable(
                f"job {job_id} is {current.state} and cannot be cancelled"
            )


async def _first(result: Awaitable[Any]) -> Any:
    return (await result).first()
