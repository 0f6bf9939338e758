"""LIFECYCLE_UPDATE: apply a bucket's lifecycle rules to its existing objects, now.

`prepare` settles, once for every worker, what the job applies: the rules (the job's
`lifecycleConfiguration`, else the bucket's own), the instant they are evaluated at, and
whether to list versions (the bucket is or was versioned). It also aborts the incomplete
multipart uploads the rules say are due: they are not in any listing, and there are few.

Each partition's keys are then evaluated by the pure rules (jobs/lifecycle.py), with an
object's tags read only when a tag filter decides something for it, and what is due is
deleted in DeleteObjects batches: a current version by key (S3 writes a delete marker where
the bucket is versioned), anything else by version id. A dry run does all but the deletes.

Counters: `processed` counts versions (and uploads) acted on, `skipped` those examined and
left, `bytes` the bytes deleted. The result carries each action's totals and, per rule, the
count and bytes each of its actions took: a preview of a policy reads rule by rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bucketjobs.jobs.lifecycle import (
    Action,
    Decision,
    LifecycleError,
    Rule,
    abort_due,
    evaluate_key,
    parse_configuration,
    tags_needed,
)
from bucketjobs.jobs.params import LifecycleParams
from bucketjobs.ops.base import (
    AFFECTED_SAMPLE,
    Affected,
    Completion,
    Delta,
    Failure,
    JobFailed,
    RunningJob,
)
from bucketjobs.storage.deletes import Target, delete_batch
from bucketjobs.storage.lister import Entry
from bucketjobs.storage.listing import iter_uploads
from bucketjobs.storage.retry import StorageError, with_retries
from bucketjobs.storage.tagging import read_tags

TAG_LANES = 16  # tag reads in flight per partition
# Targets per DeleteObjects request (S3 takes up to 1,000). Measured (bench/lifecycle.py):
# a partition's deletes as 4 requests of 250 at once beat one of 1,000 (or 2 of 500).
DELETE_BATCH = 250


def _params(job: RunningJob) -> LifecycleParams:
    assert isinstance(job.params, LifecycleParams)
    return job.params


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


async def bucket_configuration(client: Any, bucket: str) -> dict[str, Any] | None:
    """The bucket's own lifecycle configuration in S3's JSON form, or None if it has none."""
    try:
        answer = await with_retries(
            functools.partial(client.get_bucket_lifecycle_configuration, Bucket=bucket)
        )
    except StorageError as exc:
        if exc.http_status == 404 or "NoSuchLifecycle" in exc.code:
            return None
        raise
    return {"Rules": answer.get("Rules", [])}


@functools.lru_cache(maxsize=64)
def _rules_of(document: str) -> tuple[Rule, ...]:
    return tuple(parse_configuration(document))


def rules_of(job: RunningJob) -> tuple[Rule, ...]:
    """The rules the job applies (checked at create, or when it prepared)."""
    return _params(job).lifecycle_configuration or _rules_of(job.plan["configuration"])


def _partial_name(rule: Rule, action: Action) -> str:
    """The partial counter of one rule's action (rules by position: ids may hold anything)."""
    return f"rule.{rule.number}.{action.value}"


def _count(delta: Delta, decision: Decision, size: int) -> None:
    """Add one decision to the partition's partials: per action, and per rule and action
    (count and bytes). Rules are named by position: ids may hold any character."""
    partial = delta.partial
    for name, value in (
        (decision.action.value, 1),
        (_partial_name(decision.rule, decision.action) + ".count", 1),
        (_partial_name(decision.rule, decision.action) + ".bytes", size),
    ):
        partial[name] = partial.get(name, 0) + value


def _acted(delta: Delta, decision: Decision) -> None:
    """One version deleted (or, in a dry run, that would be)."""
    size = decision.version.size or 0
    _count(delta, decision, size)
    delta.processed += 1
    delta.bytes += size


