"""Bucket access: which buckets a caller reaches, from roles and grants (SPEC §2). Pure rules.

`administrator` and `operator` reach every bucket of every component. A `user` reaches a
bucket only through a grant of a pattern — an exact bucket name, or a prefix ending in `*` —
on one component, for READ or WRITE (WRITE implies READ).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bucketjobs.jobs.model import JobType
from bucketjobs.jobs.params import valid_bucket_name

# Roles whose holders reach every bucket without grants.
ALL_BUCKETS_ROLES = frozenset({"administrator", "operator"})
MAX_GRANTS = 1000  # per user: a set checked on every create stays small
# The start of a bucket name ('' = every bucket of the component).
_STEM_RE = re.compile(r"([a-z0-9][a-z0-9.-]{0,61})?")


class Access(enum.Enum):
    READ = "READ"
    WRITE = "WRITE"

    def covers(self, needed: Access) -> bool:
        return self is Access.WRITE or needed is Access.READ


class GrantError(ValueError):
    """A grant that cannot be stored; the message names the field."""


@dataclass(frozen=True)
class Grant:
    component_id: int
    bucket_pattern: str
    access: Access

    def matches(self, component_id: int, bucket: str) -> bool:
        if component_id != self.component_id:
            return False
        if self.bucket_pattern.endswith("*"):
            return bucket.startswith(self.bucket_pattern[:-1])
        return bucket == self.bucket_pattern


def check_pattern(pattern: str) -> str:
    """A valid bucket pattern, or GrantError naming what is wrong."""
    if pattern.endswith("*"):
        if not _STEM_RE.fullmatch(pattern[:-1]):
            raise GrantError(f"bucketPattern {pattern[:80]!r}: not a bucket-name prefix")
    elif not valid_bucket_name(pattern):
        raise GrantError(
            f"bucketPattern {pattern[:80]!r}: not a bucket name (or a prefix ending in '*')"
        )
    return pattern


def reaches_all(roles: Iterable[str]) -> bool:
    return any(role in ALL_BUCKETS_ROLES for role in roles)


def allows(grants: Iterable[Grant], component_id: int, bucket: str, needed: Access) -> bool:
    """Whether some grant gives `needed` access to `bucket` on `component_id`."""
    return any(
        grant.access.covers(needed) and grant.matches(component_id, bucket) for grant in grants
    )


# What a job of each type needs on the bucket it runs over (SPEC §2). BATCH_REPLICATE also
# needs WRITE on its destination, checked where the destination is known.
SOURCE_ACCESS: dict[JobType, Access] = {
    JobType.METRIC_RECONCILIATION: Access.READ,
    JobType.TRIGGER_RECONCILIATION: Access.READ,
    JobType.BATCH_REPLICATE: Access.READ,
    JobType.LIFECYCLE_UPDATE: Access.WRITE,
}
