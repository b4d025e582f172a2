"""The directory of a Space whose listeners are on shard streams (ADR 0012), against real PostgreSQL.

Histories come from the room's own `decide` (tests/unit/membership/test_one_fold.py). Each is
written to the room's event store as listener shards would lay it out: the Space's own stream,
with a `ListenerShardsGrown` after its creation, and every join and leave on its user's shard
(tests/support/sharded_log.py). The directory applies it in batches as its durable runner would:
each batch in one transaction with the tracking of the versions it applied, a writer restarted
part way (its cache empty) and a writer whose cache holds a single Space, so a shard's event
often comes to a Space the view must fold again from the store. After every batch its row says
what the room's `evolve` says of the same events in the room's order, and the Space's version is
its own stream's.
"""

from __future__ import annotations

import random

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from libs.events.envelope import Causation
from libs.events.topics import ROOM_EVENTS
from libs.eventstore.store import EventStore, NewEvent
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Tracking
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.evolve import evolve, replace
from services.room.domain.state import INITIAL
from services.room.domain.view import space_view
from services.room.projections.space_directory import SpaceDirectory
from tests.support.schemas import emptied, migrated_schema
from tests.support.sharded_log import merged, on_streams
from tests.unit.membership.test_one_fold import history, steps
from tests.unit.room.given import SPACE
from tests.unit.room.test_invariants import limits, started

pytestmark = pytest.mark.integration

CAUSE = Causation("someone", "c", "c")
TABLES = ("events", "outbox", "view_streams", "space_directory_v2")


@pytest.fixture
async def pool(private_database_url):
    pool = await asyncpg.create_pool(private_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(private_database_url):
    return await migrated_schema(private_database_url, "room", prefix="shards")


async def _written(store: EventStore, history_: list, shards: int) -> tuple[list[ConsumedEvent], list]:
    """The history appended to the store on its streams (in the room's order), as consumed events,
    and the room's state after each of them (its version: the Space's own stream's)."""
    created, *rest = history_
    items = [(created.event, created.at), (ev.ListenerShardsGrown(space_id=SPACE, shards=shards), created.at)]
    items += [(m.event, m.at) for m in rest]
    consumed, expected = [], []
    state, own = INITIAL, 0
    for offset, item in enumerate(on_streams(SPACE, items, shards)):
        (envelope,) = await store.append(
            stream_id=item.stream_id,
            space_id=SPACE,
            topic=ROOM_EVENTS.name,
            expected_version=item.version - 1,
            events=[NewEvent(item.payload, item.at, CAUSE)],
        )
        consumed.append(ConsumedEvent(envelope, item.payload, ROOM_EVENTS.name, 0, offset))
        own += item.stream_id == f"space-{SPACE}"
        state = replace(evolve(state, item.payload, item.at), version=own)
        expected.append(state)
    return consumed, expected


async def _apply(pool, schema: str, view: SpaceDirectory, batch: list[ConsumedEvent]) -> None:
    tracking = Tracking(schema, view.name, view.version)
    async with pool.acquire() as conn, conn.transaction():
        await view.apply(conn, batch)
        await tracking.record(
            conn, {}, {("room", e.envelope.stream_id): e.envelope.stream_version for e in batch}
        )
    view.committed(batch)


async def _row(pool, schema: str) -> types.Space:
    space = await pool.fetchval(f"SELECT space FROM {schema}.space_directory_v2 WHERE space_id = $1", SPACE)
    return types.Space.FromString(space)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps, limits, started, st.sampled_from([2, 4, 8]), st.lists(st.integers(1, 12), min_size=1, max_size=20)
)
async def test_a_space_on_listener_shards_reads_as_the_room_folds_it(
    pool, schema, sequence, room_limits, start, shards, sizes
):
    await emptied(pool, schema, TABLES)
    store = EventStore(pool, schema, producer="room")
    events, expected = await _written(
        store, [m for m in history(sequence, room_limits, start) if m.topic == ROOM_EVENTS.name], shards
    )
    assume(len({e.envelope.stream_id for e in events}) > 1)  # some join is on a shard
    view = SpaceDirectory(pool, store, schema, cache_spaces=1)
    done, turn = 0, 0
    while done < len(events):
        turn += 1
        if turn == 3:
            view = SpaceDirectory(pool, store, schema, cache_spaces=1)  # a restart: nothing in memory
        batch = events[done : done + sizes[turn % len(sizes)]]
        await _apply(pool, schema, view, batch)
        done += len(batch)
        assert await _row(pool, schema) == space_view(expected[done - 1])
    if turn >= 3:  # the restarted writer folded the Space again from the store
        assert view.loaded_from_store >= 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, limits, started, st.sampled_from([2, 4]), st.integers(0, 2**32))
async def test_streams_interleaved_in_any_order_settle_on_the_same_counts(
    pool, schema, sequence, room_limits, start, shards, seed
):
    """A partition holds the Space's streams in whatever order their relays published them. Who is
    in settles whatever the order. Who of them is a voice may not: a promotion folded after the
    user's shard leave (and rejoin) lists them again until the room tidies up (ADR 0012, not built
    yet), so the listener count is compared only for histories that promote nobody."""
    await emptied(pool, schema, TABLES)
    store = EventStore(pool, schema, producer="room")
    events, expected = await _written(
        store, [m for m in history(sequence, room_limits, start) if m.topic == ROOM_EVENTS.name], shards
    )
    rng = random.Random(seed)
    by_stream = merged([_Keyed(e) for e in events], rng)
    view = SpaceDirectory(pool, store, schema, cache_spaces=1)
    for i in range(0, len(by_stream), 5):
        if i == 10:
            view = SpaceDirectory(pool, store, schema, cache_spaces=1)
        await _apply(pool, schema, view, [k.event for k in by_stream[i : i + 5]])
    row, room = await _row(pool, schema), space_view(expected[-1])
    settled = ["state", "host_user_id", "participant_count"]
    if not any(isinstance(e.payload, ev.SpeakerAdded | ev.CoHostAdded) for e in events):
        settled.append("listener_count")
    for name in settled:
        assert getattr(row, name) == getattr(room, name), name
    assert row.version == room.version


class _Keyed:
    """A consumed event as `merged` takes it: by its stream."""

    def __init__(self, event: ConsumedEvent):
        self.event, self.stream_id, self.payload = event, event.envelope.stream_id, event.payload
