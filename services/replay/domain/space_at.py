"""A Space as it was at one moment: a fold over its room, moderation and media events.

    state = state_at(events, at)       # events: (payload, occurred_at), in time order

Only events that occurred at or before `at` count. The three topics are merged
by occurred-at (each topic's own order is kept for equal times), so the answer
depends only on the log, never on when or how often it was read.

This is the one "Space at time T": replay's GetSpaceStateAt and timeline and
`podium state` all fold it. Who was in, in which role, muted or with a hand up
is the membership fold every service shares (`libs.domain.membership`); the
title, the recording flag and who was talking are this module's own. Each event
costs O(1), so a timeline of a Space with thousands of listeners is linear.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf.message import Message

from libs.domain.membership import Change, Member, SpaceMembers
from libs.domain.streams import is_space_stream
from podium.media.v1 import media_events_pb2 as med
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

ROLE_NAMES = {
    rt.ROLE_HOST: "host",
    rt.ROLE_CO_HOST: "co-host",
    rt.ROLE_SPEAKER: "speaker",
    rt.ROLE_LISTENER: "listener",
}
STATUS_NAMES = {
    rt.SPACE_STATE_CREATED: "created",
    rt.SPACE_STATE_SCHEDULED: "scheduled",
    rt.SPACE_STATE_LIVE: "live",
    rt.SPACE_STATE_ENDED: "ended",
    rt.SPACE_STATE_CANCELLED: "cancelled",
}
_ROOM_PACKAGE = rev.DESCRIPTOR.package


class SpaceAt:
    """The Space so far: `apply` folds the next event in (O(1)); the rest reads."""

    def __init__(self) -> None:
        self.space = SpaceMembers()
        self.title = ""
        self.recording_enabled = False
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self._speaking: set[str] = set()
        self.room_version = 0  # the Space's own stream's version (`Space.version`), as of the fold

    def apply(self, event: Message, at: datetime, stream_id: str = "", version: int = 0) -> Change | None:
        """Folds one event in; the change to the member it is about, if any. A room event's stream and
        version (from its envelope) keep `room_version` its own stream's when the Space has listener
        shards (ADR 0012), whose events have versions of their own; a room event given without them
        is taken as the next on the Space's one stream."""
        if event.DESCRIPTOR.file.package == _ROOM_PACKAGE:
            if not stream_id:
                self.room_version += 1
            elif is_space_stream(stream_id, event.space_id):
                self.room_version = max(self.room_version, version)
        match event:
            case rev.SpaceCreated():
                self.title, self.recording_enabled = event.title, event.recording_enabled
            case rev.SpaceUpdated():
                if "title" in event.changed_fields:
                    self.title = event.title
                if "recording_enabled" in event.changed_fields:
                    self.recording_enabled = event.recording_enabled
            case rev.SpaceStarted():
                self.started_at = at
            case rev.SpaceEnded():
                self.ended_at = at
                self._speaking.clear()
            case rev.SpaceCancelled():
                self.ended_at = at
            case (
                rev.ParticipantLeft()
                | rev.CoHostRemoved()
                | rev.SpeakerRemoved()
                | mev.ParticipantMuted()
                | med.SpeakerStoppedTalking()
            ):
                self._speaking.discard(event.user_id)
            case med.SpeakerStartedTalking():
                self._speaking.add(event.user_id)
        return self.space.apply(event, at)

    @property
    def exists(self) -> bool:
        return self.space.roster.exists

    @property
    def status(self) -> str:
        return STATUS_NAMES.get(self.space.roster.state, "")

    @property
    def host_user_id(self) -> str:
        return self.space.roster.host_user_id

    @property
    def listener_count(self) -> int:
        return self.space.roster.listeners

    def member(self, user_id: str) -> Member:
        return self.space.member(user_id)

    def is_speaking(self, user_id: str) -> bool:
        return user_id in self._speaking

    def ordered_participants(self) -> list[str]:
        """The host, then co-hosts, speakers and listeners, each in joining order."""
        return self.space.ordered()

    @property
    def roles(self) -> dict[str, int]:
        """Everyone in, with their role, in `ordered_participants` order."""
        return {u: self.space.entries[u].role for u in self.space.ordered()}

    @property
    def muted(self) -> frozenset[str]:
        return frozenset(u for u, m in self.space.entries.items() if m.muted)

    @property
    def hands(self) -> frozenset[str]:
        return frozenset(u for u, m in self.space.entries.items() if m.hand_raised_at is not None)

    @property
    def speaking(self) -> frozenset[str]:
        return frozenset(self._speaking)


def merge_by_time(*streams: Iterable[tuple]) -> list[tuple]:
    """The events of several topics in one order: by occurred-at, each topic's own order kept on ties.
    Each is `(payload, occurred_at)`, or with its stream and version after them (`tail.Logged`),
    and comes out as it went in."""
    tagged = [(item[1], n, i, item) for n, stream in enumerate(streams) for i, item in enumerate(stream)]
    tagged.sort(key=lambda tag: tag[:3])
    return [item for *_, item in tagged]


def state_at(events: Iterable[tuple], at: datetime) -> SpaceAt:
    """Folds the events that occurred at or before `at` (events in time order, as `merge_by_time` gives
    them: with their streams and versions where known, for `room_version`)."""
    state = SpaceAt()
    for event, occurred, *where in events:
        if occurred > at:
            break
        state.apply(event, occurred, *where)
    return state
