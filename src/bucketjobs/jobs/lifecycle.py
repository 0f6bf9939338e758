"""S3 lifecycle rules, pure: a configuration checked and typed, and what it does to one key.

`parse_configuration` reads the S3 JSON form of a lifecycle configuration (the AWS CLI's and
boto3's, which is also what GetBucketLifecycleConfiguration answers) and refuses what S3
refuses, naming the rule. `evaluate_key` takes every version of one key, newest first, and
the instant to evaluate at, and says which versions are acted on, by which rule and action.
No I/O here: the LIFECYCLE_UPDATE op (ops/lifecycle.py) lists, reads tags and deletes.

Semantics, as AWS documents them (docs/DECISIONS.md "Lifecycle" for the choices):
- A due date is the start (creation; for noncurrent versions the successor's creation;
  for uploads their initiation) plus the days, rounded up to a midnight UTC (a start at
  midnight exactly stays there). `Date` is that midnight itself; it must be a midnight.
- Filters: prefix, tags (an object may carry more tags than the filter names), sizes
  strictly greater / strictly less than the bounds, or `And` of them; `Filter: {}` is all.
- Expiration applies to the current version only: a delete (a delete marker when the
  bucket is or was versioned). A current delete marker with no other version left is an
  *expired object delete marker*: removed by `ExpiredObjectDeleteMarker`, or by `Days` /
  `Date` once the marker itself is due.
- NoncurrentVersionExpiration deletes a noncurrent version (delete markers included) once
  it has been noncurrent for `NoncurrentDays`, keeping the `NewerNoncurrentVersions`
  newest noncurrent versions whatever their age.
- Every rule is evaluated in the same pass; when several would delete one version, the
  first in the configuration's order takes it (one delete, one count). Transitions are
  recognised and counted as not applied; they never hold back an expiration.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

DAY = dt.timedelta(days=1)
MAX_RULES = 1000


class LifecycleError(ValueError):
    """A lifecycle configuration S3 would refuse; the message names the rule."""


class Action(StrEnum):
    """What happens to a version; the values are the result's counter names."""

    EXPIRE = "expired"  # current version: deleted (a delete marker where versioned)
    EXPIRE_NONCURRENT = "noncurrentExpired"  # noncurrent version or marker: deleted for good
    REMOVE_MARKER = "deleteMarkersRemoved"  # expired object delete marker: deleted for good
    ABORT = "uploadsAborted"  # incomplete multipart upload: aborted
    TRANSITION = "transitionsNotApplied"  # due for a transition, which is not applied


# ---- the configuration's shape (S3's JSON, field names as S3 spells them) ----------------

Strict = ConfigDict(extra="forbid", populate_by_name=True)
DayCount = Annotated[StrictInt, Field(gt=0, le=2**31 - 1)]


class _Tag(BaseModel):
    model_config = Strict
    Key: StrictStr = Field(min_length=1, max_length=128)
    Value: StrictStr = Field(max_length=256)


class _And(BaseModel):
    model_config = Strict
    Prefix: StrictStr | None = Field(default=None, max_length=1024)
    Tags: list[_Tag] | None = Field(default=None, max_length=50)
    ObjectSizeGreaterThan: StrictInt | None = Field(default=None, ge=0, le=2**63 - 1)
    ObjectSizeLessThan: StrictInt | None = Field(default=None, gt=0, le=2**63 - 1)


class _Filter(_And):
    Tag: _Tag | None = None
    And: _And | None = None
    Tags: None = None  # only inside And

    @model_validator(mode="after")
    def _one(self) -> _Filter:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"Filter takes one of its fields (use And to combine): {given}")
        return self


class _Expiration(BaseModel):
    model_config = Strict
    Days: DayCount | None = None
    Date: dt.datetime | None = None
    ExpiredObjectDeleteMarker: StrictBool | None = None

    @model_validator(mode="after")
    def _one(self) -> _Expiration:
        given = [
            n for n in ("Days", "Date", "ExpiredObjectDeleteMarker") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "Expiration takes exactly one of Days, Date, ExpiredObjectDeleteMarker"
            )
        if self.Date is not None:
            if self.Date.tzinfo is None:
                self.Date = self.Date.replace(tzinfo=dt.UTC)
            self.Date = self.Date.astimezone(dt.UTC)
            if self.Date != _midnight_floor(self.Date):
                raise ValueError("Expiration.Date must be a midnight UTC")
        return self