def _by_key(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Consecutive entries of one key (a listing gives a key's versions together, newest
    first; a partition never splits them)."""
    groups: list[list[Entry]] = []
    for entry in entries:
        if groups and groups[-1][0].key == entry.key:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return groups


class LifecycleUpdate:
    pure = False
    inline = True  # deletes cost the store, not us: no second listing, no task per partition
    partition_bytes: int | None = None

    def count_entry(self, entry: Entry) -> bool:
        return True

    async def prepare(self, job: RunningJob) -> dict[str, Any]:
        params = _params(job)
        versioning = await with_retries(
            functools.partial(job.client.get_bucket_versioning, Bucket=job.bucket)
        )
        plan: dict[str, Any] = {"versions": versioning.get("Status") in ("Enabled", "Suspended")}
        if params.lifecycle_configuration is not None:
            rules, plan["configurationFrom"] = params.lifecycle_configuration, "jobParams"
        else:
            document = await bucket_configuration(job.client, job.bucket)
            if document is None:
                raise JobFailed(
                    f"bucket {job.bucket!r} has no lifecycle configuration, and the job gives"
                    " no lifecycleConfiguration"
                )
            text = json.dumps(document, default=_json_default)
            try:
                rules = _rules_of(text)
            except LifecycleError as exc:
                raise JobFailed(f"the lifecycle configuration of {job.bucket!r}: {exc}") from None
            plan["configuration"], plan["configurationFrom"] = text, "bucket"
        now = params.evaluation_time or dt.datetime.now(dt.UTC)
        plan["evaluationTime"] = now.isoformat()
        plan["uploads"] = await self._abort_uploads(job, rules, now)
        return plan

    async def _abort_uploads(
        self, job: RunningJob, rules: Sequence[Rule], now: dt.datetime
    ) -> dict[str, Any]:
        """Abort (or, in a dry run, count) the incomplete uploads the rules say are due."""
        aborted: dict[str, int] = {}
        failures: list[dict[str, Any]] = []
        if not any(r.enabled and r.abort_days is not None for r in rules):
            return {"aborted": aborted, "failures": failures}
        uploads = iter_uploads(job.client, job.bucket, prefix=_params(job).prefix, sizes=False)
        async for upload in uploads:
            rule = abort_due(rules, upload.key, upload.initiated, now)
            if rule is None:
                continue
            if not job.params.dry_run:
                abort = functools.partial(
                    job.source.http.request, "DELETE", job.bucket, upload.key,
                    query={"uploadId": upload.upload_id}, ok=(200, 204, 404),
                )  # fmt: skip
                try:
                    await with_retries(abort)
                except StorageError as exc:
                    failures.append(
                        {"key": upload.key, "uploadId": upload.upload_id, "code": exc.code,
                         "status": exc.http_status, "message": exc.message}
                    )  # fmt: skip
                    continue
            aborted[str(rule.number)] = aborted.get(str(rule.number), 0) + 1
        return {"aborted": aborted, "failures": failures}

    async def act(self, job: RunningJob, entries: Sequence[Entry], after: str | None) -> Delta:
        rules = rules_of(job)
        now = dt.datetime.fromisoformat(job.plan["evaluationTime"])
        groups = _by_key(entries)
        delta = Delta()
        tags = await self._tags(job, [v for g in groups for v in tags_needed(g, rules, now)], delta)
        unread = {f.key for f in delta.failures}  # a key judged without its tags: left alone
        decisions = [
            d
            for group in groups
            if group[0].key not in unread
            for d in evaluate_key(group, rules, now, lambda v: tags.get((v.key, v.version_id)))
        ]
        acting = [d for d in decisions if d.action is not Action.TRANSITION]
        for decision in decisions:
            if decision.action is Action.TRANSITION:
                _count(delta, decision, decision.version.size or 0)
        delta.skipped = len(entries) - len(acting) - delta.failed
        if job.params.dry_run:
            for decision in acting:
                _acted(delta, decision)
            affected = [
                Affected(d.version.key, d.version.version_id, d.action.value, d.rule.id,
                         d.version.size or 0)
                for d in acting
            ]  # fmt: skip
            affected.sort(key=lambda a: (a.key, a.version_id or ""))
            delta.affected = affected[:AFFECTED_SAMPLE]
            return delta
        await self._delete(job, acting, delta)
        return delta

    async def _tags(
        self, job: RunningJob, versions: Sequence[Entry], delta: Delta
    ) -> dict[tuple[str, str | None], Mapping[str, str]]:
        """Tags of the versions a tag filter decides for, TAG_LANES reads at a time. A
        version whose tags cannot be read is a failure in `delta`."""
        found: dict[tuple[str, str | None], Mapping[str, str]] = {}
        pending = iter(versions)

        async def lane() -> None:
            for version in pending:
                if job.stopping():
                    return
                read = functools.partial(
                    read_tags, job.source.http, job.bucket, version.key, version.version_id
                )
                try:
                    async with job.slot():
                        tags = await with_retries(read)
                except StorageError as exc:
                    if exc.http_status is None:  # no answer at all: the store is down
                        raise JobFailed(f"reading tags in {job.bucket!r}: {exc}") from exc
                    _fail(delta, version, exc.code, exc.http_status, f"reading tags: {exc.message}")
                    continue
                if tags is not None:
                    found[(version.key, version.version_id)] = tags

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(TAG_LANES, len(versions))):
                    group.create_task(lane())
        except* JobFailed as errors:
            raise errors.exceptions[0] from None
        return found

    async def _delete(self, job: RunningJob, acting: Sequence[Decision], delta: Delta) -> None:
        """Delete what is due, DELETE_BATCH targets a request, and count what was deleted."""

        def target(decision: Decision) -> Target:
            version = decision.version
            if decision.action is Action.EXPIRE:
                return Target(version.key)  # by key: a delete marker where versioned
            return Target(version.key, version.version_id)

        async def batch(chunk: Sequence[Decision]) -> None:
            if job.stopping():
                return
            targets = [target(d) for d in chunk]
            try:
                async with job.slot():
                    refused = await delete_batch(job.source.http, job.bucket, targets)
            except StorageError as exc:
                if exc.http_status is None:  # no answer at all: the store is down
                    raise JobFailed(f"deleting from {job.bucket!r}: {exc}") from exc
                for decision in chunk:
                    _fail(delta, decision.version, exc.code, exc.http_status, exc.message)
                return
            failed = {e.target: e for e in refused}
            for decision, sent in zip(chunk, targets, strict=True):
                error = failed.get(sent)
                if error is not None:
                    _fail(delta, decision.version, error.code, error.http_status, error.message)
                    continue
                _acted(delta, decision)

        chunks = [acting[i : i + DELETE_BATCH] for i in range(0, len(acting), DELETE_BATCH)]
        try:
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    group.create_task(batch(chunk))
        except* JobFailed as errors:
            raise errors.exceptions[0] from None

    async def finish(self, job: RunningJob, totals: Mapping[str, int]) -> Completion:
        rules = rules_of(job)
        uploads = job.plan.get("uploads", {"aborted": {}, "failures": []})
        aborted = {int(n): count for n, count in uploads["aborted"].items()}
        per_rule: dict[str, dict[str, dict[str, int]]] = {}
        for rule in rules:
            actions: dict[str, dict[str, int]] = {}
            for action in Action:
                if action is Action.ABORT:
                    count, size = aborted.get(rule.number, 0), 0
                else:
                    name = _partial_name(rule, action)
                    count = int(totals.get(name + ".count", 0))
                    size = int(totals.get(name + ".bytes", 0))
                if count:
                    actions[action.value] = {"count": count, "bytes": size}
            per_rule[rule.id] = actions
        result: dict[str, Any] = {
            action.value: int(totals.get(action.value, 0)) for action in Action
        }
        result[Action.ABORT.value] = sum(aborted.values())
        result.update(
            rules=per_rule,
            evaluationTime=job.plan["evaluationTime"],
            configurationFrom=job.plan.get("configurationFrom"),
            dryRun=job.params.dry_run,
        )
        counted = Delta(processed=sum(aborted.values()), failed=len(uploads["failures"]))
        counted.failures = [
            Failure(f["key"], None, f["code"], f["status"],
                    f"aborting upload {f['uploadId']}: {f['message']}", 1, dt.datetime.now(dt.UTC))
            for f in uploads["failures"]
        ]  # fmt: skip
        return Completion(result, counted=counted)


def _fail(delta: Delta, version: Any, code: str, status: int | None, message: str) -> None:
    delta.failed += 1
    delta.failures.append(
        Failure(version.key, version.version_id, code, status, message, 1, dt.datetime.now(dt.UTC))
    )
