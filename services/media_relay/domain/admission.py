"""Who may be heard in a Space, and who may hear it: the relay's rules, pure, no I/O.

Who is in a Space, in which role, muted or barred, is the one membership fold
every service shares (`libs.domain.membership`): the relay keeps a Space's
`Roster` and its members' entries, and these rules read them.

`admit(roster, member)` answers, in O(1), whether that user's audio may be
forwarded right now. The relay checks it for every frame, so a mute, a
demotion or a removal stops forwarding as soon as its event is applied. A user
moderation barred is not heard from that event on, before the room's own
ParticipantLeft(REMOVED) arrives on its topic.

Who may *hear* a Space is a second question. `admit_subscriber` answers it for
a subscription: a gateway's (it fans out to the listeners the room admitted)
needs a Space that exists and is live; a user's own needs, besides, that the
user is in the Space now (`may_listen`), which only a JoinSpace the room
accepted makes true (so for an INVITED_ONLY Space, only the invited or a
link's holders, and never the removed or banned).
"""

from __future__ import annotations

import enum

from google.protobuf.message import Message

from libs.domain.membership import VOICES, Member, Roster, role_of
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev

HARD_MUTES = frozenset({mt.MUTE_KIND_HOST, mt.MUTE_KIND_AUTO})


class Admission(enum.Enum):
    ADMITTED = "admitted"
    UNKNOWN_SPACE = "unknown space"
    NOT_LIVE = "the space is not live"
    ENDED = "space ended"
    NOT_A_SPEAKER = "only the host, co-hosts and speakers may publish"
    HARD_MUTED = "muted by a host or co-host (or pending review)"
    SELF_MUTED = "muted by themselves"
    NOT_A_PARTICIPANT = "only the Space's current participants may listen"


def _space_verdict(roster: Roster | None) -> Admission | None:
    if roster is None or not roster.exists:
        return Admission.UNKNOWN_SPACE
    if roster.is_over:
        return Admission.ENDED
    if not roster.is_live:
        return Admission.NOT_LIVE
    return None


def admit(roster: Roster | None, member: Member) -> Admission:
    """May this member's audio be forwarded now?"""
    verdict = _space_verdict(roster)
    if verdict is not None:
        return verdict
    if member.role not in VOICES or member.barred:
        return Admission.NOT_A_SPEAKER
    if not member.muted:
        return Admission.ADMITTED
    return Admission.HARD_MUTED if member.mute_kind in HARD_MUTES else Admission.SELF_MUTED


def may_listen(roster: Roster, member: Member) -> bool:
    """In the Space now, and not barred from it."""
    return role_of(roster, member) != 0 and not member.barred


def admit_subscriber(roster: Roster | None, member: Member, user_id: str | None) -> Admission:
    """May this subscription hear the Space? `user_id` is None for a gateway's subscription."""
    verdict = _space_verdict(roster)
    if verdict is not None:
        return verdict
    if user_id is not None and not may_listen(roster, member):
        return Admission.NOT_A_PARTICIPANT
    return Admission.ADMITTED


def recording_after(recording: bool, event: Message) -> bool:
    """Whether the Space is recorded, after `event`: set at creation, changed by an update of that field."""
    match event:
        case rev.SpaceCreated():
            return event.recording_enabled
        case rev.SpaceUpdated() if "recording_enabled" in event.changed_fields:
            return event.recording_enabled
    return recording
