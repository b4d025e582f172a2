"""Room state as the protobuf views the API returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from libs.domain.streams import room_token
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.state import Participant, Space

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
ROLE_ORDER = {types.ROLE_HOST: 0, types.ROLE_CO_HOST: 1, types.ROLE_SPEAKER: 2, types.ROLE_LISTENER: 3}


def _set_time(message: Message, name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, name).FromDatetime(value)


def space_view(state: Space) -> types.Space:
    view = types.Space(
        space_id=state.space_id,
        title=state.title,
        description=state.description,
        host_user_id=state.host_user_id,
        join_policy=state.join_policy,
        state=state.state,
        recording_enabled=state.recording_enabled,
        topics=list(state.topics),
        language=state.language,
        co_host_user_ids=list(state.co_hosts),
        speaker_user_ids=list(state.speakers),
        participant_count=len(state.participants),  # O(1): counted by the membership fold
        listener_count=state.listener_count,
        subscriber_count=len(state.subscribers),
        version=state.version,
        room_token=room_token(state.version, state.shard_positions),
    )
    for name in ("scheduled_start", "created_at", "started_at", "ended_at"):
        _set_time(view, name, getattr(state, name))
    return view


def participants_in_order(state: Space) -> list[tuple[tuple[int, int, str], Participant]]:
    """Everyone present, each with their place: the host, then co-hosts, speakers and listeners,
    each in joining order. A page of them costs a message each for the page alone."""
    return sorted((participant_order(p), p) for p in state.participants.values())


def participant_order(participant: Participant) -> tuple[int, int, str]:
    """Where a participant stands in that order, and a page token's key: their role, when they
    joined (microseconds since the epoch, as the message's `joined_at` says) and their id."""
    joined = (participant.joined_at - EPOCH) // MICROSECOND
    return ROLE_ORDER.get(participant.role, 9), joined, participant.user_id


def participants_view(state: Space) -> list[types.Participant]:
    """`participants_in_order`, every one as its message."""
    return [participant_message(p) for _, p in participants_in_order(state)]


def participant_view(state: Space, user_id: str) -> types.Participant | None:
    """The user as a participant, or None when they are not in the Space now."""
    participant = state.participants.get(user_id)
    return None if participant is None else participant_message(participant)


def participant_message(participant: Participant) -> types.Participant:
    view = types.Participant(user_id=participant.user_id, role=participant.role)
    view.joined_at.FromDatetime(participant.joined_at)
    return view


def speak_request_key(request: types.SpeakRequest) -> tuple[int, str]:
    """Where a request stands in the queue (a page token's key)."""
    return request.requested_at.ToMicroseconds(), request.user_id


def speak_requests_view(state: Space) -> list[types.SpeakRequest]:
    views = []
    for user_id, requested_at in state.speak_requests:
        view = types.SpeakRequest(user_id=user_id)
        view.requested_at.FromDatetime(requested_at)
        views.append(view)
    return views
