"""EXAMINING: prepare the job, then enumerate the bucket into key-range partitions.

The key space is split into shards (engine/shards.py), listed PLAN_LANES at a time. Each
listing is streamed and cut into partitions of about PARTITION_ENTRIES entries, or fewer
when an op's work grows with objects' sizes and the entries reach its `partition_bytes`
(copies: a partition is the unit of progress and of repeated work after a crash). Cut
partitions are written every FLUSH_SECONDS, each batch with its tasks and its shards'
cursors in one transaction, so a restart resumes every shard after the last partition
written and never plans a key twice or skips one.

For an inline operation (one whose work needs only the listed entries: counting, deleting)
the planner acts on the pages it just listed and commits the partition as done, with its
counters, failures and dry-run sample, in that same transaction: the job then costs one
listing instead of two. A partition task is queued instead when the worker runs with
`inline=False`, which spreads even those jobs over every worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from bucketjobs.engine import progress, queue
from bucketjobs.engine.finisher import finish_job
from bucketjobs.engine.runtime import WorkerRuntime
from bucketjobs.engine.shards import Shard, discover
from bucketjobs.engine.step import Step, load_step
from bucketjobs.ops.base import JobFailed
from bucketjobs.storage.listing import Entry, OrderError, Scope
from bucketjobs.storage.retry import StorageError

PARTITION_ENTRIES = 1000


def split_at_key_boundary(entries: list[Entry]) -> int:
    """Index where the entries of the last key begin: a cut never splits one key's versions."""
    last = entries[-1].key
    index = len(entries)
    while index > 0 and entries[index - 1].key == last:
        index -= 1
    return index


def partition_end(
    entries: list[Entry], max_entries: int | None, max_bytes: int | None
) -> int | None:
    """Where the first partition of the listed-but-unplanned `entries` ends, or None to
    wait for more: after the first key at which their sizes reach `max_bytes`, else before
    the last key once there are `max_entries` (None: no such rule). Never inside one key's
    versions, and never after the last entry: its key's versions may go on in the next page."""
    if max_bytes is not None:
        total = 0
        for index, entry in enumerate(entries):
            total += entry.size or 0  # a re-run of failed keys knows no sizes
            if total >= max_bytes:
                end = index + 1
                while end < len(entries) and entries[end].key == entry.key:
                    end += 1
                if end < len(entries):
                    return end
                break
    if max_entries is not None and len(entries) >= max_entries:
        return split_at_key_boundary(entries) or None
    return None


async def plan(
    runtime: WorkerRuntime, job_id: int, partition_entries: int = PARTITION_ENTRIES
) -> None:
    async with runtime.db.connect() as conn:
        job = await progress.load_job(conn, job_id)
    if job is None or job.state not in progress.ACTIVE or job.enum_done:
        return
    step = await load_step(runtime, job)
    listed: dict[int, tuple[Entry, ...]] = {}
    open_shards = None
    try:
        if job.plan is None:
            prepared, shards = await _prepare_and_discover(step)
            async with runtime.db.begin() as conn:
                job = await progress.set_plan(conn, runtime.clock, job_id, prepared)
                if job is None:
                    return
                await progress.add_shards(conn, job_id, shards)
                open_shards = await progress.open_shards(conn, job_id)
            step = await load_step(runtime, job)
            listed = {n: shard.listed for n, shard in enumerate(shards) if shard.listed}
        await _Enumeration(runtime, step, partition_entries, listed).run(open_shards)
    except (JobFailed, OrderError) as exc:
        await progress.fail_job(runtime.db, runtime.clock, job_id, str(exc))
    except StorageError as exc:
        message = f"listing bucket {job.bucket_name!r} failed: {exc}"
        await progress.fail_job(runtime.db, runtime.clock, job_id, message)


FLUSH_SECONDS = 0.25  # planned partitions are written at most this long after they are cut
PLAN_LANES = 16  # shards listed at the same time by one planner


async def _prepare_and_discover(step: Step) -> tuple[dict[str, Any], list[Shard]]:
    """The op's plan and the job's shards. Shards are chosen for a plain listing while the
    op prepares, as most buckets are listed without versions; the choice is made again if
    the plan says to list versions."""
    guess = asyncio.create_task(_shards(step, versions=False))
    try:
        prepared = await step.op.prepare(step.job)
    except BaseException:
        await _discard(guess)
        raise
    if not prepared.get("versions", True):
        return prepared, await guess
    await _discard(guess)
    return prepared, await _shards(step, versions=True)


