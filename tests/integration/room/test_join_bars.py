"""What a join asks of moderation's view, against a real PostgreSQL: joins asking at once share one
query, and each gets the answer for its own Space and user."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.room.projections.moderation_reactions import ModerationReactions
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration


async def test_joins_asking_at_once_share_a_query_and_each_gets_its_own_bars(database_url):
    schema = await migrated_schema(database_url, "room", "bars")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.execute(
            f"INSERT INTO {schema}.barred_v1 VALUES ('s1', 'banned'), ('s2', 'other');"
            f"INSERT INTO {schema}.blocks_v1 VALUES ('blocked', 'host-1'), ('blocked', 'host-2'),"
            " ('banned', 'host-3')"
        )
        view = ModerationReactions(pool, commands=None, schema=schema)  # bars reads; it commands nothing
        asked = [("s1", "banned"), ("s2", "banned"), ("s1", "blocked"), ("s1", "free"), ("s2", "other")]
        asked += [("s1", f"listener-{n}") for n in range(200)]
        answers = await asyncio.gather(*(view.bars(space, user) for space, user in asked))
        assert answers[:5] == [
            (True, frozenset({"host-3"})),  # barred from s1, and blocked by host-3
            (False, frozenset({"host-3"})),  # a bar holds in its own Space only
            (False, frozenset({"host-1", "host-2"})),
            (False, frozenset()),
            (True, frozenset()),
        ]
        assert set(answers[5:]) == {(False, frozenset())}
        assert view._bars.queries == 1 and view._bars.lookups == len(asked)
    finally:
        await pool.close()
