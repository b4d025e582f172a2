"""The membership fold as stored rows agrees with the room, batch after batch.

Presence's board rows and the media relay's admission rows are written per batch from the rows
the batch touches (`libs.projection.member_rows.fold_batch`), so a bug in loading or storing an
entry would show only across batch boundaries, never in the in-memory fold the unit property
test checks (tests/unit/membership/test_one_fold.py). Here the same generated histories (the
room's and moderation's own deciders) are applied to both views in real PostgreSQL in batches of
random sizes, as the durable runner would, and after every batch a replica's cache loaded from
the rows alone answers as the room and moderation say: who is in, in which role, with a raised
hand, muted, who may listen and who may be heard. A Space that is over is not loaded, is found
over in its rows, and keeps no member rows.
"""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.media_relay.domain.admission import Admission
from services.media_relay.projections.space_media import SpaceMediaView
from services.media_relay.projections.space_media_rows import SpaceMediaRows
from services.presence.projections.space_board import SpaceBoard
from services.presence.projections.space_board_rows import SpaceBoardRows
from tests.support.schemas import emptied
from tests.unit.membership.test_one_fold import check_presence, check_relay, consumed, history, steps
from tests.unit.room.given import HOST, SPACE
from tests.unit.room.test_invariants import limits, started

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(private_database_url):
    pool = await asyncpg.create_pool(private_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, limits, started, st.lists(st.integers(1, 15), min_size=1, max_size=30))
async def test_a_cache_loaded_from_the_rows_agrees_with_the_room_after_every_batch(
    pool, sequence, room_limits, start, sizes
):
    log = history(sequence, room_limits, start)
    events = [consumed(moment, offset) for offset, moment in enumerate(log, start=1)]
    # Each view in its service's schema of a migrated database of the test's own, emptied.
    board_rows = SpaceBoardRows(pool, await emptied(pool, "presence", SpaceBoardRows.tables))
    media_rows = SpaceMediaRows(pool, await emptied(pool, "media_relay", SpaceMediaRows.tables))
    done, turn = 0, 0
    while done < len(events):
        batch = events[done : done + sizes[turn % len(sizes)]]
        turn += 1
        async with pool.acquire() as conn, conn.transaction():
            await board_rows.apply(conn, batch)
            await media_rows.apply(conn, batch)
        done += len(batch)
        room, mod = log[done - 1].room, log[done - 1].moderation
        board, relay = SpaceBoard(board_rows), SpaceMediaView(media_rows)
        async with pool.acquire() as conn:
            await board.load(conn)
            await relay.load(conn)
        if room.is_over:
            assert not board.holds(SPACE) and not relay.holds(SPACE)
            assert await relay.admit_opening(SPACE, HOST) is Admission.ENDED
            assert (await board_rows.states_of([SPACE]))[SPACE] == room.state
        else:
            check_presence(board, room, mod)
            check_relay(relay, room, mod)
    if log[-1].room.is_over:
        for rows in (board_rows, media_rows):
            table = rows.members.table
            assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
