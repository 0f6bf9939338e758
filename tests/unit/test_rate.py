"""The pace `rateLimit` sets (engine/limits.TokenBucket), on a clock the test holds."""

from __future__ import annotations

import pytest

from bucketjobs.engine.limits import TokenBucket


def test_a_single_batch_waits_until_its_last_operation_may_start():
    # 60 objects at 3 per second, listed as one page: about 20 s, not at once.
    assert TokenBucket(3.0, now=0.0).book(60, now=0.0) == pytest.approx(59 / 3)


def test_batches_never_start_more_than_the_rate_allows():
    rate, bucket, now, started = 500.0, TokenBucket(500.0, now=0.0), 0.0, 0
    for count in (1000, 1000, 1000, 7, 1):
        now += bucket.book(count, now=now)
        started += count
        assert started <= 1 + rate * now + 1e-9
    assert now == pytest.approx((3008 - 1) / rate)


def test_one_by_one_is_evenly_spaced_and_idle_time_is_not_banked():
    bucket = TokenBucket(10.0, now=0.0)
    assert [bucket.book(1, now=0.0) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    # After a long pause the next operation starts at once, and the one after waits again.
    assert bucket.book(1, now=100.0) == 0.0
    assert bucket.book(1, now=100.0) == pytest.approx(0.1)
