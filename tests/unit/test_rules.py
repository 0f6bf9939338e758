"""Pure rules: states, parameters, page tokens, CSRF, tokens, throttling, counting."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bucketjobs.auth.csrf import CsrfError, CsrfProtector
from bucketjobs.auth.permissions import permissions_for
from bucketjobs.auth.throttle import LoginThrottle
from bucketjobs.auth.tokens import InvalidToken, Session, TokenIssuer
from bucketjobs.clock import Clock, rfc3339_ms
from bucketjobs.engine.planner import partition_end, split_at_key_boundary
from bucketjobs.engine.progress import threshold_crossed
from bucketjobs.engine.shards import shards_of
from bucketjobs.jobs.model import JobState, JobType, can_transition
from bucketjobs.jobs.pages import BadPageToken, PageTokens
from bucketjobs.jobs.params import (
    MetricParams,
    ParamError,
    ReplicateParams,
    ReplicationFilter,
    accept,
    parse,
    valid_bucket_name,
)
from bucketjobs.ops.metrics import count_entries, difference
from bucketjobs.storage.lister import Entry, Page
from bucketjobs.storage.listing import Scope


class FakeClock(Clock):
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now_ts = start

    def timestamp(self) -> float:
        return self.now_ts

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_ts, dt.UTC)


S = JobState


def normalize(job_type: JobType, raw: object) -> dict[str, str]:
    """The stored form of `raw` jobParams."""
    return accept(job_type, raw)[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "current,target,allowed",
    [
        (S.EXAMINING, S.PROCESSING, True),
        (S.EXAMINING, S.EXECUTING, True),
        (S.PROCESSING, S.EXECUTING, True),
        (S.EXECUTING, S.COMPLETE, True),
        (S.EXAMINING, S.CANCELLED, True),
        (S.PROCESSING, S.FAILED, True),
        (S.EXECUTING, S.PROCESSING, False),
        (S.PROCESSING, S.EXAMINING, False),
        (S.EXECUTING, S.EXECUTING, False),
        (S.COMPLETE, S.CANCELLED, False),
        (S.CANCELLED, S.COMPLETE, False),
        (S.FAILED, S.EXECUTING, False),
    ],
)
def test_states_only_move_forward(current, target, allowed):
    assert can_transition(current, target) is allowed


def test_params_normalise_scalars_and_reject_the_rest():
    assert normalize(JobType.METRIC_RECONCILIATION, {"dryRun": True, "failureThreshold": 5}) == {
        "dryRun": "true",
        "failureThreshold": "5",
    }
    assert normalize(JobType.METRIC_RECONCILIATION, None) == {}
    for bad in (
        {"dryRun": "maybe"},
        {"prefix": None},
        {"prefix": {"a": 1}},
        {"prefix": [1]},
        {"destinationBucket": "x"},  # a BATCH_REPLICATE key
        {"maxConcurrency": "1.5"},
        {"failureThreshold": "-1"},
        {"k" * 129: "v"},
        {"prefix": "x" * 4097},
        {f"k{i}": "v" for i in range(65)},
    ):
        with pytest.raises(ParamError):
            normalize(JobType.METRIC_RECONCILIATION, bad)
    with pytest.raises(ParamError, match="replicationFilter"):
        normalize(JobType.BATCH_REPLICATE, {"replicationFilter": "SOME"})
    assert normalize(JobType.LIFECYCLE_UPDATE, {"evaluationTime": "2026-01-01T00:00:00Z"})
    with pytest.raises(ParamError):
        normalize(JobType.LIFECYCLE_UPDATE, {"evaluationTime": "2026-01-01T00:00:00"})


def test_common_params_parse():
    parsed = parse(
        JobType.METRIC_RECONCILIATION, {"dryRun": "TRUE", "prefix": "a/", "rateLimit": "10"}
    )
    assert parsed == MetricParams(prefix="a/", dry_run=True, rate_limit=10.0)
    stored = normalize(
        JobType.BATCH_REPLICATE, {"replicationFilter": "failed", "destinationComponent": 3}
    )
    assert stored == {"replicationFilter": "failed", "destinationComponent": "3"}
    assert parse(JobType.BATCH_REPLICATE, stored) == ReplicateParams(
        replication_filter=ReplicationFilter.FAILED, destination_component=3
    )
    assert parse(JobType.BATCH_REPLICATE, {}).replication_filter is ReplicationFilter.MISSING


@pytest.mark.parametrize(
    "name,ok",
    [("photos", True), ("a.b-c", True), ("ab", False), ("Photos", False), ("a_b", False),
     ("192.168.0.1", False), ("a..b", False), ("-ab", False), ("xn--abc", False), ("a" * 64, False)],
)  # fmt: skip
def test_bucket_names(name, ok):
    assert valid_bucket_name(name) is ok


def test_page_tokens_round_trip_and_detect_tampering():
    pages = PageTokens(b"secret")
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    token = pages.encode((when, 42), {"bucketName": "b"})
    assert pages.decode(token, {"bucketName": "b"}) == [when.isoformat(), 42]
    with pytest.raises(BadPageToken):
        pages.decode(token, {"bucketName": "other"})
    with pytest.raises(BadPageToken):
        PageTokens(b"another secret").decode(token, {"bucketName": "b"})
    body, _, mac = token.partition(".")
    with pytest.raises(BadPageToken):
        pages.decode(body[::-1] + "." + mac, {"bucketName": "b"})


def test_csrf_tokens_are_bound_to_session_and_expire():
    clock = FakeClock()
    csrf = CsrfProtector(b"k" * 32, clock, lifetime=60)
    session, token = csrf.issue()
    assert not set("=;, ") & set(session + token)
    csrf.verify(session, token, token)
    _, other_token = csrf.issue()
    with pytest.raises(CsrfError, match="session"):
        csrf.verify(session, other_token, other_token)
    with pytest.raises(CsrfError, match="header"):
        csrf.verify(session, token, None)
    with pytest.raises(CsrfError, match="match"):
        csrf.verify(session, token, other_token)
    clock.now_ts += 61
    with pytest.raises(CsrfError, match="expired"):
        csrf.verify(session, token, token)
    # Another process with the same secret accepts it (before expiry).
    clock.now_ts -= 61
    CsrfProtector(b"k" * 32, clock).verify(session, token, token)


def test_access_tokens_expire_and_kinds_do_not_mix():
    clock = FakeClock()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = TokenIssuer(key, "urn:test", clock, access_ttl=60)
    session = Session(7, "alice", "s1", 3, "r1")
    issued = issuer.issue(session)
    assert issuer.verify_access(issued["access_token"]) == Session(7, "alice", "s1", 3, "")
    assert issuer.verify_refresh(issued["refresh_token"]) == Session(7, "", "s1", 3, "r1")
    with pytest.raises(InvalidToken):
        issuer.verify_access(issued["refresh_token"])
    clock.now_ts += 61
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify_access(issued["access_token"])
    other = TokenIssuer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), "urn:test", clock
    )
    with pytest.raises(InvalidToken):
        other.verify_access(issuer.issue(session)["access_token"])


def test_login_throttle_backs_off_failures_only():
    clock = FakeClock()
    throttle = LoginThrottle(clock, free_failures=3)
    for _ in range(3):
        assert throttle.retry_after("bob", "10.0.0.9") == 0
        throttle.failed("bob", "10.0.0.9")
    assert throttle.retry_after("bob", "10.0.0.9") > 0
    assert throttle.retry_after("carol", "10.0.0.9") == 0
    clock.now_ts += 400
    assert throttle.retry_after("bob", "10.0.0.9") == 0
    throttle.failed("bob", "10.0.0.9")
    throttle.succeeded("bob", "10.0.0.9")
    assert throttle.retry_after("bob", "10.0.0.9") == 0


def test_an_attacker_elsewhere_never_locks_the_real_user_out():
    clock = FakeClock()
    throttle = LoginThrottle(clock, free_failures=3, free_failures_per_name=10)
    throttle.succeeded("bob", "10.0.0.1")  # bob's own machine
    for _ in range(30):
        throttle.failed("bob", "192.0.2.66")
    assert throttle.retry_after("bob", "192.0.2.66") > 0
    assert throttle.retry_after("bob", "10.0.0.1") == 0


def test_guesses_spread_over_many_addresses_are_slowed_for_unknown_ones(caplog):
    clock = FakeClock()
    throttle = LoginThrottle(clock, free_failures=3, free_failures_per_name=10)
    throttle.succeeded("bob", "10.0.0.1")
    for i in range(10):  # one guess from each of 10 addresses: no pair reaches 3
        throttle.failed("bob", f"192.0.2.{i}")
    assert throttle.retry_after("bob", "192.0.2.200") > 0  # a new address is slowed
    assert throttle.retry_after("bob", "10.0.0.1") == 0  # bob's known address is not
    assert "many addresses" in caplog.text


def test_roles_grant_permissions():
    assert "mapi:users:admin" in permissions_for(["administrator"])
    operator = permissions_for(["operator"])
    assert "mapi:jobs:admin_list" in operator and "mapi:storage:admin" not in operator
    assert permissions_for(["user"]) == [
        "mapi:jobs:create", "mapi:jobs:list", "mapi:jobs:status", "mapi:jobs:cancel",
    ]  # fmt: skip
    assert permissions_for(["nonsense"]) == []


def _entry(key: str, *, latest=True, size=1, marker=False) -> Entry:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Entry(key, "v", latest, size, "e", when, marker)


def test_counting_and_difference():
    page = [
        _entry("a", size=10),
        _entry("a", latest=False, size=3),
        _entry("b", marker=True),
        _entry("b", latest=False, size=5),
    ]
    counts = count_entries(page)
    assert counts == {
        "objectCount": 1, "bytes": 10, "noncurrentVersionCount": 2, "noncurrentBytes": 8,
        "deleteMarkerCount": 1,
    }  # fmt: skip
    assert difference({"objectCount": 3}, {"objectCount": 5})["objectCount"] == -2
    assert set(difference({}, None).values()) == {0}


def test_partition_cut_never_splits_a_key():
    entries = [_entry("a"), _entry("b"), _entry("c"), _entry("c"), _entry("c")]
    assert split_at_key_boundary(entries) == 2
    assert split_at_key_boundary([_entry("z"), _entry("z")]) == 0


def test_partition_cut_by_count_and_by_bytes():
    small = [_entry(f"k{i}", size=1) for i in range(5)]
    assert partition_end(small, 10, None) is None  # too few yet
    assert partition_end(small, 5, None) == 4  # the last key may go on in the next page
    assert partition_end(small, 5, 10**9) == 4  # the byte budget is far: the count decides
    # Sizes 1, 1, 6, 1, 1 with a budget of 8: the third key reaches it; the cut follows it.
    sized = [_entry(k, size=n) for k, n in zip("abcde", (1, 1, 6, 1, 1), strict=True)]
    assert partition_end(sized, 1000, 8) == 3
    assert partition_end(sized[3:], 1000, 8) is None
    assert partition_end(sized, None, 8) == 3 and partition_end(small, None, 8) is None
    # A key whose versions reach the budget keeps them all in the partition it ends.
    versions = [_entry("a", size=9), _entry("a", latest=False, size=9), _entry("b", size=1)]
    assert partition_end(versions, 1000, 8) == 2
    # Reached on the last key: not cut yet (its versions may go on); nor at one key alone.
    assert partition_end(versions[:2], 1000, 8) is None
    assert partition_end([_entry("z")] * 3, 2, None) is None
    # A re-run of failed keys lists no sizes: counted as nothing, cut by count.
    unsized = [Entry.unlisted(k) for k in "abc"]
    assert partition_end(unsized, 1000, 1) is None
    assert partition_end(unsized, 3, 1) == 2


def test_failure_threshold():
    row = SimpleNamespace(processed=300, failed=600)
    assert threshold_crossed(row, 50, final=True)
    assert not threshold_crossed(row, 50, final=False)  # fewer than 1,000 attempted so far
    assert threshold_crossed(SimpleNamespace(processed=900, failed=1100), 50, final=False)
    assert not threshold_crossed(SimpleNamespace(processed=0, failed=0), 0, final=True)


def test_rfc3339_ms():
    value = dt.datetime(2026, 11, 29, 17, 3, 44, 123456, tzinfo=dt.UTC)
    assert rfc3339_ms(value) == "2026-11-29T17:03:44.123Z"
    assert rfc3339_ms(None) is None


def _page(keys: list[str], prefixes: list[str], truncated: bool = False) -> Page:
    entries = [Entry(k, None, True, 1, "e", "", False) for k in keys]
    return Page(entries, truncated, keys[-1] if keys else None, prefixes=prefixes)


def test_shards_follow_the_top_level_prefixes():
    assert shards_of("", _page([], ["a/", "b/"])) == [Scope("a/"), Scope("b/")]
    # Objects beside the prefixes: one more shard, listed with the delimiter.
    assert shards_of("p/", _page(["p/x"], ["p/a/", "p/b/"])) == [
        Scope("p/a/"), Scope("p/b/"), Scope("p/", delimited=True)
    ]  # fmt: skip
    assert shards_of("", _page(["x"], ["a/"])) == [Scope("a/"), Scope("", delimited=True)]


def test_no_split_without_prefixes_or_with_too_many_names():
    assert shards_of("", _page(["x", "y"], [])) == [Scope("")]
    assert shards_of("", _page(["x"], ["a/", "b/"], truncated=True)) == [Scope("")]


def test_a_single_prefix_is_looked_into():
    assert shards_of("", _page([], ["data/"])) is None


def test_key_range_probes_find_where_numbered_and_hashed_keys_differ():
    from bucketjobs.engine.shards import level_probes, range_probes

    # Page 1 of obj-000000000 … obj-000000999: the positions they share, each "just past".
    # Past every key that begins `data/o`, …, `data/obj-000000`: a string that sorts after
    # them all, not the next one (`data/p`), which SeaweedFS skips when it is a directory.
    probes = level_probes("data/", "data/obj-000000000", "data/obj-000000999")
    assert probes[0] == "data/o\U0010ffff" and probes[-1] == "data/obj-000000\U0010ffff"
    assert len(probes) == len("obj-000000")
    # At the level where the keys differ, one probe per character the page uses after the
    # first key's character there: the subtrees obj-00001…, obj-00002…, and so on.
    keys = [f"obj-{i:09d}" for i in range(1000)]
    assert range_probes("", keys, 8)[:3] == ["obj-00001", "obj-00002", "obj-00003"]
    # Every digit after the first key's (the class of the page's characters there), and the
    # letters the page uses: hashes whose first page reached only 0…, 3… and 9….
    hashed = ["0a1f", "0b2e", "3c4d", "9f00"]
    assert range_probes("", hashed, 0) == [*"123456789", *"abcdef"]
    # Names whose first page saw only `logs/a/` and `logs/b/`: every later letter is probed,
    # so `logs/c/`… get ranges of their own.
    named = [f"logs/{d}/{i:03d}" for d in "ab" for i in range(500)]
    assert range_probes("logs/", named, 5) == [f"logs/{c}" for c in "bcdefghijklmnopqrstuvwxyz"]
    assert level_probes("", "z\U0010ffff", "z\U0010ffff") == ["z\U0010ffff", "z" + "\U0010ffff" * 2]


def test_key_ranges_cover_the_listing_once():
    from bucketjobs.engine.shards import Shard, ranges_from

    first = (Entry("a", None, True, 1, "e", "", False),)
    shards = ranges_from(Scope("p/"), ["m", "t"], first)
    assert shards == [
        Shard(Scope("p/"), None, "m", first),
        Shard(Scope("p/"), "m", "t"),
        Shard(Scope("p/"), "t", None),
    ]
    assert ranges_from(Scope(""), []) == [Shard(Scope(""))]


def test_storage_operations_are_a_bounded_set():
    from bucketjobs.metrics import operation

    assert operation("GET", None, {"list-type": "2", "prefix": "x"}, None) == "ListObjectsV2"
    assert operation("GET", None, {"versions": ""}, None) == "ListObjectVersions"
    assert operation("POST", None, {"delete": ""}, None) == "DeleteObjects"
    assert operation("PUT", "k", None, {"X-Amz-Copy-Source": "/b/k"}) == "CopyObject"
    assert operation("PUT", "k", None, {"content-type": "x"}) == "PutObject"
    assert operation("PUT", "k", {"uploadId": "u", "partNumber": "1"}, None) == "UploadPart"
    assert operation("POST", "k", {"uploads": ""}, None) == "CreateMultipartUpload"
    assert operation("HEAD", "k", None, None) == "HeadObject"
    assert operation("PATCH", "k", None, None) == "Other"


def test_log_lines_are_json_with_bound_context_and_masked_secrets(capsys):
    import json as jsonlib
    import logging

    import structlog

    from bucketjobs.logs import configure

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("INFO", json_lines=True)
        with structlog.contextvars.bound_contextvars(job_id=7):
            logging.getLogger("bucketjobs.test").warning("copied %d objects", 3)
            structlog.get_logger("bucketjobs.test").info("login", password="pw", user="ann")
        configure("INFO", json_lines=False)
        logging.getLogger("bucketjobs.test").warning("on a terminal")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()
    first, second, text = capsys.readouterr().err.splitlines()
    line = jsonlib.loads(first)
    assert line["event"] == "copied 3 objects" and line["job_id"] == 7
    assert line["level"] == "warning" and line["logger"] == "bucketjobs.test"
    assert jsonlib.loads(second)["password"] == "***" and "pw" not in second.replace("***", "")
    assert not text.startswith("{") and "on a terminal" in text
