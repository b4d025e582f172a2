"""Replay's durable views against real PostgreSQL: the catalog's rows and cache, and each Space's history.

The views are given batches as the durable runner gives them (inside one transaction), without a
broker; tests/integration/replay/test_replay_restart.py runs them in the service, through a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.events.envelope import Causation, wrap
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, REPLAY_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.media.v1 import media_events_pb2 as med
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain.audience import visible
from services.replay.domain.space_at import merge_by_time, state_at
from services.replay.infrastructure.jobs import JobStore
from services.replay.projections.replay_catalog import ReplayCatalog
from services.replay.projections.space_history import SpaceHistory
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


class Log:
    """Events as the runner hands them over: enveloped, with each stream's next version."""

    def __init__(self):
        self.versions: dict[tuple[str, str], int] = {}

    def event(self, topic, payload, seconds: float, stream: str | None = None) -> ConsumedEvent:
        space_id = payload.space_id
        stream = stream or f"{topic.name}-{space_id}"
        version = self.versions[(topic.name, stream)] = self.versions.get((topic.name, stream), 0) + 1
        envelope = wrap(
            payload, producer=topic.name, stream_id=stream, version=version, space_id=space_id,
            occurred_at=at(seconds), causation=Causation("u", "c", "c"),
        )  # fmt: skip
        return ConsumedEvent(envelope, payload, topic.name, 0, version)

    def room(self, payload, seconds: float) -> ConsumedEvent:
        return self.event(ROOM_EVENTS, payload, seconds)

    def replay(self, payload, seconds: float) -> ConsumedEvent:
        return self.event(REPLAY_EVENTS, payload, seconds)


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(pool, database_url):
    name = await migrated_schema(database_url, "replay", "rv")
    yield name
    await pool.execute(f"DROP SCHEMA {name} CASCADE")


async def apply(pool, view, events) -> None:
    """One batch, as the durable runner applies it: one transaction, then `committed`."""
    async with pool.acquire() as conn, conn.transaction():
        await view.apply(conn, events)
    committed = getattr(view, "committed", None)
    if committed is not None:
        committed(events)


def recorded_space(log: Log, space_id: str, host: str, *, policy=rt.JOIN_POLICY_ANYONE, end: float = 10):
    created = rev.SpaceCreated(
        space_id=space_id,
        host_user_id=host,
        title=f"about {space_id}",
        recording_enabled=True,
        join_policy=policy,
    )
    return [
        log.room(created, 0),
        log.room(rev.SpaceStarted(space_id=space_id, host_user_id=host), 1),
        log.room(rev.ParticipantJoined(space_id=space_id, user_id=host, role=rt.ROLE_HOST), 1),
        log.room(rev.ParticipantJoined(space_id=space_id, user_id="guest", role=rt.ROLE_LISTENER), 2),
        log.room(rev.SpaceEnded(space_id=space_id), end),
    ]


async def test_the_catalog_lists_a_hosts_replays_newest_first_and_forgets_ended_spaces(pool, schema):
    log, jobs, queued = Log(), JobStore(pool, schema), []

    async def on_recorded_end(conn, space_id, ended_at):
        queued.append(space_id)
        await jobs.enqueue(space_id, ended_at, ended_at, conn)

    catalog = ReplayCatalog(pool, schema, on_recorded_end=on_recorded_end, on_deleted=_nothing)
    for n, space_id in enumerate(("a", "b", "c")):
        await apply(pool, catalog, recorded_space(log, space_id, "h", end=10 + n))
    finalized = rpe.ReplayFinalized(space_id="a", size_bytes=3, speaker_ids=["h"])
    finalized.duration.FromTimedelta(timedelta(seconds=7))
    finalized.recording_started_at.FromDatetime(at(1))
    await apply(
        pool,
        catalog,
        [
            log.replay(finalized, 12),
            log.replay(rpe.ReplayListened(space_id="a", user_id="x"), 13),
            log.replay(rpe.ReplayListened(space_id="a", user_id="y"), 14),
            log.replay(rpe.ReplayDeleted(space_id="b", reason=rpe.DELETION_REASON_HOST_DELETED), 15),
        ],
    )

    assert [s.space_id for s in await catalog.by_host("h")] == ["c", "a"]
    assert await catalog.by_host("someone-else") == []
    a = await catalog.get("a")
    assert a.ready and a.title == "about a" and a.listens == 2 and a.size_bytes == 3
    assert a.duration == timedelta(seconds=7) and a.recording_started_at == at(1) and a.speaker_ids == ("h",)
    assert a.started_at == at(1) and a.ended_at == at(10)
    assert await catalog.get("nothing") is None
    assert [s.space_id for s in await catalog.expired(at(12) + timedelta(days=1), timedelta(days=1))] == ["a"]
    assert await catalog.expired(at(12) + timedelta(days=1), timedelta(days=2)) == []
    assert catalog._states == {}  # every Space ended: none is in memory, all are in the rows
    assert queued == ["a", "b", "c"]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.finalize_jobs") == 3


