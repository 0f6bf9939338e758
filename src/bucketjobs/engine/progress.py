"""Durable job transitions and counter updates. Every write is conditional on the job being
still active, so a finished job never changes again; the one exception is the counters of
work a cancel cut short, which a CANCELLED job still takes (SPEC §3: after a cancel,
`jobStats` count exactly the operations the job completed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bucketjobs.clock import Clock
from bucketjobs.db.models import job_affected, job_failures, job_partitions, job_shards, jobs
from bucketjobs.engine.shards import Shard
from bucketjobs.jobs.model import ACTIVE_STATES, JobState, states_before
from bucketjobs.ops.base import AFFECTED_SAMPLE, Affected, Delta
from bucketjobs.storage.listing import Scope

ACTIVE = [s.value for s in ACTIVE_STATES]
COUNTING = [*ACTIVE, JobState.CANCELLED.value]  # states whose counters may still grow


class JobEnded(Exception):
    """The job reached a terminal state meanwhile; the caller's transaction must not commit."""


async def load_job(conn: AsyncConnection, job_id: int) -> Any:
    return (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()


async def advance(conn: AsyncConnection, clock: Clock, job_id: int, target: JobState) -> bool:
    """Move forward to a non-terminal `target` if the job is before it; True if moved."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state.in_([s.value for s in states_before(target)]))
        .values(state=target.value, updated_at=clock.now())
    )
    return bool(result.rowcount)


async def finish(
    conn: AsyncConnection,
    clock: Clock,
    job_id: int,
    state: JobState,
    *,
    message: str | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """Terminal transition (COMPLETE / FAILED); False if the job had already ended."""
    now = clock.now()
    values: dict[str, Any] = {"state": state.value, "updated_at": now, "completed_at": now}
    if message is not None:
        values["message"] = message
    if result is not None:
        values["result"] = result
    done = await conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE)).values(values)
    )
    return bool(done.rowcount)


@dataclass
class Planned:
    """A partition the planner has cut: its shard and listing, its key range
    `(start_after, last_key]` in it, the first key after it, its size, and — when the
    planner acted on it itself — its counters."""

    shard: int
    scope: Scope
    start_after: str | None
    last_key: str | None
    next_key: str | None
    entries: int
    selected: int
    delta: Delta | None = None


async def fail_job(db: AsyncEngine, clock: Clock, job_id: int, message: str) -> None:
    """End an active job as FAILED with `message`, in a transaction of its own."""
    async with db.begin() as conn:
        await finish(conn, clock, job_id, JobState.FAILED, message=message)


async def add_shards(conn: AsyncConnection, job_id: int, shards: list[Shard]) -> None:
    await conn.execute(
        job_shards.insert(),
        [
            {
                "job_id": job_id,
                "shard": n,
                "prefix": s.scope.prefix,
                "delimited": s.scope.delimited,
                "cursor": s.start_after,
                "last_key": s.last_key,
            }
            for n, s in enumerate(shards)
        ],
    )


async def open_shards(conn: AsyncConnection, job_id: int) -> list[Any]:
    """The job's shards not yet enumerated to their end, in order."""
    query = select(job_shards).where(job_shards.c.job_id == job_id, job_shards.c.done.is_(False))
    return list(await conn.execute(query.order_by(job_shards.c.shard)))


# What a planner's write answers: enough to tell whether to go on, finish or fail.
_AFTER_PLANNING = (
    jobs.c.state, jobs.c.partitions_done, jobs.c.partitions_planned, jobs.c.processed,
    jobs.c.failed,
)  # fmt: skip


async def add_partitions(
    conn: AsyncConnection,
    clock: Clock,
    job_id: int,
    first_seq: int,
    parts: list[Planned],
    finished: set[int],
    worker: str,
    *,
    enumerated: bool = False,
) -> Any:
    """Record planned partitions (done ones with their counters, failures and dry-run
    samples), move their shards' cursors past them, mark the `finished` shards done and,
    when `enumerated`, the enumeration; returns the job's state and partition counts
    after, None if the job has ended meanwhile. `first_seq` must be the job's partition
    count: one planner writes at a time.

    A CANCELLED job still takes the partitions its planner acted on before it heard of the
    cancel (the state it returns says so); a COMPLETE or FAILED one takes nothing."""
    done = [p.delta for p in parts if p.delta is not None]
    target = JobState.EXECUTING if done else JobState.PROCESSING
    moved = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id, jobs.c.state.in_(COUNTING), jobs.c.partitions_planned == first_seq
        )
        .values(
            partitions_planned=first_seq + len(parts),
            enum_done=case((jobs.c.state.in_(ACTIVE), enumerated), else_=False) | jobs.c.enum_done,
            partitions_done=jobs.c.partitions_done + len(done),
            total=jobs.c.total + sum(p.selected for p in parts),
            processed=jobs.c.processed + sum(d.processed for d in done),
            failed=jobs.c.failed + sum(d.failed for d in done),
            skipped=jobs.c.skipped + sum(d.skipped for d in done),
            bytes=jobs.c.bytes + sum(d.bytes for d in done),
            updated_at=clock.now(),
            state=case(
                (jobs.c.state.in_([s.value for s in states_before(target)]), target.value),
                else_=jobs.c.state,
            ),
        )
        .returning(*_AFTER_PLANNING)
    )
    after = moved.first()
    if after is None:
        return None
    cursors = {p.shard: p.last_key for p in parts}
    if cursors or finished:
        await conn.execute(
            update(job_shards)
            .where(job_shards.c.job_id == job_id, job_shards.c.shard == bindparam("n"))
            .values(cursor=bindparam("c"), done=bindparam("d")),
            [{"n": n, "c": cursors.get(n), "d": n in finished} for n in cursors.keys() | finished],
        )
    if parts:
        await conn.execute(
            job_partitions.insert(),
            [
                {
                    "job_id": job_id,
                    "seq": first_seq + n,
                    "prefix": p.scope.prefix,
                    "delimited": p.scope.delimited,
                    "start_after": p.start_after,
                    "last_key": p.last_key,
                    "next_key": p.next_key,
                    "entries": p.entries,
                    "done": p.delta is not None,
                    "done_by": worker if p.delta is not None else None,
                    "result": p.delta.partial if p.delta is not None else None,
                }
                for n, p in enumerate(parts)
            ],
        )
    await _record(conn, job_id, done)
    return after


