"""Retention with an injected clock: the catalog finds expired replays, the sweep expires and deletes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.domain.decider import Context
from libs.events.envelope import Causation, wrap
from libs.projection.runner import ConsumedEvent
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from services.replay.application.finalizer import RetentionSweeper, ogg_key
from services.replay.domain.replay import INITIAL, SYSTEM_CLAIM, decide, evolve
from services.replay.infrastructure.blob_store import LocalDirectoryBlobStore
from services.replay.projections.replay_catalog import ReplayCatalog

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)


def consumed(payload, at: datetime, version: int, space_id: str = "s") -> ConsumedEvent:
    envelope = wrap(
        payload, producer="x", stream_id=space_id, version=version, space_id=space_id, occurred_at=at,
        causation=Causation("u", "c", "c"),
    )  # fmt: skip
    return ConsumedEvent(envelope, payload, "topic", 0, version)


class DecidingCommands:
    """Runs the real decide on an in-memory stream, at the injected clock's time."""

    def __init__(self, clock):
        self.clock = clock
        self.events: list = []

    async def as_system(self, space_id, command, cause):
        state = INITIAL
        for event in self.events:
            state = evolve(state, event, self.clock())
        decided = decide(command, state, Context("system:replay", self.clock(), frozenset({SYSTEM_CLAIM})))
        self.events.extend(decided)
        return decided


async def test_a_replay_expires_after_the_retention_and_its_file_is_deleted(tmp_path):
    now = [T]
    catalog = ReplayCatalog()
    await catalog.apply(
        consumed(rev.SpaceCreated(space_id="s", host_user_id="h", recording_enabled=True), T, 1)
    )
    await catalog.apply(consumed(rev.SpaceEnded(space_id="s"), T, 2))
    finalized = rpe.ReplayFinalized(space_id="s", size_bytes=3)
    await catalog.apply(consumed(finalized, T, 1))
    blobs = LocalDirectoryBlobStore(tmp_path)
    blobs.put_bytes(ogg_key("s"), b"ogg")
    commands = DecidingCommands(lambda: now[0])
    commands.events.append(finalized)
    sweeper = RetentionSweeper(commands, catalog, blobs, RETENTION, 60, clock=lambda: now[0])

    now[0] = T + RETENTION - timedelta(seconds=1)
    assert await sweeper.sweep() == [] and blobs.size(ogg_key("s")) == 3
    now[0] = T + RETENTION
    assert await sweeper.sweep() == ["s"]
    assert blobs.size(ogg_key("s")) is None
    assert commands.events[-1].reason == rpe.DELETION_REASON_RETENTION_EXPIRED
    await catalog.apply(consumed(commands.events[-1], now[0], 2))
    assert catalog.expired(now[0] + RETENTION, RETENTION) == []  # once deleted, never again
