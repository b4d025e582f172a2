"""Relevance over a bounded candidate set, against the directory's real table in PostgreSQL.

Ranking scores every row it ranks, so SearchSpaces ranks by relevance only the newest
`relevance_candidates` Spaces that match (a common word matches most of the directory); the
other orders see every match.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.grpckit.pagination import parse_page
from podium.room.v1 import room_types_pb2 as types
from services.room.projections.space_directory import Search, SpaceDirectory
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(pool, database_url):
    name = await migrated_schema(database_url, "room", prefix="search")
    yield name
    await pool.execute(f"DROP SCHEMA {name} CASCADE")


async def _add(pool, schema: str, space_id: str, title: str, minute: int, listeners: int = 0) -> None:
    created = START + timedelta(minutes=minute)
    space = types.Space(space_id=space_id, title=title, host_user_id="host", state=types.SPACE_STATE_LIVE)
    await pool.execute(
        f"""INSERT INTO {schema}.space_directory_v2 (space_id, version, state, host_user_id, created_at,
                starts_at, hosts, co_hosts, speakers, listeners, title, description, topics, language, space)
            VALUES ($1, 1, $2, 'host', $3, $3, 1, 0, 0, $4, $5, '', '{{}}', 'en', $6)""",
        space_id, types.SPACE_STATE_LIVE, created, listeners, title, space.SerializeToString(),
    )  # fmt: skip


async def _search(directory: SpaceDirectory, search: Search, size: int = 10) -> list[str]:
    found, token = [], ""
    while True:
        spaces, token = await directory.search(search, parse_page(size, token, "q"))
        found.extend(s.space_id for s in spaces)
        if not token:
            return found


async def test_relevance_ranks_the_newest_matches_and_other_orders_see_them_all(pool, schema):
    # The two oldest say the word three times (the best matches); of the three newest, one says it
    # twice and two once.
    for n, minute in enumerate((0, 1)):
        await _add(pool, schema, f"old-{n}", "jazz jazz jazz", minute)
    for n, minute in enumerate((10, 11, 12)):
        await _add(
            pool, schema, f"new-{n}", "jazz talk jazz" if n == 0 else "jazz talk", minute, listeners=n + 1
        )
    await _add(pool, schema, "other", "rock", 20)
    directory = SpaceDirectory(pool, store=None, schema=schema, relevance_candidates=3)  # type: ignore[arg-type]

    ranked = await _search(directory, Search(words="jazz"), size=2)  # paged: keyset over the rank
    assert ranked == ["new-0", "new-2", "new-1"]  # the better match first, then ties by id

    by_listeners = await _search(directory, Search(words="jazz", order=types.SPACE_ORDER_LISTENERS))
    assert by_listeners[:3] == ["new-2", "new-1", "new-0"]
    assert sorted(by_listeners[3:]) == ["old-0", "old-1"]

    everything = SpaceDirectory(pool, store=None, schema=schema, relevance_candidates=100)  # type: ignore[arg-type]
    assert (await _search(everything, Search(words="jazz")))[:2] == ["old-1", "old-0"]
