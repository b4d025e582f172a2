"""Replay's catalog of a Space whose listeners join and leave on shard streams (ADR 0012), against
real PostgreSQL.

Each of a Space's streams numbers its events from 1, and a partition interleaves them. The catalog
is given them as its durable runner gives them: through the runner's gate (`StreamGate`, by producer
and stream), which drops what was delivered twice and keeps each stream's order, in batches of one
transaction each, by a writer whose cache holds every Space or none, and that restarts part way.
Its rows then say what the room's events say folded on one stream (`domain.space_facts`).
"""

from __future__ import annotations

import random

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from libs.domain.streams import listener_shard_stream, space_stream
from libs.events.envelope import Causation, wrap
from libs.events.topics import ROOM_EVENTS
from libs.projection.ordering import StreamGate
from libs.projection.runner import ConsumedEvent
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain import space_facts as facts_
from services.replay.domain.audience import visible
from services.replay.projections.replay_catalog import ReplayCatalog
from tests.integration.replay.test_replay_views import Log, apply
from tests.support.schemas import emptied, migrated_schema
from tests.support.sharded_log import OnStream, merged, on_streams
from tests.unit.libs.test_sharded_history import redelivered
from tests.unit.membership.test_one_fold import history, steps
from tests.unit.room.given import SPACE
from tests.unit.room.test_invariants import limits, started

pytestmark = pytest.mark.integration

CAUSE = Causation("someone", "c", "c")


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(pool, database_url):
    name = await migrated_schema(database_url, "replay", "rs")
    yield name
    await pool.execute(f"DROP SCHEMA {name} CASCADE")


def through_the_runner(delivered: list[OnStream]) -> list[ConsumedEvent]:
    """What the durable runner hands its view of `delivered`: its gate's verdicts, by producer and
    stream (libs/projection/durable.py)."""
    gate: StreamGate[ConsumedEvent] = StreamGate()
    out: list[ConsumedEvent] = []
    for offset, item in enumerate(delivered):
        envelope = wrap(
            item.payload, producer="room", stream_id=item.stream_id, version=item.version,
            space_id=SPACE, occurred_at=item.at, causation=CAUSE,
        )  # fmt: skip
        event = ConsumedEvent(envelope, item.payload, ROOM_EVENTS.name, 0, offset)
        out.extend(gate.offer(("room", item.stream_id), item.version, event)[1])
    return out


async def _rows(pool, schema: str, space_id: str):
    row = await pool.fetchrow(f"SELECT * FROM {schema}.replay_catalog_v1 WHERE space_id = $1", space_id)
    members = await pool.fetch(
        f"SELECT user_id, admitted, co_host FROM {schema}.replay_audience_v1 WHERE space_id = $1", space_id
    )
    admitted = {m["user_id"] for m in members if m["admitted"]}
    return row, admitted, {m["user_id"] for m in members if m["co_host"]}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, limits, started, st.sampled_from([2, 4, 8]), st.integers(0, 2**32), st.booleans())
