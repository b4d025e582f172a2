"""Given events, when a command, then events or a rejection: the room's test vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.domain.decider import Context, fold
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.decide import decide
from services.room.domain.evolve import evolve
from services.room.domain.limits import RoomLimits
from services.room.domain.state import INITIAL, Space

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPACE = "space-1"
HOST = "host"


def at(seconds: float = 0) -> datetime:
    return NOW + timedelta(seconds=seconds)


def state_of(*events, start: datetime = NOW) -> Space:
    return fold(evolve, INITIAL, ((e, start) for e in events))


def when(
    events, command, actor: str = HOST, now: datetime = NOW, limits: RoomLimits = RoomLimits(), claims=()
):
    return decide(command, state_of(*events), Context(actor, now, frozenset(claims)), limits)


def created(policy=types.JOIN_POLICY_ANYONE, **fields):
    return ev.SpaceCreated(space_id=SPACE, host_user_id=HOST, title="Audio", join_policy=policy, **fields)


def live(policy=types.JOIN_POLICY_ANYONE) -> list:
    return [
        created(policy),
        ev.SpaceStarted(space_id=SPACE, host_user_id=HOST),
        ev.ParticipantJoined(space_id=SPACE, user_id=HOST, role=types.ROLE_HOST, source=ev.JOIN_SOURCE_HOST),
    ]


def joined(*users: str) -> list:
    return [ev.ParticipantJoined(space_id=SPACE, user_id=u, role=types.ROLE_LISTENER) for u in users]


def speakers(*users: str) -> list:
    return [*joined(*users), *(ev.SpeakerAdded(space_id=SPACE, user_id=u) for u in users)]


def co_hosts(*users: str) -> list:
    return [*joined(*users), *(ev.CoHostAdded(space_id=SPACE, user_id=u) for u in users)]


def ended(policy=types.JOIN_POLICY_ANYONE) -> list:
    return [*live(policy), ev.SpaceEnded(space_id=SPACE, reason=ev.END_REASON_HOST_ENDED)]


def cancelled() -> list:
    return [created(), ev.SpaceCancelled(space_id=SPACE)]


def requested(*users: str) -> list:
    return [*joined(*users), *(ev.SpeakRequested(space_id=SPACE, user_id=u) for u in users)]


def left(user: str, reason=ev.LEAVE_REASON_LEFT) -> ev.ParticipantLeft:
    return ev.ParticipantLeft(space_id=SPACE, user_id=user, reason=reason)


def invite_link(link_id: str, expires_at: datetime) -> ev.InviteLinkCreated:
    event = ev.InviteLinkCreated(space_id=SPACE, link_id=link_id)
    event.expires_at.FromDatetime(expires_at)
    return event
