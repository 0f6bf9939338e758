"""Bucket access rules (auth/access.py): patterns, components, READ/WRITE."""

from __future__ import annotations

import pytest

from bucketjobs.auth.access import SOURCE_ACCESS, Access, Grant, GrantError, allows, check_pattern
from bucketjobs.jobs.model import JobType

GRANTS = [Grant(1, "team-a-*", Access.READ), Grant(1, "shared", Access.WRITE),
          Grant(2, "*", Access.WRITE)]  # fmt: skip


@pytest.mark.parametrize(
    ("component", "bucket", "needed", "allowed"),
    [
        (1, "team-a-logs", Access.READ, True),
        (1, "team-a-logs", Access.WRITE, False),  # READ does not imply WRITE
        (1, "team-a-", Access.READ, True),
        (1, "team-b-logs", Access.READ, False),
        (1, "xteam-a-logs", Access.READ, False),  # a prefix, not a substring
        (1, "shared", Access.READ, True),  # WRITE implies READ
        (1, "shared", Access.WRITE, True),
        (1, "shared2", Access.READ, False),  # exact names are exact
        (2, "anything", Access.WRITE, True),
        (3, "shared", Access.READ, False),  # grants are per component
    ],
)
def test_grants_allow(component, bucket, needed, allowed):
    assert allows(GRANTS, component, bucket, needed) is allowed


@pytest.mark.parametrize("pattern", ["logs", "team-a-*", "*", "a*", "my.bucket-1"])
def test_valid_patterns(pattern):
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["", "UPPER", "a*b*", "**", "-x*", "a_b", "x" * 64, "ab"])
def test_invalid_patterns(pattern):
    with pytest.raises(GrantError, match="bucketPattern"):
        check_pattern(pattern)


def test_every_job_type_has_an_access_rule():
    assert set(SOURCE_ACCESS) == set(JobType)
    assert SOURCE_ACCESS[JobType.LIFECYCLE_UPDATE] is Access.WRITE  # it deletes data


def test_a_role_error_is_readable_text():
    import pytest

    from bucketjobs.auth.users import UserError, check_roles

    with pytest.raises(UserError) as refused:
        check_roles(["user", "root", "wheel"])
    message = str(refused.value)
    assert message == (
        "unknown or missing roles (root, wheel); roles are administrator, operator, user"
    )
    with pytest.raises(UserError, match=r"\(none given\)"):
        check_roles([])