async def _discard(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end, whatever it ends with (this task's own
    cancellation still propagates)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: its failure is moot


async def _shards(step: Step, versions: bool) -> list[Shard]:
    """The job's shards; a re-run of failed keys reads them from the database, unsplit."""
    prefix = step.job.params.prefix
    if step.job.source_job_id is not None:
        return [Shard(Scope(prefix))]
    source = step.job.source
    return await discover(
        source.lister, step.job.bucket, versions=versions, prefix=prefix, order=source.order
    )


async def _no_pages() -> AsyncIterator[list[Entry]]:
    return
    yield


def _first_error(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class _Enumeration:
    """One planner run over the job's open shards: listed side by side, cut into
    partitions each on its own, written together in batches."""

    def __init__(
        self,
        runtime: WorkerRuntime,
        step: Step,
        partition_entries: int,
        listed: dict[int, tuple[Entry, ...]],
    ) -> None:
        self.runtime = runtime
        self.listed = listed  # shards' first entries, read while choosing the shards
        self.step = step
        self.job_id: int = step.job.job_id
        self.op = step.op
        self.inline = runtime.inline and self.op.inline
        self.limits = runtime.limits(self.job_id, step.job.params)
        self.partition_entries = partition_entries
        self.seq: int = step.row.partitions_planned
        self.cut: list[progress.Planned] = []  # partitions not yet written
        self.finished: set[int] = set()  # shards listed to their end, not yet written
        self.flushed_at = 0.0
        self.writing = asyncio.Lock()
        self.stopped = False
        self.complete = False  # enumerated, and every partition done

    async def run(self, shards: list[Any] | None = None) -> None:
        """List the job's open shards (read here unless the caller just wrote them)."""
        if shards is None:
            async with self.runtime.db.connect() as conn:
                shards = await progress.open_shards(conn, self.job_id)
        remaining = iter(shards)
        lanes = min(PLAN_LANES, self.step.job.params.max_concurrency or PLAN_LANES)

        async def lane() -> None:
            for shard in remaining:
                if self.stopped:
                    return
                await self._shard(shard)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(lanes, len(shards))):
                    group.create_task(lane())
        except BaseExceptionGroup as errors:
            raise _first_error(errors) from None
        # Written even when the job was cancelled: partitions acted on inline count.
        if await self.flush(last=True) and self.complete and self.inline:
            # Every partition is done here and now: finish without a round trip through the
            # queue (a crash before the end leaves it to the recovery sweep).
            await finish_job(self.runtime, self.job_id)

    async def _shard(self, shard: Any) -> None:
        """Cut one shard's listing into partitions, acting on them when inline."""
        scope = Scope(shard.prefix, shard.delimited)
        running = replace(self.step.job, scope=scope)
        cursor: str | None = shard.cursor
        pending = list(self.listed.pop(shard.shard, ()))  # listed, not yet in a partition
        if pending and self.inline:
            await self.limits.operations(len(pending))
            if self._halted():  # cancelled while waiting for its turn under rateLimit
                return

        async def add(last_key: str | None, next_key: str | None, part: list[Entry]) -> None:
            nonlocal cursor
            selected = sum(1 for e in part if self.op.count_entry(e))
            delta = await self.op.act(running, part, cursor) if self.inline else None
            self.cut.append(
                progress.Planned(
                    shard.shard, scope, cursor, last_key, next_key, len(part), selected, delta
                )
            )
            cursor = last_key

        async def take_partitions(*, by_count: bool) -> None:
            """Plan the partitions that `pending` holds whole (by count only while more
            pages follow: the shard's last partition takes what is left)."""
            nonlocal pending
            entries = self.partition_entries if by_count else None
            while end := partition_end(pending, entries, self.op.partition_bytes):
                await add(pending[end - 1].key, pending[end].key, pending[:end])
                pending = pending[end:]

        start = pending[-1].key if pending else cursor
        if start is not None and start == shard.last_key and not self.step.versions:
            pages = _no_pages()  # one entry per key: the shard's last key is listed already
        else:
            pages = self.step.pages(scope, start, shard.last_key, check_order=True)
        async for page in pages:
            if self.inline:
                await self.limits.operations(len(page))
            if self._halted():
                return
            pending.extend(page)
            await take_partitions(by_count=True)
            due = time.monotonic() - self.flushed_at >= FLUSH_SECONDS
            if self.cut and due and not self.writing.locked():  # else a flush is under way
                await self.flush()
        await take_partitions(by_count=False)
        if pending:  # the shard's last partition ends where the shard does
            await add(shard.last_key, None, pending)
        self.finished.add(shard.shard)

    def _halted(self) -> bool:
        """Whether the job was cancelled (every lane then stops cutting)."""
        self.stopped = self.stopped or self.runtime.stopping(self.job_id)
        return self.stopped

    async def flush(self, last: bool = False) -> bool:
        """Write the cut partitions (done, or with their tasks) and finished shards in one
        transaction; False (and every lane stops) if the job has ended or been cancelled.
        The `last` flush, after every lane ended, also marks the enumeration done (unless
        the job was cancelled) and sets `complete` when no partition is left to run.

        A cancelled job still takes what was cut: the partitions acted on inline are work
        done, and its counters must show it."""
        async with self.writing:
            cut, finished = list(self.cut), set(self.finished)  # lanes go on cutting meanwhile
            if not cut and not finished and not last:
                return not self.stopped
            runtime, job_id = self.runtime, self.job_id
            enumerated = last and not self.stopped
            async with runtime.db.begin() as conn:
                after = await progress.add_partitions(
                    conn, runtime.clock, job_id, self.seq, cut, finished, runtime.worker_name,
                    enumerated=enumerated,
                )  # fmt: skip
                active = after is not None and after.state in progress.ACTIVE
                threshold = self.step.job.params.failure_threshold
                if active and self.inline:  # inline partitions count their failures here
                    failed = await progress.fail_if_past_threshold(
                        conn, runtime.clock, job_id, after, threshold
                    )
                    active = not failed
                if active and not self.inline:
                    seqs = range(self.seq, self.seq + len(cut))
                    await queue.enqueue_partitions(conn, job_id, seqs)
                self.complete = (
                    active and enumerated and after.partitions_done == after.partitions_planned
                )
                if self.complete and not self.inline:
                    await queue.enqueue_finish(conn, job_id)
            if after is not None:
                del self.cut[: len(cut)]
                self.finished -= finished
                self.seq += len(cut)
                self.flushed_at = time.monotonic()
            if not active:
                self.stopped = True
            return active
