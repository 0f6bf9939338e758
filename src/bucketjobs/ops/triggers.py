"""TRIGGER_RECONCILIATION: re-send event notifications for objects that already exist.

`prepare` reads the bucket's bindings (notification/bucket/set), keeps those whose events
include `eventName` (and, with `targets`, only those targets), and checks each target
answers, retrying with backoff: a job whose every target stays down fails naming them.
The plan carries the targets' ids, names and filters, never their configs (which hold
secrets), and whether to list versions (a versioned bucket's records carry `versionId`).
Each partition builds one S3 event record per current object in the
`modifiedAfter`/`modifiedBefore` window, and sends each target the records its binding's
prefix and suffix select, as one batch per target (engine/runtime.py keeps the target's
connection open across batches and jobs).

An object counts as `processed` when every target it was meant for took it, `failed` when
some target refused it after retries (a failure per object, naming the target), `skipped`
when it is outside the time window or no binding's filter selects it. A dry run builds
the records and counts, per target, what would be sent; it sends nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from bucketjobs.jobs.params import TriggerParams
from bucketjobs.notify.config import Binding
from bucketjobs.notify.records import Messages
from bucketjobs.notify.senders import NOT_SENT, Delivery, Sender
from bucketjobs.notify.service import TargetNotFound
from bucketjobs.ops.base import Completion, Delta, Failure, JobFailed, RunningJob
from bucketjobs.storage.lister import Entry
from bucketjobs.storage.retry import with_retries

DEFAULT_EVENT = "s3:ObjectCreated:Put"
PROBE_ATTEMPTS = 6  # tries of a target that does not answer at the start (~8 s in all)


def _params(job: RunningJob) -> TriggerParams:
    assert isinstance(job.params, TriggerParams)
    return job.params


def _event(job: RunningJob) -> str:
    return _params(job).event_name or DEFAULT_EVENT


def in_window(entry: Entry, params: TriggerParams) -> bool:
    """Whether the object's last-modified time is inside `modifiedAfter`/`modifiedBefore`
    (both exclusive, as their names say)."""
    modified = entry.last_modified
    if params.modified_after is not None and not modified > params.modified_after:
        return False
    return params.modified_before is None or modified < params.modified_before


async def _deliver(job: RunningJob, sender: Sender, messages: list[bytes]) -> list[Delivery]:
    """One batch to one target, in a task of its own holding one of the job's slots: a
    cancel that aborts it (or finds the job stopped) ends that task, not `act`, which then
    still counts what earlier batches delivered. What was cut off is NOT_SENT."""

    async def lane() -> list[Delivery]:
        async with job.slot():
            return await sender.send(messages, job.stopping)

    try:
        return await asyncio.create_task(lane())
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if me is not None and me.cancelling():
            raise  # `act` itself is being cancelled
        return [NOT_SENT] * len(messages)


async def _nothing_down() -> list[tuple[dict[str, Any], str]]:
    return []


class TriggerReconciliation:
    pure = False
    # The planner sends the pages it lists: a second listing per partition by a worker cost
    # more than spreading the sends saves (bench/triggers.py, 20,000 objects: Redis 17,100
    # → 24,600 events/s, NATS 9,100 → 10,900).
    inline = True
    partition_bytes: int | None = None

    def count_entry(self, entry: Entry) -> bool:
        return entry.is_latest and not entry.delete_marker

    async def prepare(self, job: RunningJob) -> dict[str, Any]:
        assert job.bindings is not None and job.sender is not None
        params = _params(job)
        event = _event(job)
        rows = await job.bindings(job.source.id, job.bucket)
        bound = {str(row.target_id): row for row in rows}
        if params.targets is not None:
            unbound = [t for t in params.targets if t not in bound]
            if unbound:
                raise JobFailed(
                    f"target(s) {', '.join(unbound)} are not bound to bucket {job.bucket}"
                    " (notification/bucket/set)"
                )
            bound = {t: bound[t] for t in params.targets}
        chosen = []
        for target_id, row in bound.items():
            binding = Binding(targetId=target_id, events=list(row.events), prefix=row.prefix,
                              suffix=row.suffix)  # fmt: skip
            if binding.wants(event):
                chosen.append(binding)
        if not chosen:
            raise JobFailed(
                f"no notification target bound to bucket {job.bucket} takes {event}"
                " (notification/bucket/set)"
            )
        targets = []
        for binding in chosen:
            try:
                target, _ = await job.sender(int(binding.targetId))
            except TargetNotFound:  # deleted since the bindings were read
                raise JobFailed(f"notification target {binding.targetId} was deleted") from None
            except ValueError as exc:  # a type with no sender (none can be created today)
                raise JobFailed(f"target {binding.targetId}: {exc}") from None
            targets.append({"id": binding.targetId, "name": target.name,
                            "type": target.type.value, "prefix": binding.prefix,
                            "suffix": binding.suffix})  # fmt: skip
        versioning, down = await asyncio.gather(
            with_retries(functools.partial(job.client.get_bucket_versioning, Bucket=job.bucket)),
            self._unreachable(job, targets) if not params.dry_run else _nothing_down(),
        )
        if len(down) == len(targets):
            raise JobFailed(
                "no notification target answered: "
                + "; ".join(f"{t['name']} ({t['id']}): {why}" for t, why in down)
            )
        # A versioned bucket's records name each object's current version (versionId):
        # the versions listing has it, ListObjectsV2 does not.
        versions = versioning.get("Status") in ("Enabled", "Suspended")
        return {"versions": versions, "eventName": event, "targets": targets}

    async def _unreachable(
        self, job: RunningJob, targets: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], str]]:
        """The targets that did not answer after PROBE_ATTEMPTS tries (all probed at once),
        with why."""
        assert job.sender is not None
        sender_of = job.sender

        async def why_not(target: dict[str, Any]) -> Delivery:
            _, sender = await sender_of(int(target["id"]))
            why: Delivery = None
            for n in range(PROBE_ATTEMPTS):
                why = await sender.probe()
                if why is None or job.stopping():
                    break
                await asyncio.sleep(min(4.0, 0.25 * 2**n))
            return why

        answers = await asyncio.gather(*(why_not(t) for t in targets))
        return [(t, why) for t, why in zip(targets, answers, strict=True) if why is not None]

    async def act(self, job: RunningJob, entries: Sequence[Entry], after: str | None) -> Delta:
        assert job.sender is not None
        params = _params(job)
        event = str(job.plan["eventName"])
        delta = Delta()
        listed = [e for e in entries if self.count_entry(e)]
        objects = [e for e in listed if in_window(e, params)]
        pending: dict[str, int] = {}  # key -> targets that have not taken it yet
        refusals: dict[str, list[str]] = {}  # key -> which targets refused it, and why
        for target in job.plan["targets"]:
            tid = str(target["id"])
            binding = Binding(targetId=tid, events=[event], prefix=target["prefix"],
                              suffix=target["suffix"])  # fmt: skip
            mine = [e for e in objects if binding.selects(e.key)]
            for entry in mine:
                pending[entry.key] = pending.get(entry.key, 0) + 1
            if params.dry_run or not mine:
                delta.partial[f"{tid}.delivered"] = len(mine)
                for entry in mine:
                    pending[entry.key] -= 1
                continue
            template = Messages(bucket=job.bucket, event_name=event, job_id=job.job_id,
                                configuration_id=f"bucketjobs-{tid}")  # fmt: skip
            messages = [template.render(e.key, e.size or 0, e.etag, e.version_id,
                                        e.last_modified) for e in mine]  # fmt: skip
            _, sender = await job.sender(int(tid))
            results = await _deliver(job, sender, messages)
            delivered = refused = 0
            for entry, why in zip(mine, results, strict=True):
                if why is None:
                    delivered += 1
                    pending[entry.key] -= 1
                elif why != NOT_SENT:
                    refused += 1
                    refusals.setdefault(entry.key, []).append(f"{target['name']} ({tid}): {why}")
            delta.partial[f"{tid}.delivered"] = delivered
            delta.partial[f"{tid}.failed"] = refused
        now = dt.datetime.now(dt.UTC)
        for key, reasons in refusals.items():
            delta.failures.append(
                Failure(key, None, "DeliveryFailed", None, "; ".join(reasons)[:1000], 1, now)
            )
        # Counted: taken by every target it was for, or refused by one; a cancel leaves
        # the objects it cut short uncounted (they were not handled).
        delta.failed = len(refusals)
        delta.processed = sum(1 for k, left in pending.items() if left == 0 and k not in refusals)
        delta.skipped = len(listed) - len(pending)
        return delta

    async def finish(self, job: RunningJob, totals: Mapping[str, int]) -> Completion:
        targets = {
            str(t["id"]): {
                "name": t["name"],
                "type": t["type"],
                "delivered": int(totals.get(f"{t['id']}.delivered", 0)),
                "failed": int(totals.get(f"{t['id']}.failed", 0)),
            }
            for t in job.plan["targets"]
        }
        result = {"eventName": job.plan["eventName"], "targets": targets,
                  "dryRun": _params(job).dry_run}  # fmt: skip
        return Completion(result)
