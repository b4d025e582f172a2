"""One Space's "who's here" board as a plain value, and the fold over it.

    fold(board, event, at) -> [(MemberChange kind, user id), ...]

A board is the one membership fold (`libs.domain.membership`: members, roles, mutes, raised
hands) plus presence's own flags: who is connected (presence's events) and who is talking (the
media relay's). The flags are kept apart from the entries, so they are right whichever topic's
event arrives first. The fold returns the changes a watcher of the Space sees. Presence's durable
rows (`projections/space_board_rows.py`) and every replica's in-memory board
(`projections/space_board.py`) fold with it, so both say the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from libs.domain.membership import Change, SpaceMembers, role_of, subject
from podium.media.v1 import media_events_pb2 as media
from podium.presence.v1 import presence_events_pb2 as pev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

JOINED, UPDATED, LEFT = (
    pt.MEMBER_CHANGE_KIND_JOINED,
    pt.MEMBER_CHANGE_KIND_UPDATED,
    pt.MEMBER_CHANGE_KIND_LEFT,
)

#: Events that set or clear a flag of the user they name.
_FLAG_EVENTS = (
    pev.ParticipantConnected,
    pev.ParticipantTimedOut,
    media.SpeakerStartedTalking,
    media.SpeakerStoppedTalking,
)


class Lifecycle(enum.Enum):
    UNKNOWN = "unknown"  # no SpaceCreated seen (yet)
    OPEN = "open"  # scheduled or live
    ENDED = "ended"  # ended or cancelled


@dataclass
class Board:
    space: SpaceMembers = field(default_factory=SpaceMembers)  # members, roles, mutes, raised hands
    connected: set[str] = field(default_factory=set)
    speaking: set[str] = field(default_factory=set)
    parts: int = 1  # the Space's presence is split into this many parts (PresenceSplit, ADR 0015)

    @property
    def lifecycle(self) -> Lifecycle:
        roster = self.space.roster
        if roster.is_over:
            return Lifecycle.ENDED
        return Lifecycle.OPEN if roster.exists else Lifecycle.UNKNOWN

    def is_member(self, user_id: str) -> bool:
        return self.space.role_of(user_id) != rt.ROLE_UNSPECIFIED

    def member(self, user_id: str) -> pt.SpaceMember:
        entry = self.space.member(user_id)
        return pt.SpaceMember(
            user_id=user_id,
            role=role_of(self.space.roster, entry),
            muted=entry.muted,
            hand_raised=entry.hand_raised_at is not None,
            connected=user_id in self.connected,
            speaking=user_id in self.speaking,
        )


def about(event) -> str | None:
    """The user whose entry or flags `event` may change; None for an event about the whole Space."""
    if isinstance(event, _FLAG_EVENTS):
        return event.user_id
    return subject(event)


def fold(board: Board, e, at) -> list[tuple[int, str]]:
    """Folds one event into the board; the member changes a watcher sees, in order."""
    match e:
        case rev.SpaceEnded():
            gone = board.space.ordered()
            board.space.apply(e, at)
            board.connected.clear()
            board.speaking.clear()
            return [(LEFT, u) for u in gone]
        case rev.ParticipantLeft():
            board.connected.discard(e.user_id)
            board.speaking.discard(e.user_id)
            return _kinds(board.space.apply(e, at))
        case pev.ParticipantConnected():
            board.connected.add(e.user_id)
        case pev.ParticipantTimedOut():
            board.connected.discard(e.user_id)
        case media.SpeakerStartedTalking():
            board.speaking.add(e.user_id)
        case media.SpeakerStoppedTalking():
            board.speaking.discard(e.user_id)
        case pev.PresenceSplit():
            board.parts = max(board.parts, e.parts)
            return []
        case _:
            return _kinds(board.space.apply(e, at))
    return [(UPDATED, e.user_id)] if board.is_member(e.user_id) else []


def _kinds(change: Change | None) -> list[tuple[int, str]]:
    """The member change a watcher sees: joined, left, or updated (role, mute or raised hand)."""
    if change is None:
        return []
    before, after = change.before.is_in, change.after.is_in
    if after:
        return [(UPDATED if before else JOINED, change.user_id)]
    return [(LEFT, change.user_id)] if before else []