class _NoncurrentExpiration(BaseModel):
    model_config = Strict
    NoncurrentDays: DayCount
    NewerNoncurrentVersions: StrictInt | None = Field(default=None, ge=1, le=100)


class _Abort(BaseModel):
    model_config = Strict
    DaysAfterInitiation: DayCount


class _Rule(BaseModel):
    model_config = Strict
    ID: StrictStr | None = Field(default=None, max_length=255)
    Status: Literal["Enabled", "Disabled"]
    Filter: _Filter | None = None
    Prefix: StrictStr | None = Field(default=None, max_length=1024)  # the older form
    Expiration: _Expiration | None = None
    NoncurrentVersionExpiration: _NoncurrentExpiration | None = None
    AbortIncompleteMultipartUpload: _Abort | None = None
    Transitions: list[dict[str, Any]] | None = None
    Transition: dict[str, Any] | None = None
    NoncurrentVersionTransitions: list[dict[str, Any]] | None = None
    NoncurrentVersionTransition: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> _Rule:
        if (self.Filter is None) == (self.Prefix is None):
            raise ValueError("a rule needs a Filter (or the older Prefix), not both nor neither")
        actions = (
            self.Expiration, self.NoncurrentVersionExpiration,
            self.AbortIncompleteMultipartUpload, self.Transitions, self.Transition,
            self.NoncurrentVersionTransitions, self.NoncurrentVersionTransition,
        )  # fmt: skip
        if all(action is None for action in actions):
            raise ValueError("a rule needs at least one action")
        tagged = self.Filter is not None and (
            self.Filter.Tag is not None or (self.Filter.And is not None and self.Filter.And.Tags)
        )
        if tagged and self.Expiration and self.Expiration.ExpiredObjectDeleteMarker is not None:
            raise ValueError("ExpiredObjectDeleteMarker cannot be used with a tag filter")
        if tagged and self.AbortIncompleteMultipartUpload is not None:
            raise ValueError("AbortIncompleteMultipartUpload cannot be used with a tag filter")
        return self


class _Configuration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Rules: list[_Rule] = Field(min_length=1, max_length=MAX_RULES)


# ---- the typed rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    greater_than: int | None = None
    less_than: int | None = None

    def matches(self, key: str, size: int) -> bool:
        """Everything but the tags."""
        if not key.startswith(self.prefix):
            return False
        if self.greater_than is not None and not size > self.greater_than:
            return False
        return self.less_than is None or size < self.less_than

    def matches_tags(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(name) == value for name, value in self.tags)


@dataclass(frozen=True, slots=True)
class Rule:
    number: int  # position in the configuration, from 1
    id: str
    enabled: bool
    filter: Filter
    expiration_days: int | None = None
    expiration_date: dt.datetime | None = None
    expired_object_delete_marker: bool = False
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int = 0
    abort_days: int | None = None
    transition_days: tuple[int, ...] = ()  # and dates below; reported, never applied
    transition_dates: tuple[dt.datetime, ...] = ()
    noncurrent_transition_days: tuple[int, ...] = ()

    @property
    def expires(self) -> bool:
        return self.expiration_days is not None or self.expiration_date is not None


def _filter(rule: _Rule) -> Filter:
    if rule.Filter is None:
        return Filter(rule.Prefix or "")
    f = rule.Filter
    if f.Tag is not None:
        return Filter(tags=((f.Tag.Key, f.Tag.Value),))
    both = f.And or f
    tags = tuple((t.Key, t.Value) for t in (both.Tags or ()))
    return Filter(both.Prefix or "", tags, both.ObjectSizeGreaterThan, both.ObjectSizeLessThan)


def _transition_times(
    items: Sequence[Mapping[str, Any]],
) -> tuple[tuple[int, ...], tuple[dt.datetime, ...]]:
    days: list[int] = []
    dates: list[dt.datetime] = []
    for item in items:
        if isinstance(item.get("Days"), int) and not isinstance(item.get("Days"), bool):
            days.append(item["Days"])
        elif item.get("Date") is not None:
            when = item["Date"]
            if isinstance(when, str):
                when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
            if isinstance(when, dt.datetime):
                dates.append(when if when.tzinfo else when.replace(tzinfo=dt.UTC))
    return tuple(days), tuple(dates)