async def commit_partition(
    conn: AsyncConnection, clock: Clock, job_id: int, seq: int, delta: Delta, worker: str
) -> Any:
    """Mark a partition done and add its counters and failures, exactly once. Returns the
    job row after, None if the partition was already done; raises JobEnded if the job has
    ended COMPLETE or FAILED (a CANCELLED job still counts what its partitions did)."""
    marked = await conn.execute(
        update(job_partitions)
        .where(
            and_(job_partitions.c.job_id == job_id, job_partitions.c.seq == seq),
            job_partitions.c.done.is_(False),
        )
        .values(done=True, result=delta.partial, done_by=worker)
    )
    if not marked.rowcount:
        return None
    row = await add_counts(conn, clock, job_id, delta, partitions=1)
    if row is None:
        raise JobEnded(job_id)  # roll the partition mark back with the transaction
    return row


async def add_counts(
    conn: AsyncConnection, clock: Clock, job_id: int, delta: Delta, *, partitions: int = 0
) -> Any:
    """Add `delta`'s counters and failures (and `partitions` done) to a job that may still
    count; returns the job row after, None (nothing added) if it has ended."""
    row = (
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_(COUNTING))
            .values(
                processed=jobs.c.processed + delta.processed,
                failed=jobs.c.failed + delta.failed,
                skipped=jobs.c.skipped + delta.skipped,
                bytes=jobs.c.bytes + delta.bytes,
                partitions_done=jobs.c.partitions_done + partitions,
                updated_at=clock.now(),
            )
            .returning(jobs)
        )
    ).first()
    if row is not None:
        await _record(conn, job_id, [delta])
    return row


async def _record(conn: AsyncConnection, job_id: int, deltas: list[Delta]) -> None:
    """The objects `deltas` failed on (for `jobs/failures`) and a dry run's sample of what
    they would act on (for `jobs/affected`)."""
    failures = [f for d in deltas for f in d.failures]
    if failures:
        await conn.execute(
            job_failures.insert(),
            [
                {
                    "job_id": job_id,
                    "key": f.key,
                    "version_id": f.version_id,
                    "error_code": f.error_code,
                    "http_status": f.http_status,
                    "message": f.message[:1000],
                    "attempts": f.attempts,
                    "time": f.time,
                }
                for f in failures
            ],
        )
    affected = [a for d in deltas for a in d.affected]
    if affected:
        await _keep_affected(conn, job_id, affected)


_TRIM_AFFECTED = text(
    'DELETE FROM job_affected WHERE job_id = :job_id AND (key COLLATE "C", version_id COLLATE "C")'
    ' > (SELECT key COLLATE "C", version_id COLLATE "C" FROM job_affected WHERE job_id = :job_id'
    "    ORDER BY 1, 2 OFFSET :keep - 1 LIMIT 1)"
)


async def _keep_affected(conn: AsyncConnection, job_id: int, affected: list[Affected]) -> None:
    """Add a dry run's affected objects, then keep only the job's first AFFECTED_SAMPLE in
    key order (partitions commit in any order: the set is trimmed at each commit)."""
    first = sorted(affected, key=lambda a: (a.key, a.version_id or ""))[:AFFECTED_SAMPLE]
    rows = [
        {"job_id": job_id, "key": a.key, "version_id": a.version_id or "", "action": a.action,
         "rule": a.rule, "size": a.size}
        for a in first
    ]  # fmt: skip
    await conn.execute(insert(job_affected).on_conflict_do_nothing(), rows)
    await conn.execute(_TRIM_AFFECTED, {"job_id": job_id, "keep": AFFECTED_SAMPLE})


async def fail_if_past_threshold(
    conn: AsyncConnection, clock: Clock, job_id: int, after: Any, threshold: float
) -> bool:
    """End the job FAILED if more than `threshold` % of what it attempted failed (judged
    mid-run, from 1,000 attempts); True if it did."""
    if not threshold_crossed(after, threshold, final=False):
        return False
    attempted = after.processed + after.failed
    message = (
        f"{after.failed} of {attempted} objects failed, more than the failureThreshold"
        f" of {threshold:g}%"
    )
    return await finish(conn, clock, job_id, JobState.FAILED, message=message)


def threshold_crossed(row: Any, threshold: float, *, final: bool) -> bool:
    """SPEC §4: more than `threshold` % of attempted objects failed, judged once 1,000 were
    attempted, or at the end when fewer were selected."""
    attempted = int(row.processed) + int(row.failed)
    if attempted == 0 or (attempted < 1000 and not final):
        return False
    return int(row.failed) * 100 > threshold * attempted


async def set_plan(conn: AsyncConnection, clock: Clock, job_id: int, plan: dict[str, Any]) -> Any:
    """Store what preparation found; returns the job row after, or None if the job has
    ended meanwhile (or another planner prepared it first)."""
    return (
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE), jobs.c.plan.is_(None))
            .values(plan=plan, updated_at=clock.now())
            .returning(jobs)
        )
    ).first()
