"""Retention with an injected clock: the sweep expires the replays the catalog says are old, and deletes them.

The catalog's query itself runs against PostgreSQL in tests/integration/replay/test_replay_views.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from libs.domain.decider import Context
from podium.replay.v1 import replay_events_pb2 as rpe
from services.replay.application.finalizer import RetentionSweeper, ogg_key
from services.replay.domain.replay import INITIAL, SYSTEM_CLAIM, decide, evolve
from services.replay.infrastructure.blob_store import LocalDirectoryBlobStore
from services.replay.projections.replay_catalog import SpaceReplay

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)


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


class Catalog:
    """The catalog's answer to `expired`, from the replay's finalized and deleted events."""

    def __init__(self):
        self.replay = SpaceReplay("s", host_user_id="h", recording_enabled=True, ended_at=T)

    async def expired(self, now, retention):
        replay = self.replay
        return [replay] if replay.ready and replay.finalized_at + retention <= now else []


async def test_a_replay_expires_after_the_retention_and_its_file_is_deleted(tmp_path):
    now = [T]
    catalog = Catalog()
    finalized = rpe.ReplayFinalized(space_id="s", size_bytes=3)
    catalog.replay = replace(catalog.replay, finalized_at=T, size_bytes=3)
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
    catalog.replay = replace(catalog.replay, deleted=commands.events[-1].reason)
    assert await sweeper.sweep() == []  # once deleted, never again
