"""RecentReads: callers share one read per key while it is younger than max_age."""

from __future__ import annotations

import asyncio

import pytest

from libs.application.recent_reads import RecentReads


class Source:
    def __init__(self):
        self.reads: list[str] = []
        self.value = 0
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def read(self, key: str) -> tuple[str, int]:
        self.reads.append(key)
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("the database went away")
        return key, self.value


async def test_callers_arriving_during_a_read_share_it_and_a_young_read_is_handed_out_again():
    source = Source()
    reads = RecentReads(source.read, max_age=60)
    source.gate.clear()
    waiting = [asyncio.create_task(reads.get("a")) for _ in range(50)]
    await asyncio.sleep(0)
    source.value = 1
    source.gate.set()
    assert {await w for w in waiting} == {("a", 1)}
    source.value = 2
    assert await reads.get("a") == ("a", 1)  # younger than max_age: not read again
    assert await reads.get("b") == ("b", 2)  # each key its own read
    assert source.reads == ["a", "b"]


async def test_a_read_older_than_max_age_is_made_again():
    source = Source()
    reads = RecentReads(source.read, max_age=0.01)
    assert await reads.get("a") == ("a", 0)
    source.value = 1
    await asyncio.sleep(0.02)
    assert await reads.get("a") == ("a", 1)
    assert source.reads == ["a", "a"]


async def test_a_failed_read_fails_its_waiters_only_and_the_next_caller_reads_again():
    source = Source()
    reads = RecentReads(source.read, max_age=60)
    source.fail = True
    source.gate.clear()
    waiting = [asyncio.create_task(reads.get("a")) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    for w in waiting:
        with pytest.raises(ConnectionError):
            await w
    source.fail = False
    assert await reads.get("a") == ("a", 0)
    assert source.reads == ["a", "a"]
