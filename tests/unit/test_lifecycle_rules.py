"""S3 lifecycle rules, pure (jobs/lifecycle.py): tables written from AWS's documented
semantics — due dates, filters, precedence, versions — and the configurations S3 refuses."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import pytest

from bucketjobs.jobs.lifecycle import (
    Action,
    LifecycleError,
    abort_due,
    due,
    evaluate_key,
    parse_configuration,
    tags_needed,
)


def T(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


class V(NamedTuple):
    """A listed version: key, id, latest, size, marker, written."""

    key: str
    version_id: str | None
    is_latest: bool
    size: int | None
    delete_marker: bool
    last_modified: dt.datetime


def obj(key: str = "k", written: str = "2026-01-15T10:30:00", size: int = 5) -> V:
    return V(key, None, True, size, False, T(written))


def rules(*rule: dict) -> list:
    return parse_configuration({"Rules": list(rule)})


def rule(**fields) -> dict:
    return {"ID": "r", "Status": "Enabled", "Filter": {}, **fields}


def actions(versions, configured, now, tags=None) -> list[tuple[str | None, Action, str]]:
    found = evaluate_key(versions, configured, T(now), lambda v: (tags or {}).get(v.version_id))
    return [(d.version.version_id, d.action, d.rule.id) for d in found]


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        ("2026-01-15T10:30:00", 3, "2026-01-19T00:00:00"),  # rounded up to the next midnight
        ("2026-01-15T00:00:00", 3, "2026-01-18T00:00:00"),  # exactly at midnight: stays
        ("2026-01-15T23:59:59.999999", 1, "2026-01-17T00:00:00"),
        ("2026-02-28T12:00:00", 1, "2026-03-02T00:00:00"),
    ],
)
def test_due_dates_round_up_to_midnight_utc(start, days, expected):
    assert due(T(start), days) == T(expected)


def test_due_dates_count_in_utc_whatever_the_offset():
    start = dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert due(start, 1) == T("2026-01-18T00:00:00")  # 04:30 UTC on the 16th, + 1 day


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        ("2026-01-18T23:59:59", False),  # the day before the rounded due date
        ("2026-01-19T00:00:00", True),  # at the midnight it was rounded up to
        ("2027-01-01T00:00:00", True),
    ],
)
def test_expiration_days_across_midnight(now, expired):
    configured = rules(rule(Expiration={"Days": 3}))
    assert bool(actions([obj()], configured, now)) is expired


def test_expiration_date_in_the_past_takes_every_matching_object_whatever_its_age():
    configured = rules(
        rule(Filter={"Prefix": "logs/"}, Expiration={"Date": "2026-01-01T00:00:00Z"})
    )
    assert actions([obj("logs/a", "2026-06-01T00:00:00")], configured, "2026-07-01T00:00:00")
    assert not actions([obj("logs/a")], configured, "2025-12-31T23:59:59")
    assert not actions([obj("other")], configured, "2026-07-01T00:00:00")


@pytest.mark.parametrize(
    ("filter_", "key", "size", "tags", "matches"),
    [
        ({"Prefix": "a/"}, "a/x", 1, None, True),
        ({"Prefix": "a/"}, "b/x", 1, None, False),
        ({"Tag": {"Key": "t", "Value": "1"}}, "k", 1, {"t": "1", "extra": "x"}, True),
        ({"Tag": {"Key": "t", "Value": "1"}}, "k", 1, {"t": "2"}, False),
        ({"Tag": {"Key": "t", "Value": "1"}}, "k", 1, {}, False),
        ({"ObjectSizeGreaterThan": 10}, "k", 10, None, False),  # strictly greater
        ({"ObjectSizeGreaterThan": 10}, "k", 11, None, True),
        ({"ObjectSizeLessThan": 10}, "k", 10, None, False),  # strictly less
        ({"ObjectSizeLessThan": 10}, "k", 9, None, True),
        (
            {"And": {"Prefix": "a/", "Tags": [{"Key": "t", "Value": "1"}, {"Key": "u", "Value": ""}],
                     "ObjectSizeGreaterThan": 1, "ObjectSizeLessThan": 100}},
            "a/x", 50, {"t": "1", "u": "", "v": "more"}, True,
        ),
        (
            {"And": {"Prefix": "a/", "Tags": [{"Key": "t", "Value": "1"}, {"Key": "u", "Value": ""}]}},
            "a/x", 50, {"t": "1"}, False,
        ),
        ({}, "anything", 0, None, True),
    ],
)  # fmt: skip
def test_filters(filter_, key, size, tags, matches):
    configured = rules(rule(Filter=filter_, Expiration={"Days": 1}))
    version = V(key, "v1", True, size, False, T("2026-01-01T00:00:00"))
    found = actions([version], configured, "2026-02-01T00:00:00", {"v1": tags} if tags else None)
    assert bool(found) is matches


def test_a_disabled_rule_does_nothing():
    configured = rules(rule(Status="Disabled", Expiration={"Days": 1}))
    assert actions([obj()], configured, "2030-01-01T00:00:00") == []


def test_the_first_rule_in_order_takes_an_object_two_rules_expire():
    configured = rules(
        rule(ID="late", Filter={"Prefix": "a"}, Expiration={"Days": 1}),
        rule(ID="early", Expiration={"Days": 1}),
    )
    assert actions([obj("a1")], configured, "2030-01-01T00:00:00") == [
        (None, Action.EXPIRE, "late")
    ]
    assert actions([obj("b1")], configured, "2030-01-01T00:00:00") == [
        (None, Action.EXPIRE, "early")
    ]


def test_transitions_are_reported_never_applied_and_never_hold_back_an_expiration():
    move = rule(ID="move", Transitions=[{"Days": 1, "StorageClass": "GLACIER"}])
    configured = rules(move)
    assert actions([obj()], configured, "2030-01-01T00:00:00") == [
        (None, Action.TRANSITION, "move")
    ]
    both = rules(move, rule(ID="gone", Expiration={"Days": 2}))
    assert actions([obj()], both, "2030-01-01T00:00:00") == [(None, Action.EXPIRE, "gone")]


def _history() -> list[V]:
    """Newest first: current v4 (written on the 10th), then v3 (9th), v2 (5th), v1 (1st)."""
    return [
        V("k", "v4", True, 4, False, T("2026-03-10T12:00:00")),
        V("k", "v3", False, 3, False, T("2026-03-09T12:00:00")),
        V("k", "v2", False, 2, False, T("2026-03-05T12:00:00")),
        V("k", "v1", False, 1, False, T("2026-03-01T12:00:00")),
    ]


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        # v3 became noncurrent when v4 was written (10th 12:00): due on the 13th (2 days, up);
        # v2 when v3 was (9th): due the 12th; v1 when v2 was (5th): due the 8th.
        ("2026-03-07T23:59:59", []),
        ("2026-03-08T00:00:00", ["v1"]),
        ("2026-03-12T00:00:00", ["v2", "v1"]),
        ("2026-03-13T00:00:00", ["v3", "v2", "v1"]),
    ],
)
def test_noncurrent_age_counts_from_the_successors_creation(now, expired):
    configured = rules(rule(NoncurrentVersionExpiration={"NoncurrentDays": 2}))
    found = actions(_history(), configured, now)
    assert found == [(v, Action.EXPIRE_NONCURRENT, "r") for v in expired]


def test_newer_noncurrent_versions_keeps_the_newest_whatever_their_age():
    configured = rules(
        rule(NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 2})
    )
    found = actions(_history(), configured, "2030-01-01T00:00:00")
    assert found == [("v1", Action.EXPIRE_NONCURRENT, "r")]  # v3 and v2 kept


def test_expiration_touches_only_the_current_version_of_a_versioned_key():
    configured = rules(rule(Expiration={"Days": 1}))
    found = actions(_history(), configured, "2030-01-01T00:00:00")
    assert found == [("v4", Action.EXPIRE, "r")]


def test_versioning_suspended_null_versions_are_versions_like_any_other():
    history = [
        V("k", "null", True, 4, False, T("2026-03-10T00:00:00")),
        V("k", "v1", False, 1, False, T("2026-03-01T00:00:00")),
    ]
    configured = rules(
        rule(ID="cur", Expiration={"Days": 1}),
        rule(ID="old", NoncurrentVersionExpiration={"NoncurrentDays": 1}),
    )
    found = actions(history, configured, "2030-01-01T00:00:00")
    assert found == [("null", Action.EXPIRE, "cur"), ("v1", Action.EXPIRE_NONCURRENT, "old")]


def _marked(*noncurrent: str) -> list[V]:
    marker = V("k", "dm", True, None, True, T("2026-03-10T00:00:00"))
    return [marker, *(V("k", v, False, 1, False, T("2026-03-01T00:00:00")) for v in noncurrent)]


def test_a_lone_delete_marker_is_removed_by_expired_object_delete_marker():
    configured = rules(rule(Expiration={"ExpiredObjectDeleteMarker": True}))
    assert actions(_marked(), configured, "2026-03-10T00:00:01") == [
        ("dm", Action.REMOVE_MARKER, "r")
    ]
    assert actions(_marked("v1"), configured, "2030-01-01T00:00:00") == []  # not alone


def test_a_lone_delete_marker_is_removed_by_days_once_it_is_old_enough():
    configured = rules(rule(Expiration={"Days": 5}))
    assert actions(_marked(), configured, "2026-03-14T23:59:59") == []
    assert actions(_marked(), configured, "2026-03-15T00:00:00") == [
        ("dm", Action.REMOVE_MARKER, "r")
    ]


def test_a_delete_marker_whose_only_versions_expire_in_the_same_run_goes_too():
    configured = rules(
        rule(ID="old", NoncurrentVersionExpiration={"NoncurrentDays": 1}),
        rule(ID="dm", Expiration={"ExpiredObjectDeleteMarker": True}),
    )
    found = actions(_marked("v1", "v0"), configured, "2030-01-01T00:00:00")
    assert found == [
        ("v1", Action.EXPIRE_NONCURRENT, "old"),
        ("v0", Action.EXPIRE_NONCURRENT, "old"),
        ("dm", Action.REMOVE_MARKER, "dm"),
    ]
    kept = rules(
        rule(ID="old", NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}),
        rule(ID="dm", Expiration={"ExpiredObjectDeleteMarker": True}),
    )  # fmt: skip
    assert actions(_marked("v1", "v0"), kept, "2030-01-01T00:00:00") == [
        ("v0", Action.EXPIRE_NONCURRENT, "old")
    ]


def test_noncurrent_delete_markers_expire_as_noncurrent_versions():
    history = [
        V("k", "v2", True, 1, False, T("2026-03-10T00:00:00")),
        V("k", "dm", False, None, True, T("2026-03-05T00:00:00")),
        V("k", "v1", False, 1, False, T("2026-03-01T00:00:00")),
    ]
    configured = rules(rule(NoncurrentVersionExpiration={"NoncurrentDays": 1}))
    found = actions(history, configured, "2030-01-01T00:00:00")
    assert found == [("dm", Action.EXPIRE_NONCURRENT, "r"), ("v1", Action.EXPIRE_NONCURRENT, "r")]


def test_tags_are_read_only_where_they_decide_something():
    configured = rules(
        rule(ID="t", Filter={"And": {"Prefix": "a/", "Tags": [{"Key": "t", "Value": "1"}]}},
             Expiration={"Days": 10}),
    )  # fmt: skip
    young = V("a/young", None, True, 1, False, T("2026-03-09T00:00:00"))
    old = V("a/old", None, True, 1, False, T("2026-01-01T00:00:00"))
    elsewhere = V("b/old", None, True, 1, False, T("2026-01-01T00:00:00"))
    now = T("2026-03-10T00:00:00")
    assert tags_needed([young], configured, now) == []  # not due whatever its tags
    assert tags_needed([old], configured, now) == [old]
    assert tags_needed([elsewhere], configured, now) == []  # prefix fails first
    assert tags_needed([old], rules(rule(Expiration={"Days": 1})), now) == []  # no tag rule


def test_uploads_abort_by_initiation_and_prefix():
    configured = rules(
        rule(ID="a", Filter={"Prefix": "tmp/"}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2}),
        rule(ID="off", Status="Disabled", AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
    )  # fmt: skip
    started = T("2026-03-01T12:00:00")
    assert abort_due(configured, "tmp/x", started, T("2026-03-03T23:59:59")) is None
    assert abort_due(configured, "tmp/x", started, T("2026-03-04T00:00:00")).id == "a"
    assert abort_due(configured, "keep/x", started, T("2030-01-01T00:00:00")) is None


def test_rules_without_an_id_are_named_by_position_and_the_older_prefix_form_works():
    configured = parse_configuration(
        '{"Rules": [{"Status": "Enabled", "Prefix": "p/", "Expiration": {"Days": 1}}]}'
    )
    assert configured[0].id == "rule-1" and configured[0].filter.prefix == "p/"


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        (r'{"Rules": [{"ID": "\u0000", "Status": "Enabled"}]}', "needs a Filter"),
        ({"Rules": []}, "Rules"),
        ({"Rules": [rule(Expire={"Days": 1})]}, "rule 'r' (Rules[0]): Expire"),
        ({"Rules": [{"ID": "x", "Status": "Enabled", "Expiration": {"Days": 1}}]}, "rule 'x'"),
        ({"Rules": [rule(Status="On", Expiration={"Days": 1})]}, "Status"),
        ({"Rules": [rule()]}, "at least one action"),
        ({"Rules": [rule(Expiration={"Days": 0})]}, "Expiration.Days"),
        ({"Rules": [rule(Expiration={"Days": 1, "Date": "2026-01-01T00:00:00Z"})]}, "exactly one"),
        ({"Rules": [rule(Expiration={"Date": "2026-01-01T10:00:00Z"})]}, "midnight"),
        ({"Rules": [rule(Expiration={"Date": "not a date"})]}, "Date"),
        ({"Rules": [rule(Filter={"Prefix": "a", "ObjectSizeLessThan": 4}, Expiration={"Days": 1})]},
         "one of its fields"),
        ({"Rules": [rule(Filter={"Tag": {"Key": "t", "Value": "v"}},
                         Expiration={"ExpiredObjectDeleteMarker": True})]}, "tag filter"),
        ({"Rules": [rule(NoncurrentVersionExpiration={"NoncurrentDays": 1,
                                                      "NewerNoncurrentVersions": 0})]},
         "NewerNoncurrentVersions"),
        ({"Rules": [rule(Expiration={"Days": 1}), rule(Expiration={"Days": 2})]}, "ID used twice"),
        ({"Rules": [rule(Filter={}, Prefix="", Expiration={"Days": 1})]}, "not both"),
        ({"Rules": [rule(Expiration={"Days": 1}, ID="x" * 256)]}, "ID"),
        ({"Rules": [rule(Expiration={"Days": 1})] * 1001}, "Rules"),
    ],
)  # fmt: skip
def test_configurations_s3_refuses_are_refused_naming_the_rule(document, names):
    with pytest.raises(LifecycleError) as caught:
        parse_configuration(document)
    assert names in str(caught.value)
