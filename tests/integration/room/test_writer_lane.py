"""Room replicas claiming writer lanes (ADR 0018) as advisory locks on sessions of their own,
against real PostgreSQL: each live replica holds a different lane, one beyond the lanes holds
none, and a lane let go (its replica stopped, or its session gone) is taken by the next claim."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.room.application.writer_lane import WriterLane

pytestmark = pytest.mark.integration


async def _until(predicate, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.02)


async def _holder(conn: asyncpg.Connection, key: str) -> int | None:
    """The backend holding advisory lock `key` (taken as `pg_try_advisory_lock(hashtext(key))`)."""
    return await conn.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint",
        key,
    )


async def test_replicas_hold_different_lanes_and_a_lane_let_go_is_taken_again(private_database_url):
    lanes = [WriterLane(private_database_url, "room", 2, check_seconds=0.1) for _ in range(3)]
    try:
        for lane in lanes:
            await lane.start()
        assert [lane() for lane in lanes] == [
            0,
            1,
            None,
        ]  # more replicas than lanes: the third writes anywhere

        await lanes[0].stop()  # a replica that stops lets its lane go
        assert lanes[0]() is None
        await _until(lambda: lanes[2]() == 0)

        # A session that ends under a replica (the database restarted, a connection killed) loses
        # its lane; the replica notices and claims it again on a new session.
        admin = await asyncpg.connect(private_database_url)
        try:
            holder = await _holder(admin, lanes[1].lock_key(1))
            assert holder is not None
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", holder)
            async with asyncio.timeout(5):
                while await _holder(admin, lanes[1].lock_key(1)) in (None, holder):
                    await asyncio.sleep(0.05)
        finally:
            await admin.close()
        assert lanes[1]() == 1
    finally:
        for lane in lanes:
            await lane.stop()


async def test_one_lane_is_no_lane_to_hold(private_database_url):
    lane = WriterLane(private_database_url, "room", 1)
    await lane.start()
    try:
        assert lane() is None
    finally:
        await lane.stop()
