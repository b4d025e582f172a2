"""BatchedLookup: lookups asked at once share a query; those asked while it runs share the next."""

from __future__ import annotations

import asyncio

import pytest

from libs.application.batched_lookup import BatchedLookup


class Table:
    """A fetch that answers from a dict, records each query's keys, and can be held or made to fail."""

    def __init__(self, rows: dict[str, int]):
        self.rows = rows
        self.queries: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.queries.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away")
        return {k: self.rows[k] for k in keys if k in self.rows}


async def test_lookups_asked_at_once_share_one_query_and_each_gets_its_own_answer():
    table = Table({"a": 1, "b": 2})
    lookup = BatchedLookup(table.fetch, 0)
    answers = await asyncio.gather(*(lookup.get(k) for k in ["a", "b", "a", "zz"]))
    assert answers == [1, 2, 1, 0]  # a key the fetch leaves out is answered `missing`
    assert table.queries == [["a", "b", "zz"]]  # each key asked once, however many wait for it
    assert (lookup.lookups, lookup.queries) == (4, 1)


async def test_lookups_asked_while_a_query_runs_go_together_in_the_next():
    table = Table({str(n): n for n in range(10)})
    table.gate = asyncio.Event()
    lookup = BatchedLookup(table.fetch, -1)
    first = asyncio.ensure_future(lookup.get("0"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(lookup.get(str(n))) for n in range(1, 10)]
    await asyncio.sleep(0)
    table.gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == list(range(1, 10))
    assert table.queries == [["0"], [str(n) for n in range(1, 10)]]


async def test_a_failed_query_fails_its_own_lookups_only():
    table = Table({"a": 1, "b": 2})
    table.gate = asyncio.Event()
    table.fail_next = True
    lookup = BatchedLookup(table.fetch, 0)
    first = asyncio.ensure_future(lookup.get("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = asyncio.ensure_future(lookup.get("b"))
    await asyncio.sleep(0)
    table.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert await second == 2
    assert await lookup.get("a") == 1  # and the lookup goes on working


async def test_no_query_is_larger_than_max_keys():
    table = Table({str(n): n for n in range(25)})
    lookup = BatchedLookup(table.fetch, -1, max_keys=10)
    assert await asyncio.gather(*(lookup.get(str(n)) for n in range(25))) == list(range(25))
    assert [len(q) for q in table.queries] == [10, 10, 5]


async def test_a_caller_that_gives_up_leaves_the_others_answered():
    table = Table({"a": 1, "b": 2})
    table.gate = asyncio.Event()
    lookup = BatchedLookup(table.fetch, 0)
    quitter = asyncio.ensure_future(lookup.get("a"))
    stayer = asyncio.ensure_future(lookup.get("b"))
    await asyncio.sleep(0)
    quitter.cancel()
    table.gate.set()
    assert await stayer == 2
    with pytest.raises(asyncio.CancelledError):
        await quitter
