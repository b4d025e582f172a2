"""Reads on a request's path that may be a moment old: one read per key per `max_age`.

A join storm into one Space asks the same stream the same question hundreds of times a second:
what is the Space's policy, who is in through another replica's shard. Each caller can live with
an answer read at most `max_age` ago, so `RecentReads.get` hands out the last read of its key while
it is that young, and otherwise starts one read that every caller arriving meanwhile waits on.
Under load a key costs one round trip per `max_age`, whatever the number of callers.

A failed read fails the callers waiting on it, and only those: the next caller reads again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentReads(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]], max_age: float, *, max_keys: int = 10_000):
        self.read = read
        self.max_age = max_age
        self.max_keys = max_keys
        self._reads: dict[K, tuple[float, asyncio.Future]] = {}  # key -> (when its read began, the read)

    async def get(self, key: K) -> V:
        """`key`'s value as read at most `max_age` ago (or by a read that is under way)."""
        now = time.monotonic()
        began, reading = self._reads.get(key, (0.0, None))
        if reading is None or (reading.done() and now - began > self.max_age):
            if len(self._reads) > self.max_keys:  # keys read once, long ago
                self._reads = {k: r for k, r in self._reads.items() if now - r[0] <= self.max_age}
            reading = asyncio.ensure_future(self.read(key))
            # A failure is raised to the calls waiting on it; marked retrieved, it is not logged too.
            reading.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._reads[key] = (now, reading)
        try:
            return await asyncio.shield(reading)
        except Exception:
            if self._reads.get(key, (0.0, None))[1] is reading:
                del self._reads[key]  # the next call reads again
            raise
