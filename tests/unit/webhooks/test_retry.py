"""The backoff schedule: doubling from the base, capped, half of it jitter, then the dead letter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.webhooks.domain.retry import RetryPolicy, next_attempt

NOW = datetime(2026, 12, 1, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(hours=1), max_attempts=12)


def test_the_backoff_doubles_from_the_base_up_to_the_cap():
    seconds = [POLICY.backoff(n).total_seconds() for n in range(1, 12)]
    assert seconds == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]


def test_without_jitter_the_wait_is_half_the_backoff_and_with_the_most_all_of_it():
    assert next_attempt(1, POLICY, NOW, 0.0) == NOW + timedelta(seconds=5)
    assert next_attempt(3, POLICY, NOW, 0.5) == NOW + timedelta(seconds=30)
    assert next_attempt(11, POLICY, NOW, 0.0) == NOW + timedelta(minutes=30)


def test_the_last_attempt_allowed_dead_letters_the_delivery():
    assert next_attempt(11, POLICY, NOW, 0.3) is not None
    assert next_attempt(12, POLICY, NOW, 0.3) is None
    assert next_attempt(1, RetryPolicy(timedelta(seconds=1), timedelta(seconds=1), 1), NOW, 0.0) is None


@given(attempts=st.integers(1, 500), jitter=st.floats(0, 1, exclude_max=True))
def test_each_wait_lies_between_half_and_all_of_its_backoff_and_never_beyond_the_cap(attempts, jitter):
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(hours=1), max_attempts=1000)
    at = next_attempt(attempts, policy, NOW, jitter)
    assert at is not None
    full = policy.backoff(attempts)
    assert NOW + full / 2 <= at <= NOW + full <= NOW + policy.cap
