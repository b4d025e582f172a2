"""Token buckets per user and action, on a clock the test controls."""

import pytest

from libs.grpckit.errors import to_status
from libs.grpckit.rate_limits import JOIN, REPORT, RateLimited, RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_burst_up_to_the_limit_then_refused_until_the_bucket_refills():
    clock = Clock()
    limits = RateLimiter({JOIN: 3}, clock)
    for _ in range(3):
        limits.take(JOIN, "ana")
    with pytest.raises(RateLimited) as refused:
        limits.take(JOIN, "ana")
    assert refused.value.code == "RESOURCE_EXHAUSTED" and refused.value.reason == "RATE_LIMITED"
    assert refused.value.retry_after_seconds == pytest.approx(20.0)  # 3 a minute: one every 20 s
    assert "at most 3 a minute" in refused.value.message
    limits.take(JOIN, "ben")  # other users have their own bucket
    clock.now += 19.9
    with pytest.raises(RateLimited):
        limits.take(JOIN, "ana")
    clock.now += 0.2
    limits.take(JOIN, "ana")


def test_actions_are_limited_separately_and_zero_means_unlimited():
    limits = RateLimiter({JOIN: 1, REPORT: 0}, Clock())
    limits.take(JOIN, "ana")
    for _ in range(1000):
        limits.take(REPORT, "ana")
    with pytest.raises(RateLimited):
        limits.take(JOIN, "ana")


def test_the_status_carries_a_retry_delay():
    limits = RateLimiter({JOIN: 2}, Clock())
    limits.take(JOIN, "ana")
    limits.take(JOIN, "ana")
    with pytest.raises(RateLimited) as refused:
        limits.take(JOIN, "ana")
    status = to_status(refused.value)
    assert status.code.name == "RESOURCE_EXHAUSTED"
    assert any(key == "grpc-status-details-bin" for key, _ in status.trailing_metadata)


def test_idle_buckets_are_forgotten():
    clock = Clock()
    limits = RateLimiter({JOIN: 60}, clock)
    for i in range(100_001):
        limits.take(JOIN, f"user-{i}")
    clock.now += 120
    limits.take(JOIN, "one-more")
    assert len(limits._buckets) <= 2


def test_a_call_the_domain_rejects_gives_its_token_back():
    from libs.domain.errors import FailedPrecondition
    from libs.domain.reasons import Reason

    limits = RateLimiter({REPORT: 2}, Clock())
    for _ in range(5):  # refused while a view catches up: no tokens spent
        with pytest.raises(FailedPrecondition), limits.charge(REPORT, "ana"):
            raise FailedPrecondition("not in the Space yet", reason=Reason.USER_NOT_A_PARTICIPANT)
    for _ in range(2):
        with limits.charge(REPORT, "ana"):
            pass
    with pytest.raises(RateLimited), limits.charge(REPORT, "ana"):
        pass


def test_a_failure_that_is_not_a_rejection_keeps_the_token_spent():
    limits = RateLimiter({REPORT: 1}, Clock())
    with pytest.raises(TimeoutError), limits.charge(REPORT, "ana"):
        raise TimeoutError  # the outcome is unknown: it may have taken effect
    with pytest.raises(RateLimited):
        limits.take(REPORT, "ana")
