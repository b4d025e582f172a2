"""evolve(state, event, occurred_at) -> state: what each room event means.

The write side folds it over a Space's stream, and the room's own directory
over the topic. It is the authority on membership and roles: the other
services' views fold `libs.domain.membership`, which follows this function
event for event on who is in and in which role (held to it by
tests/unit/membership/test_one_fold.py). Unknown events leave the state as it
was, so older code can read newer streams.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.state import Participant, Space


def evolve(state: Space, event: Message, occurred_at: datetime) -> Space:
    apply = _APPLIERS.get(type(event))
    if apply is None:
        return replace(state, version=state.version + 1)
    next_state = apply(state, event, occurred_at)
    if next_state is state:
        next_state = replace(state)
    object.__setattr__(next_state, "version", state.version + 1)  # next_state is a fresh copy
    return next_state


def replace(original: Space, /, **changes) -> Space:
    """A copy of the Space `original` with `changes`: `dataclasses.replace` without re-running __init__.

    Views fold millions of events through here; this is what keeps a rebuild fast.
    Every applier goes through it exactly once, so the copy it returns is its own.
    """
    copy = object.__new__(Space)
    copy.__dict__.update(original.__dict__)
    copy.__dict__.update(changes)
    return copy


def _timestamp(message: Message, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def _created(s: Space, e: ev.SpaceCreated, at: datetime) -> Space:
    scheduled = _timestamp(e, "scheduled_start")
    return replace(
        s,
        exists=True,
        space_id=e.space_id,
        host_user_id=e.host_user_id,
        title=e.title,
        description=e.description,
        join_policy=e.join_policy,
        scheduled_start=scheduled,
        recording_enabled=e.recording_enabled,
        state=types.SPACE_STATE_SCHEDULED if scheduled else types.SPACE_STATE_CREATED,
        created_at=at,
    )


def _updated(s: Space, e: ev.SpaceUpdated, at: datetime) -> Space:
    changes: dict = {}
    for name in e.changed_fields:
        if name == "scheduled_start":
            changes[name] = _timestamp(e, name)
            if s.state in (types.SPACE_STATE_CREATED, types.SPACE_STATE_SCHEDULED):
                changes["state"] = types.SPACE_STATE_SCHEDULED if changes[name] else types.SPACE_STATE_CREATED
        elif name in ("title", "description", "join_policy", "recording_enabled"):
            changes[name] = getattr(e, name)
    return replace(s, **changes)


def _started(s: Space, e: ev.SpaceStarted, at: datetime) -> Space:
    return replace(s, state=types.SPACE_STATE_LIVE, started_at=at, unattended_since=at)


def _ended(s: Space, e: ev.SpaceEnded, at: datetime) -> Space:
    """Ending a Space empties it: every participant leaves and all roles and requests lapse."""
    return replace(
        s,
        state=types.SPACE_STATE_ENDED,
        ended_at=at,
        participants={},
        co_hosts=(),
        speakers=(),
        speak_requests=(),
        unattended_since=None,
    )


def _cancelled(s: Space, e: ev.SpaceCancelled, at: datetime) -> Space:
    return replace(s, state=types.SPACE_STATE_CANCELLED, ended_at=at)


def _joined(s: Space, e: ev.ParticipantJoined, at: datetime) -> Space:
    participants = dict(s.participants)
    participants[e.user_id] = Participant(e.user_id, e.role or types.ROLE_LISTENER, at)
    attended = e.user_id == s.host_user_id or e.user_id in s.co_hosts
    return replace(s, participants=participants, unattended_since=None if attended else s.unattended_since)


def _left(s: Space, e: ev.ParticipantLeft, at: datetime) -> Space:
    participants = dict(s.participants)
    participants.pop(e.user_id, None)
    s = replace(
        s,
        participants=participants,
        co_hosts=tuple(u for u in s.co_hosts if u != e.user_id),
        speakers=tuple(u for u in s.speakers if u != e.user_id),
        speak_requests=tuple(r for r in s.speak_requests if r[0] != e.user_id),
        removed=s.removed | {e.user_id} if e.reason == ev.LEAVE_REASON_REMOVED else s.removed,
    )
    if s.is_live and s.unattended_since is None and not s.managers_present():
        s = replace(s, unattended_since=at)
    return s


def _invited(s: Space, e: ev.UsersInvited, at: datetime) -> Space:
    return replace(s, invited=s.invited | set(e.user_ids))


def _link_created(s: Space, e: ev.InviteLinkCreated, at: datetime) -> Space:
    return replace(s, invite_links={**s.invite_links, e.link_id: e.expires_at.ToDatetime(tzinfo=UTC)})


def _with_role(s: Space, user_id: str, role: int) -> dict:
    participants = dict(s.participants)
    current = participants.get(user_id)
    if current is not None:
        participants[user_id] = Participant(current.user_id, role, current.joined_at)
    return participants


def _without_request(s: Space, user_id: str) -> tuple:
    return tuple(r for r in s.speak_requests if r[0] != user_id)


def _co_host_added(s: Space, e: ev.CoHostAdded, at: datetime) -> Space:
    return replace(
        s,
        co_hosts=(*s.co_hosts, e.user_id),
        speakers=tuple(u for u in s.speakers if u != e.user_id),
        participants=_with_role(s, e.user_id, types.ROLE_CO_HOST),
        speak_requests=_without_request(s, e.user_id),
        unattended_since=None if e.user_id in s.participants else s.unattended_since,
    )


def _co_host_removed(s: Space, e: ev.CoHostRemoved, at: datetime) -> Space:
    s = replace(
        s,
        co_hosts=tuple(u for u in s.co_hosts if u != e.user_id),
        participants=_with_role(s, e.user_id, types.ROLE_LISTENER),
    )
    if s.is_live and s.unattended_since is None and not s.managers_present():
        s = replace(s, unattended_since=at)
    return s


def _speaker_added(s: Space, e: ev.SpeakerAdded, at: datetime) -> Space:
    return replace(
        s,
        speakers=(*s.speakers, e.user_id),
        participants=_with_role(s, e.user_id, types.ROLE_SPEAKER),
        speak_requests=_without_request(s, e.user_id),
    )


def _speaker_removed(s: Space, e: ev.SpeakerRemoved, at: datetime) -> Space:
    return replace(
        s,
        speakers=tuple(u for u in s.speakers if u != e.user_id),
        participants=_with_role(s, e.user_id, types.ROLE_LISTENER),
    )


def _speak_requested(s: Space, e: ev.SpeakRequested, at: datetime) -> Space:
    return replace(s, speak_requests=(*s.speak_requests, (e.user_id, at)))


def _request_closed(s: Space, e: Message, at: datetime) -> Space:
    return replace(s, speak_requests=_without_request(s, e.user_id))


_APPLIERS = {
    ev.SpaceCreated: _created,
    ev.SpaceUpdated: _updated,
    ev.SpaceStarted: _started,
    ev.SpaceEnded: _ended,
    ev.SpaceCancelled: _cancelled,
    ev.ParticipantJoined: _joined,
    ev.ParticipantLeft: _left,
    ev.UsersInvited: _invited,
    ev.InviteLinkCreated: _link_created,
    ev.CoHostAdded: _co_host_added,
    ev.CoHostRemoved: _co_host_removed,
    ev.SpeakerAdded: _speaker_added,
    ev.SpeakerRemoved: _speaker_removed,
    ev.SpeakRequested: _speak_requested,
    ev.SpeakRequestWithdrawn: _request_closed,
    ev.SpeakRequestApproved: _request_closed,
    ev.SpeakRequestDenied: _request_closed,
}