def _rule(number: int, raw: _Rule) -> Rule:
    expiration, noncurrent = raw.Expiration, raw.NoncurrentVersionExpiration
    days, dates = _transition_times(
        [*(raw.Transitions or ()), *([raw.Transition] if raw.Transition else [])]
    )
    noncurrent_days, _ = _transition_times(
        [*(raw.NoncurrentVersionTransitions or ()),
         *([raw.NoncurrentVersionTransition] if raw.NoncurrentVersionTransition else [])]
    )  # fmt: skip
    return Rule(
        number=number,
        id=raw.ID or f"rule-{number}",
        enabled=raw.Status == "Enabled",
        filter=_filter(raw),
        expiration_days=expiration.Days if expiration else None,
        expiration_date=expiration.Date if expiration else None,
        expired_object_delete_marker=bool(expiration and expiration.ExpiredObjectDeleteMarker),
        noncurrent_days=noncurrent.NoncurrentDays if noncurrent else None,
        newer_noncurrent_versions=(noncurrent.NewerNoncurrentVersions or 0) if noncurrent else 0,
        abort_days=(
            raw.AbortIncompleteMultipartUpload.DaysAfterInitiation
            if raw.AbortIncompleteMultipartUpload
            else None
        ),
        transition_days=days,
        transition_dates=dates,
        noncurrent_transition_days=noncurrent_days,
    )


def _where(location: tuple[int | str, ...], rules: Sequence[Any]) -> str:
    """`rule 'id' (Rules[2])` for an error inside a rule, else the JSON path."""
    if len(location) >= 2 and location[0] == "Rules" and isinstance(location[1], int):
        index = location[1]
        raw = rules[index] if index < len(rules) else None
        rule_id = raw.get("ID") if isinstance(raw, Mapping) else None
        name = (
            f"rule {rule_id!r} (Rules[{index}])" if isinstance(rule_id, str) else f"Rules[{index}]"
        )
        rest = ".".join(str(part) for part in location[2:])
        return f"{name}{': ' + rest if rest else ''}"
    return ".".join(str(part) for part in location) or "the configuration"


