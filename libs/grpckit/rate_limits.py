"""Per-user rate limits on the calls people could use to flood a Space or its hosts.

Token buckets, one per (action, user): `per_minute` calls a minute on average,
bursts of up to `per_minute`. A call over the limit is RESOURCE_EXHAUSTED with
a RetryInfo saying when to try again. The buckets live in the replica's
memory, so with N replicas behind a round-robin balancer a user gets up to N
times the limit; that bounds abuse without a shared store on the hot path.
Idle buckets (full again) are dropped, so memory follows active users only.

A call the domain rejects (not in the Space yet, not allowed, ...) changed
nothing, so `charge` gives its token back: a client that retries while a view
catches up is not locked out by its own refused attempts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping

from libs.domain.errors import DomainError, ResourceExhausted
from libs.domain.reasons import Reason

JOIN, REPORT, SPEAK_REQUEST, INVITE = "join", "report", "speak_request", "invite"


class RateLimited(ResourceExhausted):
    def __init__(self, action: str, per_minute: int, retry_after_seconds: float):
        super().__init__(
            f"too many {action.replace('_', ' ')} calls: at most {per_minute} a minute; "
            f"retry in {retry_after_seconds:.1f} s",
            reason=Reason.RATE_LIMITED,
            metadata={"action": action, "per_minute": str(per_minute)},
            retry_after_seconds=retry_after_seconds,
        )


class RateLimiter:
    def __init__(self, per_minute: Mapping[str, int], clock: Callable[[], float] = time.monotonic):
        self.per_minute = dict(per_minute)
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)

    def take(self, action: str, user_id: str) -> None:
        """Spends one call of `action` for `user_id`, or raises RateLimited. 0 means unlimited."""
        limit = self.per_minute.get(action, 0)
        if limit <= 0:
            return
        now, key, rate = self.clock(), (action, user_id), limit / 60.0
        tokens, at = self._buckets.get(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(action, limit, (1.0 - tokens) / rate)
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._forget_idle(now)

    @contextlib.contextmanager
    def charge(self, action: str, user_id: str) -> Iterator[None]:
        """Takes one call of `action` for the block; gives it back if the domain rejects the call."""
        self.take(action, user_id)
        try:
            yield
        except DomainError:
            self._refund(action, user_id)
            raise

    def _refund(self, action: str, user_id: str) -> None:
        limit, key = self.per_minute.get(action, 0), (action, user_id)
        if limit > 0 and key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(float(limit), tokens + 1.0), at)

    def _forget_idle(self, now: float) -> None:
        for key, (tokens, at) in list(self._buckets.items()):
            limit = self.per_minute.get(key[0], 0)
            if tokens + (now - at) * limit / 60.0 >= limit:
                del self._buckets[key]


def rate_limiter(settings) -> RateLimiter:
    """The limits from settings (`PODIUM_RATE_LIMIT_*_PER_MINUTE`)."""
    return RateLimiter(
        {
            JOIN: settings.rate_limit_joins_per_minute,
            REPORT: settings.rate_limit_reports_per_minute,
            SPEAK_REQUEST: settings.rate_limit_speak_requests_per_minute,
            INVITE: settings.rate_limit_invites_per_minute,
        }
    )
