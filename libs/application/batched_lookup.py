"""Lookups on a request's path, gathered into one query while one is in flight.

A join storm asks the same question (is this user barred from this Space?) hundreds of times a
second, each a round trip that costs the process more CPU than the answer. `BatchedLookup.get`
queues its key; one task at a time runs `fetch` for every key queued, and the keys that arrive
while it runs go together in the next. Alone, a lookup waits for one turn of the event loop more
than a query of its own; under load, one query answers many. The same commit-grouping as the
command executor's batches, for reads.

A failed `fetch` fails the lookups of its batch, and only those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchedLookup(Generic[K, V]):
    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        missing: V,
        *,
        max_keys: int = 1000,
    ):
        """`fetch(keys)` answers distinct keys (at most `max_keys`) in one query; a key it leaves
        out is answered `missing`."""
        self._fetch = fetch
        self._missing = missing
        self._max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._task: asyncio.Task | None = None
        self.queries = 0
        self.lookups = 0

    async def get(self, key: K) -> V:
        self.lookups += 1
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._answer(), name="batched-lookup")
        return await future

    async def _answer(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self._max_keys]
                batch = {key: self._waiting.pop(key) for key in keys}
                self.queries += 1
                try:
                    found = await self._fetch(keys)
                except Exception as e:
                    for futures in batch.values():
                        _settle(futures, exception=e)
                    continue
                except BaseException:  # cancelled: this batch and those queued behind it
                    for futures in (*batch.values(), *self._waiting.values()):
                        _settle(futures, exception=asyncio.CancelledError())
                    self._waiting.clear()
                    raise
                for key, futures in batch.items():
                    _settle(futures, result=found.get(key, self._missing))
        finally:
            self._task = None


def _settle(futures: list[asyncio.Future], *, result=None, exception: BaseException | None = None) -> None:
    for future in futures:
        if future.done():  # its caller gave up (cancelled)
            continue
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
