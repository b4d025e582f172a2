"""Who may be heard in a Space, as the room and moderation topics tell it: pure, no I/O.

`evolve(space, event)` folds one room or moderation event into a Space's media
view; `admit(space, user_id)` answers, in O(1), whether that user's audio may
be forwarded right now. The relay checks `admit` for every frame, so a mute, a
demotion or a removal stops forwarding as soon as its event is applied.

Who may *hear* a Space is a second question. `admit_subscriber` answers it for
a subscription: a gateway's (it fans out to the listeners the room admitted)
needs a Space that exists and is live; a user's own needs, besides, that the
user is in the Space now, which only a JoinSpace the room accepted makes true
(so for an INVITED_ONLY Space, only the invited or a link's holders, and never
the removed or banned). `membership_change` says which events move a user in
or out; the projection keeps those sets, which grow with the audience, outside
the frozen per-Space value that is copied on every change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from google.protobuf.message import Message

from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

SPEAKING_ROLES = frozenset({rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER})
HARD_MUTES = frozenset({mt.MUTE_KIND_HOST, mt.MUTE_KIND_AUTO})


@dataclass(frozen=True)
class SpaceMedia:
    space_id: str = ""
    host_user_id: str = ""
    live: bool = False
    ended: bool = False
    recording_enabled: bool = False
    # Present participants who may speak (host, co-hosts, speakers): user id -> role.
    speakers: dict[str, int] = field(default_factory=dict)
    # Current mutes: user id -> MuteKind.
    mutes: dict[str, int] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.host_user_id)


class Admission(enum.Enum):
    ADMITTED = "admitted"
    UNKNOWN_SPACE = "unknown space"
    NOT_LIVE = "the space is not live"
    ENDED = "space ended"
    NOT_A_SPEAKER = "only the host, co-hosts and speakers may publish"
    HARD_MUTED = "muted by a host or co-host (or pending review)"
    SELF_MUTED = "muted by themselves"
    NOT_A_PARTICIPANT = "only the Space's current participants may listen"


def admit(space: SpaceMedia | None, user_id: str) -> Admission:
    if space is None or not space.exists:
        return Admission.UNKNOWN_SPACE
    if space.ended:
        return Admission.ENDED
    if not space.live:
        return Admission.NOT_LIVE
    if user_id not in space.speakers:
        return Admission.NOT_A_SPEAKER
    kind = space.mutes.get(user_id)
    if kind is None:
        return Admission.ADMITTED
    return Admission.HARD_MUTED if kind in HARD_MUTES else Admission.SELF_MUTED


def admit_subscriber(space: SpaceMedia | None, user_id: str | None, is_member: bool) -> Admission:
    """May this subscription hear the Space? `user_id` is None for a gateway's subscription."""
    if space is None or not space.exists:
        return Admission.UNKNOWN_SPACE
    if space.ended:
        return Admission.ENDED
    if not space.live:
        return Admission.NOT_LIVE
    if user_id is not None and not is_member:
        return Admission.NOT_A_PARTICIPANT
    return Admission.ADMITTED


def membership_change(event: Message) -> tuple[str, bool] | None:
    """(user id, in the Space now) for an event that moves a user in or out, else None."""
    match event:
        case rev.ParticipantJoined():
            return event.user_id, True
        case rev.ParticipantLeft() | mev.ParticipantRemoved():
            return event.user_id, False
    return None


def _without(d: dict[str, int], key: str) -> dict[str, int]:
    return {k: v for k, v in d.items() if k != key} if key in d else d


def evolve(space: SpaceMedia, event: Message) -> SpaceMedia:
    """The Space's media view after `event` (a room or moderation event about it)."""
    match event:
        case rev.SpaceCreated():
            return replace(
                space,
                space_id=event.space_id,
                host_user_id=event.host_user_id,
                recording_enabled=event.recording_enabled,
            )
        case rev.SpaceUpdated():
            if "recording_enabled" in event.changed_fields:
                return replace(space, recording_enabled=event.recording_enabled)
        case rev.SpaceStarted():
            host = event.host_user_id or space.host_user_id
            return replace(space, live=True, speakers={**space.speakers, host: rt.ROLE_HOST})
        case rev.SpaceEnded() | rev.SpaceCancelled():
            return replace(space, live=False, ended=True, speakers={})
        case rev.ParticipantJoined():
            if event.role in SPEAKING_ROLES:
                return replace(space, speakers={**space.speakers, event.user_id: event.role})
            return replace(space, speakers=_without(space.speakers, event.user_id))
        case rev.ParticipantLeft() | rev.CoHostRemoved() | rev.SpeakerRemoved():
            return replace(space, speakers=_without(space.speakers, event.user_id))
        case rev.CoHostAdded():
            return replace(space, speakers={**space.speakers, event.user_id: rt.ROLE_CO_HOST})
        case rev.SpeakerAdded():
            return replace(space, speakers={**space.speakers, event.user_id: rt.ROLE_SPEAKER})
        case mev.ParticipantMuted():
            return replace(space, mutes={**space.mutes, event.user_id: event.kind})
        case mev.ParticipantUnmuted():
            return replace(space, mutes=_without(space.mutes, event.user_id))
        case mev.ParticipantRemoved():
            return replace(
                space,
                mutes=_without(space.mutes, event.user_id),
                speakers=_without(space.speakers, event.user_id),
            )
    return space
