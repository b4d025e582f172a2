"""When a failed delivery is tried again: exponential backoff with jitter, up to a limit.

    next_attempt(attempts, policy, now, jitter) -> datetime | None    # None: dead-letter it

Attempt n (1, 2, ...) that fails waits `min(cap, base * 2**(n-1))`, of which
the second half is random ("equal jitter": between half and all of it), so
endpoints that failed together are not retried in lock step, and none is
retried sooner than half its backoff. After `max_attempts` failures the
delivery is dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta
    cap: timedelta
    max_attempts: int

    def backoff(self, attempts: int) -> timedelta:
        """The full backoff after the `attempts`-th failure, before jitter."""
        # In float seconds: a timedelta of base * 2**n overflows long before n reaches an attempt
        # limit someone might set.
        doubled = self.base.total_seconds() * 2.0 ** min(attempts - 1, 1000)
        return timedelta(seconds=min(self.cap.total_seconds(), doubled))


def next_attempt(attempts: int, policy: RetryPolicy, now: datetime, jitter: float) -> datetime | None:
    """When to try again after `attempts` failed attempts (`jitter` drawn from [0, 1)), or None
    when that was the last one allowed."""
    if attempts >= policy.max_attempts:
        return None
    full = policy.backoff(attempts)
    return now + full / 2 + (full / 2) * jitter