async def test_a_job_is_queued_only_with_the_end_it_was_noticed_in(pool, schema):
    """The job and the catalog's row are one transaction: a batch that fails leaves neither."""
    log, jobs = Log(), JobStore(pool, schema)

    async def on_recorded_end(conn, space_id, ended_at):
        await jobs.enqueue(space_id, ended_at, ended_at, conn)

    catalog = ReplayCatalog(pool, schema, on_recorded_end=on_recorded_end)
    events = recorded_space(log, "s", "h")
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await catalog.apply(conn, events)
            raise RuntimeError("the commit never happens")
    assert await jobs.get("s") is None and await catalog.get("s") is None
    await apply(pool, catalog, events)  # read again after a restart: the cache ran ahead, and is not trusted
    assert (await jobs.get("s")).ended_at == at(10) and (await catalog.get("s")).ended_at == at(10)


async def test_a_live_space_is_read_back_from_its_rows_after_a_restart_with_its_audience(pool, schema):
    log = Log()
    first = ReplayCatalog(pool, schema)
    events = recorded_space(log, "s", "h", policy=rt.JOIN_POLICY_INVITED_ONLY)
    await apply(pool, first, events[:-1])  # live: in memory and in the rows
    assert set(first._states) == {"s"}
    await apply(pool, first, [log.room(rev.CoHostAdded(space_id="s", user_id="co"), 3)])

    restarted = ReplayCatalog(pool, schema)
    await apply(
        pool,
        restarted,
        [
            log.room(rev.ParticipantLeft(space_id="s", user_id="guest", reason=rev.LEAVE_REASON_REMOVED), 4),
            log.room(rev.ParticipantJoined(space_id="s", user_id="late", role=rt.ROLE_LISTENER), 5),
            log.room(rev.SpaceEnded(space_id="s"), 6),
        ],
    )
    assert restarted.loaded == 1 and restarted._states == {}
    for reader, sees in (("h", True), ("co", True), ("late", True), ("guest", False), ("stranger", False)):
        space = await restarted.get("s", reader)
        assert visible(space.audience, reader) is sees, reader
    assert space.audience.invite_only and space.ended_at == at(6)
    members = await pool.fetch(f"SELECT user_id FROM {schema}.replay_audience_v1 ORDER BY 1")
    assert [m["user_id"] for m in members] == ["co", "h", "late"]


async def test_replay_events_read_before_the_rooms_still_land(pool, schema):
    """A rebuild may read the replay topic's partition before the room's: both upsert the row."""
    log = Log()
    catalog = ReplayCatalog(pool, schema)
    room = recorded_space(log, "s", "h")
    finalized = rpe.ReplayFinalized(space_id="s", size_bytes=9)
    finalized.recording_started_at.FromDatetime(at(1))
    await apply(pool, catalog, [log.replay(finalized, 11), log.replay(rpe.ReplayListened(space_id="s"), 12)])
    assert await catalog.get("s") is None  # the room has not told of it yet
    await apply(pool, catalog, room)
    space = await catalog.get("s")
    assert space.ready and space.size_bytes == 9 and space.listens == 1 and space.host_user_id == "h"


async def test_the_history_reads_a_spaces_events_in_time_order_up_to_a_moment(pool, schema):
    log = Log()
    history = SpaceHistory(pool, schema)
    room = [
        log.room(rev.SpaceCreated(space_id="s", host_user_id="h", title="Talk"), 0),
        log.room(rev.SpaceStarted(space_id="s", host_user_id="h"), 1),
        log.room(rev.ParticipantJoined(space_id="s", user_id="h", role=rt.ROLE_HOST), 1),
        log.room(rev.ParticipantJoined(space_id="s", user_id="a"), 2),
        log.room(rev.SpeakerAdded(space_id="s", user_id="a"), 3),
        log.room(rev.SpaceEnded(space_id="s"), 9),
    ]
    media = [
        log.event(MEDIA_EVENTS, med.SpeakerStartedTalking(space_id="s", user_id="a"), 3),
        log.event(MEDIA_EVENTS, med.SpeakerStoppedTalking(space_id="s", user_id="a"), 5),
    ]
    moderation = [log.event(MODERATION_EVENTS, mev.ParticipantMuted(space_id="s", user_id="a"), 5)]
    other = [log.room(rev.SpaceCreated(space_id="other", host_user_id="h"), 2)]
    # Topics arrive in any interleaving; each keeps its own order.
    await apply(pool, history, [*media, *room[:3]])
    await apply(pool, history, [*other, *moderation, *room[3:]])

    expected = merge_by_time(
        [(e.payload, at_(e)) for e in room], [(e.payload, at_(e)) for e in moderation],
        [(e.payload, at_(e)) for e in media],
    )  # fmt: skip
    assert await history.events("s") == expected
    assert await history.events("s", until=at(3)) == [e for e in expected if e[1] <= at(3)]
    four = state_at(await history.events("s", until=at(4)), at(4))
    assert four.is_speaking("a") and four.roles == {"h": rt.ROLE_HOST, "a": rt.ROLE_SPEAKER}
    assert await history.known("s") and await history.known("other") and not await history.known("nope")


def at_(event: ConsumedEvent) -> datetime:
    from libs.events.envelope import occurred_at

    return occurred_at(event.envelope)


async def _nothing(space_id: str) -> None:
    return None
