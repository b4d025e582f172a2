"""Who may see a Space's replay: a pure fold over its room events, and the rule.

    audience = evolve(audience, event)           # one Space's room events, in log order
    visible(audience, user_id, roles) -> bool    # may this caller hear, read or travel in it?

The recording of a Space that was INVITED_ONLY at any moment while it was live
(from its start to its end) is for its host, its co-hosts, the people the room
admitted to it (a ParticipantJoined), and trust and safety; a user the host
removed from it (ParticipantLeft, REMOVED) loses it. Every other Space's
recording is open to every user.

The most restrictive policy governs, not the last: the recording is one file,
so what was said while only invited people could hear it stays theirs even if
the host opened the Space later. Before the Space starts nothing has been said,
so there only the current policy counts (a Space created invite-only and opened
before its start is public).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from google.protobuf.message import Message

from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

# The token role of trust and safety (docs/security.md); moderation gives it every
# Space's reports and moderation log, and reviewing a report needs the recording.
TRUST_AND_SAFETY = "trust-and-safety"


@dataclass(frozen=True)
class Audience:
    host_user_id: str = ""
    join_policy: int = rt.JOIN_POLICY_ANYONE  # the current one
    invite_only: bool = False  # the one that governs the recording
    started: bool = False
    co_hosts: frozenset[str] = frozenset()
    admitted: frozenset[str] = frozenset()  # joined, and not removed since


INITIAL = Audience()


def _governs(audience: Audience, policy: int) -> bool:
    """Invite-only from now on? While live (or after), once invite-only stays invite-only."""
    return (audience.started and audience.invite_only) or policy == rt.JOIN_POLICY_INVITED_ONLY


def evolve(audience: Audience, event: Message) -> Audience:
    """The audience after one room event of the Space. Other events change nothing."""
    match event:
        case rev.SpaceCreated():
            policy = event.join_policy or rt.JOIN_POLICY_ANYONE
            return replace(
                audience,
                host_user_id=event.host_user_id,
                join_policy=policy,
                invite_only=policy == rt.JOIN_POLICY_INVITED_ONLY,
            )
        case rev.SpaceUpdated() if "join_policy" in event.changed_fields:
            policy = event.join_policy or rt.JOIN_POLICY_ANYONE
            return replace(audience, join_policy=policy, invite_only=_governs(audience, policy))
        case rev.SpaceStarted():
            return replace(audience, started=True)
        case rev.ParticipantJoined():
            return replace(audience, admitted=audience.admitted | {event.user_id})
        case rev.CoHostAdded():
            return replace(audience, co_hosts=audience.co_hosts | {event.user_id})
        case rev.ParticipantLeft() if event.reason in _NO_LONGER_ADMITTED:
            user = event.user_id
            return replace(audience, admitted=audience.admitted - {user}, co_hosts=audience.co_hosts - {user})
    return audience


# Removed, or evicted when the Space turned invite-only: the Space's rules no longer admit them.
_NO_LONGER_ADMITTED = frozenset({rev.LEAVE_REASON_REMOVED, rev.LEAVE_REASON_POLICY})


def visible(audience: Audience, user_id: str, roles: frozenset[str] = frozenset()) -> bool:
    """Whether the Space's replay (audio, timeline, state at a moment) is for this caller."""
    if not audience.invite_only or TRUST_AND_SAFETY in roles:
        return True
    if user_id == audience.host_user_id:
        return True
    return user_id in audience.admitted or user_id in audience.co_hosts