def parse_configuration(document: Any) -> list[Rule]:
    """The rules of an S3 lifecycle configuration (a JSON string or its parsed form),
    checked as S3 checks them; LifecycleError names the first rule and field at fault."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise LifecycleError(f"is not JSON: {exc}") from None
        except RecursionError:
            raise LifecycleError("is nested too deeply") from None
    if not isinstance(document, Mapping):
        raise LifecycleError("must be a JSON object with Rules")
    try:
        parsed = _Configuration.model_validate(document)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        listed = document.get("Rules")
        rules = listed if isinstance(listed, list) else []
        message = str(error["msg"]).removeprefix("Value error, ")
        raise LifecycleError(f"{_where(tuple(error['loc']), rules)}: {message}") from None
    seen: set[str] = set()
    for number, raw in enumerate(parsed.Rules, 1):
        if raw.ID is not None:
            if raw.ID in seen:
                raise LifecycleError(f"rule {raw.ID!r} (Rules[{number - 1}]): ID used twice")
            seen.add(raw.ID)
    return [_rule(number, raw) for number, raw in enumerate(parsed.Rules, 1)]


# ---- evaluation ---------------------------------------------------------------------------


class Version(Protocol):
    """One listed version (storage's Entry has these)."""

    @property
    def key(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def is_latest(self) -> bool: ...
    @property
    def size(self) -> int | None: ...
    @property
    def delete_marker(self) -> bool: ...
    @property
    def last_modified(self) -> dt.datetime: ...


def _midnight_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def due(start: dt.datetime, days: int) -> dt.datetime:
    """`start` plus `days`, rounded up to a midnight UTC (a midnight stays as it is)."""
    end = start.astimezone(dt.UTC) + days * DAY
    floor = _midnight_floor(end)
    return floor if floor == end else floor + DAY


@dataclass(frozen=True, slots=True)
class Decision:
    """`rule` does `action` to `version` (or, for TRANSITION, would)."""

    version: Any
    action: Action
    rule: Rule


Tags = Callable[[Any], Mapping[str, str] | None]  # a version's tags; None: not read


def tags_needed(versions: Sequence[Version], rules: Sequence[Rule], now: dt.datetime) -> list[Any]:
    """The versions whose tags decide something: an enabled rule filtering on tags matches
    them on everything else and has an action that could be due for them now."""
    tagged = [r for r in rules if r.enabled and r.filter.tags]
    if not tagged:
        return []
    wanted = []
    for index, version in enumerate(versions):
        since = versions[index - 1].last_modified if index else None
        for rule in tagged:
            if rule.filter.matches(version.key, version.size or 0) and _could_act(
                rule, version, since, now
            ):
                wanted.append(version)
                break
    return wanted


def _could_act(rule: Rule, version: Version, since: dt.datetime | None, now: dt.datetime) -> bool:
    if version.is_latest:
        return not version.delete_marker and (
            _expiration_due(rule, version.last_modified, now) or _transition_due(rule, version, now)
        )
    return (
        since is not None
        and rule.noncurrent_days is not None
        and now >= due(since, rule.noncurrent_days)
    )


def _expiration_due(rule: Rule, created: dt.datetime, now: dt.datetime) -> bool:
    if rule.expiration_date is not None:
        return now >= rule.expiration_date
    return rule.expiration_days is not None and now >= due(created, rule.expiration_days)


def _transition_due(rule: Rule, version: Version, now: dt.datetime) -> bool:
    created = version.last_modified
    return any(now >= due(created, d) for d in rule.transition_days) or any(
        now >= when for when in rule.transition_dates
    )


def evaluate_key(
    versions: Sequence[Version], rules: Sequence[Rule], now: dt.datetime, tags: Tags
) -> list[Decision]:
    """What the rules do to one key, whose versions are listed newest first (a plain
    listing's single entry is a current version). `tags(version)` gives the tags read for
    the versions `tags_needed` named."""
    enabled = [r for r in rules if r.enabled]
    decisions: list[Decision] = []

    def matching(version: Version) -> list[Rule]:
        found = []
        for rule in enabled:
            if not rule.filter.matches(version.key, version.size or 0):
                continue
            if rule.filter.tags and not rule.filter.matches_tags(tags(version) or {}):
                continue
            found.append(rule)
        return found

    removed: set[int] = set()
    noncurrent_seen = 0
    for index, version in enumerate(versions):
        rules_here = matching(version)
        if version.is_latest:
            if version.delete_marker:
                continue  # decided last: it depends on what else is left
            expiring = next(
                (r for r in rules_here if _expiration_due(r, version.last_modified, now)), None
            )
            if expiring is not None:
                decisions.append(Decision(version, Action.EXPIRE, expiring))
                continue
            moving = next((r for r in rules_here if _transition_due(r, version, now)), None)
            if moving is not None:
                decisions.append(Decision(version, Action.TRANSITION, moving))
            continue
        # Noncurrent since its successor (the next newer version) was written.
        since = versions[index - 1].last_modified if index else version.last_modified
        position, noncurrent_seen = noncurrent_seen, noncurrent_seen + 1
        for rule in rules_here:
            if rule.noncurrent_days is None or position < rule.newer_noncurrent_versions:
                continue
            if now >= due(since, rule.noncurrent_days):
                decisions.append(Decision(version, Action.EXPIRE_NONCURRENT, rule))
                removed.add(index)
                break
        else:
            moving = next(
                (
                    r
                    for r in rules_here
                    if any(now >= due(since, d) for d in r.noncurrent_transition_days)
                ),
                None,
            )
            if moving is not None:
                decisions.append(Decision(version, Action.TRANSITION, moving))
    head = versions[0] if versions else None
    if head is not None and head.is_latest and head.delete_marker:
        others_left = any(i not in removed for i in range(1, len(versions)))
        if not others_left:
            for rule in matching(head):
                if rule.expired_object_delete_marker or _expiration_due(
                    rule, head.last_modified, now
                ):
                    decisions.append(Decision(head, Action.REMOVE_MARKER, rule))
                    break
    return decisions


def abort_due(
    rules: Sequence[Rule], key: str, initiated: dt.datetime, now: dt.datetime
) -> Rule | None:
    """The first enabled rule that aborts an upload of `key` initiated then (prefix
    filters only: S3 refuses tags beside this action, and an upload has no size yet)."""
    for rule in rules:
        if (
            rule.enabled
            and rule.abort_days is not None
            and key.startswith(rule.filter.prefix)
            and now >= due(initiated, rule.abort_days)
        ):
            return rule
    return None
