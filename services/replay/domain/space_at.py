"""A Space as it was at one moment: a pure fold over its room, moderation and media events.

    state = state_at(events, at)       # events: (payload, occurred_at), in log order

Only events that occurred at or before `at` count. The three topics are merged
by occurred-at (each topic's own order is kept for equal times), so the answer
depends only on the log, never on when or how often it was read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf.message import Message

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
ROLE_ORDER = {rt.ROLE_HOST: 0, rt.ROLE_CO_HOST: 1, rt.ROLE_SPEAKER: 2, rt.ROLE_LISTENER: 3}


@dataclass(frozen=True)
class SpaceAt:
    exists: bool = False
    space_id: str = ""
    title: str = ""
    host_user_id: str = ""
    status: str = ""  # scheduled, created, live, ended, cancelled
    recording_enabled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    roles: dict[str, int] = field(default_factory=dict)  # present participants, in joining order
    muted: frozenset[str] = frozenset()
    hands: frozenset[str] = frozenset()
    speaking: frozenset[str] = frozenset()

    @property
    def listener_count(self) -> int:
        return sum(1 for role in self.roles.values() if role == rt.ROLE_LISTENER)

    def ordered_participants(self) -> list[str]:
        order = {u: i for i, u in enumerate(self.roles)}
        return sorted(self.roles, key=lambda u: (ROLE_ORDER.get(self.roles[u], 9), order[u]))


INITIAL = SpaceAt()


def _with_role(s: SpaceAt, user_id: str, role: int) -> SpaceAt:
    if user_id not in s.roles:
        return s
    return replace(s, roles={**s.roles, user_id: role}, hands=s.hands - {user_id})


def evolve(s: SpaceAt, event: Message, at: datetime) -> SpaceAt:
    """What one event means for the Space at that moment. Unknown events change nothing."""
    match event:
        case rev.SpaceCreated():
            return replace(
                s,
                exists=True,
                space_id=event.space_id,
                title=event.title,
                host_user_id=event.host_user_id,
                recording_enabled=event.recording_enabled,
                status="scheduled" if event.HasField("scheduled_start") else "created",
            )
        case rev.SpaceUpdated():
            changes = {}
            if "title" in event.changed_fields:
                changes["title"] = event.title
            if "recording_enabled" in event.changed_fields:
                changes["recording_enabled"] = event.recording_enabled
            return replace(s, **changes)
        case rev.SpaceStarted():
            return replace(s, status="live", started_at=at)
        case rev.SpaceEnded():
            return replace(s, status="ended", ended_at=at, roles={}, hands=frozenset(), speaking=frozenset())
        case rev.SpaceCancelled():
            return replace(s, status="cancelled", ended_at=at)
        case rev.ParticipantJoined():
            return replace(s, roles={**s.roles, event.user_id: event.role or rt.ROLE_LISTENER})
        case rev.ParticipantLeft():
            roles = dict(s.roles)
            roles.pop(event.user_id, None)
            return replace(
                s, roles=roles, hands=s.hands - {event.user_id}, speaking=s.speaking - {event.user_id}
            )
        case rev.CoHostAdded():
            return _with_role(s, event.user_id, rt.ROLE_CO_HOST)
        case rev.SpeakerAdded():
            return _with_role(s, event.user_id, rt.ROLE_SPEAKER)
        case rev.CoHostRemoved() | rev.SpeakerRemoved():
            s = _with_role(s, event.user_id, rt.ROLE_LISTENER)
            return replace(s, speaking=s.speaking - {event.user_id})
        case rev.SpeakRequested():
            return replace(s, hands=s.hands | {event.user_id})
        case rev.SpeakRequestWithdrawn() | rev.SpeakRequestApproved() | rev.SpeakRequestDenied():
            return replace(s, hands=s.hands - {event.user_id})
        case mev.ParticipantMuted():
            return replace(s, muted=s.muted | {event.user_id}, speaking=s.speaking - {event.user_id})
        case mev.ParticipantUnmuted():
            return replace(s, muted=s.muted - {event.user_id})
        case med.SpeakerStartedTalking():
            return replace(s, speaking=s.speaking | {event.user_id})
        case med.SpeakerStoppedTalking():
            return replace(s, speaking=s.speaking - {event.user_id})
    return s


def merge_by_time(*streams: Iterable[tuple[Message, datetime]]) -> list[tuple[Message, datetime]]:
    """The events of several topics in one order: by occurred-at, each topic's own order kept on ties."""
    tagged = [(at, n, i, event) for n, stream in enumerate(streams) for i, (event, at) in enumerate(stream)]
    tagged.sort(key=lambda item: (item[0], item[1], item[2]))
    return [(event, at) for at, _, _, event in tagged]


def state_at(events: Iterable[tuple[Message, datetime]], at: datetime) -> SpaceAt:
    """Folds the events that occurred at or before `at` (events in time order)."""
    state = INITIAL
    for event, occurred in events:
        if occurred > at:
            break
        state = evolve(state, event, occurred)
    return state
