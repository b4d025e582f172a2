"""Presence's board rows in PostgreSQL say what the in-memory board says, however events are batched."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from libs.events.envelope import Causation, wrap
from libs.projection.runner import ConsumedEvent
from podium.media.v1 import media_events_pb2 as media
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.presence.v1 import presence_events_pb2 as pev
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.presence.projections.space_board import SpaceBoard
from services.presence.projections.space_board_rows import SpaceBoardRows
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration


def history() -> list[ConsumedEvent]:
    versions: dict[tuple[str, str], int] = {}

    def event(space_id: str, producer: str, payload) -> ConsumedEvent:
        stream = (producer, f"{producer}-{space_id}")
        versions[stream] = versions.get(stream, 0) + 1
        envelope = wrap(
            payload,
            producer=producer,
            stream_id=stream[1],
            version=versions[stream],
            space_id=space_id,
            occurred_at=datetime(2026, 12, 1, 12, 0, len(versions) % 60, tzinfo=UTC),
            causation=Causation("a", "c", "c"),
        )
        return ConsumedEvent(envelope, payload, "t", 0, 0)

    events = []
    for s in ("live", "over"):
        events += [
            event(s, "room", rev.SpaceCreated(space_id=s, host_user_id="host", recording_enabled=True)),
            event(s, "room", rev.SpaceStarted(space_id=s, host_user_id="host")),
            event(s, "room", rev.SpaceUpdated(space_id=s, changed_fields=["title"], title=f"{s} talk")),
            event(s, "room", rev.ParticipantJoined(space_id=s, user_id="host", role=rt.ROLE_HOST)),
            event(s, "presence", pev.ParticipantConnected(space_id=s, user_id="ann")),  # before the join
            event(s, "room", rev.ParticipantJoined(space_id=s, user_id="ann", role=rt.ROLE_LISTENER)),
            event(s, "room", rev.ParticipantJoined(space_id=s, user_id="bo", role=rt.ROLE_LISTENER)),
            event(s, "room", rev.SpeakRequested(space_id=s, user_id="bo")),
            event(s, "room", rev.SpeakerAdded(space_id=s, user_id="ann")),
            event(s, "moderation", mev.ParticipantMuted(space_id=s, user_id="ann")),
            event(s, "media", media.SpeakerStartedTalking(space_id=s, user_id="host")),
            event(s, "presence", pev.ParticipantConnected(space_id=s, user_id="cy")),
            event(s, "room", rev.ParticipantJoined(space_id=s, user_id="cy", role=rt.ROLE_LISTENER)),
            event(s, "room", rev.ParticipantLeft(space_id=s, user_id="cy")),
            event(s, "presence", pev.ParticipantTimedOut(space_id=s, user_id="bo")),
        ]
    events.append(event("over", "room", rev.SpaceEnded(space_id="over", reason=rev.END_REASON_HOST_ENDED)))
    return events


def seen(board: SpaceBoard, space_id: str):
    return [
        (m.user_id, m.role, m.muted, m.hand_raised, m.connected, m.speaking) for m in board.snapshot(space_id)
    ]


@pytest.mark.parametrize("batch", [1, 4, 1000])
async def test_the_rows_fold_what_the_board_folds_in_batches_of_any_size(database_url, batch):
    schema = await migrated_schema(database_url, "presence", "pb")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        rows = SpaceBoardRows(pool, schema)
        events = history()
        for start in range(0, len(events), batch):
            async with pool.acquire() as conn, conn.transaction():
                await rows.apply(conn, events[start : start + batch])
        in_memory = SpaceBoard()
        for e in events:
            in_memory.apply(e)
        loaded = SpaceBoard(rows)
        async with pool.acquire() as conn:
            streams = await loaded.load(conn)
        assert seen(loaded, "live") == seen(in_memory, "live") != []
        live = await loaded.space("live")
        assert live == await in_memory.space("live") and (live.title, live.recording) == ("live talk", True)
        over = await loaded.space("over")  # not held: from its row
        assert over == await in_memory.space("over") and over.state == rt.SPACE_STATE_ENDED
        assert (
            over.end_reason == rev.END_REASON_HOST_ENDED and over.HasField("ended_at") and not over.recording
        )
        assert loaded.connected_in("ann") == ["live"] and not loaded.holds("over")
        assert set(streams.values()) == {"live"} and len(streams) == 4  # room, presence, moderation, media
        assert await rows.states_of(["over", "live", "none"]) == {
            "over": rt.SPACE_STATE_ENDED,
            "live": rt.SPACE_STATE_LIVE,
        }
        async with pool.acquire() as conn:
            left = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.space_board_members_v2 WHERE space_id = 'over'"
            ) + await conn.fetchval(
                f"SELECT count(*) FROM {schema}.space_board_flags_v2 WHERE space_id = 'over'"
            )
        assert left == 0
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()
