"""Per-type jobParams schemas: validate at create time, parse for the engine (pure rules).

The reference types every value as a string; clients in the field send unquoted YAML
scalars, so numbers and booleans are accepted and stored as their string form.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bucketjobs.jobs.lifecycle import Rule, parse_configuration
from bucketjobs.jobs.model import INT32_MAX, JobType
from bucketjobs.notify.config import EVENT_NAMES

MAX_ENTRIES = 64
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 4096


class ParamError(ValueError):
    """A jobParams problem that the caller can fix; the message says which key and why."""


# The shape of a bucket name (valid_bucket_name adds the rules a pattern cannot say).
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_BUCKET_RE = re.compile(BUCKET_PATTERN)


def valid_bucket_name(name: str) -> bool:
    """S3 general-purpose bucket naming rules."""
    if not _BUCKET_RE.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError("must be true or false")
    return lowered == "true"


def parse_rfc3339(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError("must be an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise ValueError("must be an RFC 3339 timestamp with a time zone")
    return parsed.astimezone(dt.UTC)


def _number(low: float, high: float, *, integer: bool) -> Callable[[str], Any]:
    def check(value: str) -> float | int:
        try:
            number: float | int = int(value) if integer else float(value)
        except ValueError as exc:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"must be {kind}") from exc
        if not low <= number <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return number

    return check


def _text(max_len: int = MAX_VALUE_LEN) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(value) > max_len:
            raise ValueError(f"must be at most {max_len} characters")
        return value

    return check


def _choice(*options: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.upper() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value.upper()

    return check


def _bucket(value: str) -> str:
    if not valid_bucket_name(value):
        raise ValueError("is not a valid S3 bucket name")
    return value


def _event_name(value: str) -> str:
    """One S3 event name, as a record carries it: no wildcard."""
    if value not in EVENT_NAMES or value.endswith("*"):
        raise ValueError("must be an S3 event name such as s3:ObjectCreated:Put")
    return value


def _id_list(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(re.fullmatch(r"[1-9][0-9]{0,9}", item) for item in items):
        raise ValueError("must be a comma-separated list of target ids (numbers)")
    return list(dict.fromkeys(items))


Validator = Callable[[str], Any]


class ReplicationFilter(StrEnum):
    ALL = "ALL"
    MISSING = "MISSING"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CommonParams:
    """The parameters every job type understands, typed. Each job type's own class adds
    its fields; `parse` builds the right one from the stored strings."""

    prefix: str = ""
    dry_run: bool = False
    failure_threshold: float = 50.0
    max_concurrency: int | None = None
    rate_limit: float | None = None


@dataclass(frozen=True)
class MetricParams(CommonParams):
    pass


@dataclass(frozen=True)
class ReplicateParams(CommonParams):
    replication_filter: ReplicationFilter = ReplicationFilter.MISSING
    destination_bucket: str | None = None  # None: the source's replication rule names it
    destination_component: int | None = None  # None: the source's own component
    destination_prefix: str = ""


@dataclass(frozen=True)
class LifecycleParams(CommonParams):
    evaluation_time: dt.datetime | None = None
    # The override's rules (checked as S3 checks them); None: the bucket's own configuration.
    lifecycle_configuration: tuple[Rule, ...] | None = None


@dataclass(frozen=True)
class TriggerParams(CommonParams):
    event_name: str | None = None
    modified_after: dt.datetime | None = None
    modified_before: dt.datetime | None = None
    targets: tuple[str, ...] | None = None


def _replication_filter(value: str) -> ReplicationFilter:
    return ReplicationFilter(_choice(*ReplicationFilter)(value))


# wire key → (attribute, validator that parses the stored string)
Fields = dict[str, tuple[str, Validator]]

COMMON: Fields = {
    "prefix": ("prefix", _text(1024)),
    "dryRun": ("dry_run", parse_bool),
    "failureThreshold": ("failure_threshold", _number(0, 100, integer=False)),
    "maxConcurrency": ("max_concurrency", _number(1, 1024, integer=True)),
    "rateLimit": ("rate_limit", _number(0.001, 1_000_000, integer=False)),
}

BY_TYPE: dict[JobType, tuple[type[CommonParams], Fields]] = {
    JobType.METRIC_RECONCILIATION: (MetricParams, {}),
    JobType.BATCH_REPLICATE: (
        ReplicateParams,
        {
            "replicationFilter": ("replication_filter", _replication_filter),
            "destinationBucket": ("destination_bucket", _bucket),
            "destinationComponent": ("destination_component", _number(1, INT32_MAX, integer=True)),
            "destinationPrefix": ("destination_prefix", _text(1024)),
        },
    ),
    JobType.LIFECYCLE_UPDATE: (
        LifecycleParams,
        {
            "evaluationTime": ("evaluation_time", parse_rfc3339),
            "lifecycleConfiguration": (
                "lifecycle_configuration",
                lambda value: tuple(parse_configuration(value)),
            ),
        },
    ),
    JobType.TRIGGER_RECONCILIATION: (
        TriggerParams,
        {
            "eventName": ("event_name", _event_name),
            "modifiedAfter": ("modified_after", parse_rfc3339),
            "modifiedBefore": ("modified_before", parse_rfc3339),
            "targets": ("targets", lambda value: tuple(_id_list(value))),
        },
    ),
}


# What each key means: shown in the OpenAPI document and, from it, by the console's form.
HELP: dict[str, str] = {
    "prefix": "Only keys under this prefix (at most 1,024 characters). Default: every key.",
    "dryRun": "true: do everything but change nothing. Default: false.",
    "failureThreshold": (
        "Percent 0-100: the job ends FAILED when more of the objects it attempted failed "
        "(judged after 1,000 attempts, or at the end). Default: 50."
    ),
    "maxConcurrency": "Storage requests in flight per worker process, 1-1024. Default: none.",
    "rateLimit": "Object operations per second for the whole job, 0.001-1,000,000. Default: none.",
    "replicationFilter": (
        "ALL (every object), MISSING (objects the destination does not already hold; the "
        "default) or FAILED (the keys the last copy of this bucket failed on)."
    ),
    "destinationBucket": (
        "The bucket to copy to. Required unless the source's replication configuration names one."
    ),
    "destinationComponent": (
        "The storage component id to copy to. Default: the source's own (server-side copies)."
    ),
    "destinationPrefix": "Put before every copied key. Default: none.",
    "evaluationTime": (
        "RFC 3339 time: evaluate the rules as if it were then. Default: when the job prepares."
    ),
    "lifecycleConfiguration": (
        "S3 lifecycle configuration as JSON text (at most 4 KiB), applied instead of the "
        "bucket's own. Default: the bucket's own."
    ),
    "eventName": "The S3 event name each record carries. Default: s3:ObjectCreated:Put.",
    "modifiedAfter": "RFC 3339 time: only objects modified after it. Default: no bound.",
    "modifiedBefore": "RFC 3339 time: only objects modified before it. Default: no bound.",
    "targets": (
        "Comma-separated notification target ids. Default: every target bound to the bucket "
        "whose events include eventName."
    ),
}


def _scalar_to_str(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    kind = "null" if value is None else type(value).__name__
    raise ParamError(f"jobParams.{key} must be a string, number or boolean, not {kind}")


def accept(
    job_type: JobType, raw: Mapping[str, object] | None
) -> tuple[dict[str, str], CommonParams]:
    """Validate `raw` jobParams at create: the stored strings and the typed parameters they
    stand for (what the create-time checks and, rebuilt by `parse`, the workers read)."""
    if raw is None:
        raw = {}
    if len(raw) > MAX_ENTRIES:
        raise ParamError(f"jobParams has more than {MAX_ENTRIES} entries")
    kind, fields = BY_TYPE[job_type]
    allowed = {**COMMON, **fields}
    stored: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        if len(key) > MAX_KEY_LEN:
            raise ParamError(f"jobParams key longer than {MAX_KEY_LEN} characters")
        text = _scalar_to_str(key, value)
        if len(text) > MAX_VALUE_LEN:
            raise ParamError(f"jobParams.{key} is longer than {MAX_VALUE_LEN} characters")
        field = allowed.get(key)
        if field is None:
            raise ParamError(f"jobParams.{key} is not a parameter of {job_type.value}")
        attribute, validator = field
        try:
            typed[attribute] = validator(text)
        except ValueError as exc:
            raise ParamError(f"jobParams.{key} {exc}") from exc
        stored[key] = text
    return stored, kind(**typed)


def parse(job_type: JobType, stored: Mapping[str, str]) -> CommonParams:
    """The typed parameters of a job from its stored strings (validated at create)."""
    return accept(job_type, stored)[1]
