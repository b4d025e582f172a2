"""Every Space the replay service knows of, and its replay: from the room's topic and its own.

From the room's events: host, title, whether it is recorded, when it started
and ended, and who may see its replay (the pure `domain.audience` fold). From
the replay topic: finalized (duration, size, speakers, origin), deleted,
listens. When a recorded Space ends, `on_recorded_end` is called (it
enqueues the finalizing job; doing so again on every start changes nothing);
when a replay is deleted, `on_deleted` removes its files and its recorded chunks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from libs.events.envelope import occurred_at
from libs.events.topics import REPLAY_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from services.replay.domain import audience as aud


@dataclass
class SpaceReplay:
    space_id: str
    host_user_id: str = ""
    title: str = ""
    recording_enabled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled: bool = False
    finalized_at: datetime | None = None
    recording_started_at: datetime | None = None
    duration: timedelta = timedelta(0)
    size_bytes: int = 0
    speaker_ids: list[str] = field(default_factory=list)
    deleted: int = rpe.DELETION_REASON_UNSPECIFIED
    listens: int = 0
    audience: aud.Audience = aud.INITIAL

    @property
    def ready(self) -> bool:
        return self.finalized_at is not None and not self.deleted

    @property
    def recorded(self) -> bool:
        """Recording was on when the Space started (or is on now, before it starts)."""
        return self.recording_enabled


class ReplayCatalog:
    name = "replay-catalog"
    topics = (ROOM_EVENTS, REPLAY_EVENTS)

    def __init__(
        self,
        on_recorded_end: Callable[[str, datetime], Awaitable[None]] | None = None,
        on_deleted: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.spaces: dict[str, SpaceReplay] = {}
        self.on_recorded_end = on_recorded_end
        self.on_deleted = on_deleted

    async def apply(self, event: ConsumedEvent) -> None:
        e, space_id = event.payload, event.envelope.space_id
        if not space_id:
            return
        at = occurred_at(event.envelope)
        space = self.spaces.get(space_id)
        if space is None:
            space = self.spaces[space_id] = SpaceReplay(space_id)
        space.audience = aud.evolve(space.audience, e)
        match e:
            case rev.SpaceCreated():
                space.host_user_id, space.title = e.host_user_id, e.title
                space.recording_enabled = e.recording_enabled
            case rev.SpaceUpdated():
                if "title" in e.changed_fields:
                    space.title = e.title
                if "recording_enabled" in e.changed_fields and space.started_at is None:
                    space.recording_enabled = e.recording_enabled  # consent is settled at the start
            case rev.SpaceStarted():
                space.started_at = at
            case rev.SpaceCancelled():
                space.cancelled = True
            case rev.SpaceEnded():
                space.ended_at = at
                if space.recording_enabled and self.on_recorded_end is not None:
                    await self.on_recorded_end(space_id, at)
            case rpe.ReplayFinalized():
                space.finalized_at = at
                space.duration = e.duration.ToTimedelta()
                space.size_bytes = e.size_bytes
                space.speaker_ids = list(e.speaker_ids)
                space.recording_started_at = e.recording_started_at.ToDatetime(tzinfo=UTC)
            case rpe.ReplayDeleted():
                space.deleted = e.reason or rpe.DELETION_REASON_HOST_DELETED
                if self.on_deleted is not None:
                    await self.on_deleted(space_id)
            case rpe.ReplayListened():
                space.listens += 1

    def get(self, space_id: str) -> SpaceReplay | None:
        space = self.spaces.get(space_id)
        return space if space is not None and space.host_user_id else None

    def by_host(self, host_user_id: str) -> list[SpaceReplay]:
        """The host's recorded Spaces that ended and were not deleted, newest first."""
        found = [
            s
            for s in self.spaces.values()
            if s.host_user_id == host_user_id and s.recording_enabled and s.ended_at and not s.deleted
        ]
        return sorted(found, key=lambda s: (s.ended_at, s.space_id), reverse=True)

    def expired(self, now: datetime, retention: timedelta) -> list[SpaceReplay]:
        return [s for s in self.spaces.values() if s.ready and s.finalized_at + retention <= now]
