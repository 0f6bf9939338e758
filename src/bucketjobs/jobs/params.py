"""Per-type jobParams schemas: validate at create time, parse for the engine (pure rules).

The reference types every value as a string; clients in the field send unquoted YAML
scalars, so numbers and booleans are accepted and stored as their string form.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bucketjobs.jobs.model import JobType

MAX_ENTRIES = 64
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 4096


class ParamError(ValueError):
    """A jobParams problem that the caller can fix; the message says which key and why."""


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError("must be a JSON document") from exc
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object")
    return parsed


def _event_name(value: str) -> str:
    if not re.fullmatch(r"s3:[A-Za-z]+:[A-Za-z*]+", value):
        raise ValueError("must be an S3 event name such as s3:ObjectCreated:Put")
    return value


def _id_list(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ValueError("must be a comma-separated list of target ids")
    return items


Validator = Callable[[str], Any]

COMMON: dict[str, Validator] = {
    "prefix": _text(1024),
    "dryRun": parse_bool,
    "failureThreshold": _number(0, 100, integer=False),
    "maxConcurrency": _number(1, 1024, integer=True),
    "rateLimit": _number(0.001, 1_000_000, integer=False),
}

BY_TYPE: dict[JobType, dict[str, Validator]] = {
    JobType.METRIC_RECONCILIATION: {},
    JobType.BATCH_REPLICATE: {
        "replicationFilter": _choice("ALL", "MISSING", "FAILED"),
        "destinationBucket": _bucket,
        "destinationComponent": _number(1, 2**31 - 1, integer=True),
        "destinationPrefix": _text(1024),
    },
    JobType.LIFECYCLE_UPDATE: {
        "evaluationTime": parse_rfc3339,
        "lifecycleConfiguration": _json_object,
    },
    JobType.TRIGGER_RECONCILIATION: {
        "eventName": _event_name,
        "modifiedAfter": parse_rfc3339,
        "modifiedBefore": parse_rfc3339,
        "targets": _id_list,
    },
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


def normalize(job_type: JobType, raw: Mapping[str, object] | None) -> dict[str, str]:
    """Check shape, limits and every key/value for `job_type`; return the stored form.

    Unknown keys are rejected, never ignored: a typo must not silently change what a job does.
    """
    if raw is None:
        return {}
    if len(raw) > MAX_ENTRIES:
        raise ParamError(f"jobParams has more than {MAX_ENTRIES} entries")
    allowed = {**COMMON, **BY_TYPE[job_type]}
    result: dict[str, str] = {}
    for key, value in raw.items():
        if len(key) > MAX_KEY_LEN:
            raise ParamError(f"jobParams key longer than {MAX_KEY_LEN} characters")
        text = _scalar_to_str(key, value)
        if len(text) > MAX_VALUE_LEN:
            raise ParamError(f"jobParams.{key} is longer than {MAX_VALUE_LEN} characters")
        validator = allowed.get(key)
        if validator is None:
            raise ParamError(f"jobParams.{key} is not a parameter of {job_type.value}")
        try:
            validator(text)
        except ValueError as exc:
            raise ParamError(f"jobParams.{key} {exc}") from exc
        result[key] = text
    return result


@dataclass(frozen=True)
class CommonParams:
    """The parameters every job type understands, parsed for the engine."""

    prefix: str = ""
    dry_run: bool = False
    failure_threshold: float = 50.0
    max_concurrency: int | None = None
    rate_limit: float | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> CommonParams:
        return cls(
            prefix=params.get("prefix", ""),
            dry_run=parse_bool(params.get("dryRun", "false")),
            failure_threshold=float(params.get("failureThreshold", "50")),
            max_concurrency=int(params["maxConcurrency"]) if "maxConcurrency" in params else None,
            rate_limit=float(params["rateLimit"]) if "rateLimit" in params else None,
        )