async def test_a_sharded_spaces_catalog_rows_are_what_its_events_say_on_one_stream(
    pool, schema, sequence, room_limits, start, shards, seed, interleaved
):
    """In the room's order or any interleaving, each event delivered once or more. Who may see the
    replay is compared whole in the room's order; in others, co-hosts are not: a removal on the user's
    shard may overtake their promotion on the Space's stream, which the room tidies up (ADR 0012)."""
    await emptied(pool, schema, ReplayCatalog.tables)
    room = [(m.event, m.at) for m in history(sequence, room_limits, start) if m.topic == ROOM_EVENTS.name]
    created, at = room[0]
    recorded = rev.SpaceCreated(
        space_id=SPACE, host_user_id=created.host_user_id, title=created.title, recording_enabled=True
    )
    room[0] = (recorded, at)
    log = on_streams(SPACE, room, shards)
    assume(len({item.stream_id for item in log}) > 1)  # someone joined: shards to read
    rng = random.Random(seed)
    order = merged(log, rng) if interleaved else log
    events = through_the_runner(redelivered(order, rng))
    assert [(e.envelope.stream_id, e.envelope.stream_version) for e in events] == [
        (item.stream_id, item.version) for item in order
    ]
    ends: list[str] = []

    async def on_recorded_end(conn, space_id, ended_at):
        ends.append(space_id)

    def writer() -> ReplayCatalog:
        return ReplayCatalog(pool, schema, on_recorded_end=on_recorded_end, cache_spaces=rng.choice([0, 10]))

    catalog, done, turn = writer(), 0, 0
    while done < len(events):
        turn += 1
        if turn == 3:
            catalog = writer()  # a restart: nothing in memory
        batch = events[done : done + rng.randint(1, 12)]
        await apply(pool, catalog, batch)
        done += len(batch)

    facts = facts_.INITIAL
    for event, when in room:
        facts = facts_.evolve(facts, event, when)
    row, admitted, co_hosts = await _rows(pool, schema, SPACE)
    assert (row["host_user_id"], row["title"], row["recording_enabled"], row["cancelled"]) == (
        facts.host_user_id,
        facts.title,
        facts.recording_enabled,
        facts.cancelled,
    )
    assert (row["started_at"], row["ended_at"]) == (facts.started_at, facts.ended_at)
    assert (row["join_policy"], row["invite_only"]) == (
        facts.audience.join_policy,
        facts.audience.invite_only,
    )
    assert admitted == facts.audience.admitted
    if not interleaved:
        assert co_hosts == facts.audience.co_hosts
    assert ends == ([SPACE] if facts.ended_at is not None else [])  # the replay's job, once


async def test_a_shards_events_follow_the_space_in_memory_and_read_its_rows_once_after_a_restart(
    pool, schema
):
    log = Log()
    own, first, second = space_stream("s"), listener_shard_stream("s", 0), listener_shard_stream("s", 1)

    def on(stream: str, payload, seconds: float) -> ConsumedEvent:
        return log.event(ROOM_EVENTS, payload, seconds, stream)

    created = rev.SpaceCreated(
        space_id="s",
        host_user_id="h",
        title="t",
        recording_enabled=True,
        join_policy=rt.JOIN_POLICY_INVITED_ONLY,
    )
    catalog = ReplayCatalog(pool, schema)
    await apply(
        pool,
        catalog,
        [
            on(own, created, 0),
            on(own, rev.SpaceStarted(space_id="s", host_user_id="h"), 1),
            on(first, rev.ParticipantJoined(space_id="s", user_id="h", role=rt.ROLE_HOST), 1),
            on(second, rev.ParticipantJoined(space_id="s", user_id="guest"), 2),
        ],
    )
    await apply(
        pool,
        catalog,
        [
            on(first, rev.ParticipantJoined(space_id="s", user_id="late"), 3),
            on(own, rev.CoHostAdded(space_id="s", user_id="co"), 4),
            on(
                second, rev.ParticipantLeft(space_id="s", user_id="guest", reason=rev.LEAVE_REASON_REMOVED), 5
            ),
        ],
    )
    assert catalog.loaded == 0  # each shard's version 1 and on followed what memory held
    space = await catalog.get("s")
    assert (space.host_user_id, space.title, space.audience.invite_only) == ("h", "t", True)

    restarted = ReplayCatalog(pool, schema)
    await apply(
        pool,
        restarted,
        [
            on(second, rev.ParticipantJoined(space_id="s", user_id="other"), 6),
            on(first, rev.ParticipantLeft(space_id="s", user_id="late", reason=rev.LEAVE_REASON_LEFT), 7),
            on(own, rev.SpaceEnded(space_id="s"), 8),
        ],
    )
    assert restarted.loaded == 1  # a shard's event came first: the rows, once
    for reader, sees in (("h", True), ("co", True), ("late", True), ("other", True), ("guest", False)):
        assert visible((await restarted.get("s", reader)).audience, reader) is sees, reader
    space = await restarted.get("s")
    assert (space.host_user_id, space.title, space.recorded) == ("h", "t", True)
    assert space.started_at is not None and space.ended_at is not None
