"""The webhook event types: the name each has in a body, and the log events it comes from.

    webhook_type(payload) -> WebhookEventType | None

One Podium event is at most one webhook event. Most map by their type alone;
`SpaceCreated` is `space.scheduled` only when it has a scheduled start (a Space
created to start now says nothing a subscriber waits for until it starts).
"""

from __future__ import annotations

from google.protobuf.message import Message

from podium.moderation.v1 import moderation_events_pb2 as mod
from podium.replay.v1 import replay_events_pb2 as rep
from podium.room.v1 import room_events_pb2 as room
from podium.webhooks.v1 import webhook_types_pb2 as wt

WebhookEventType = int  # a wt.WebhookEventType value

#: The name in a body's `type`, for each subscribable type.
NAMES: dict[WebhookEventType, str] = {
    wt.WEBHOOK_EVENT_TYPE_SPACE_SCHEDULED: "space.scheduled",
    wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED: "space.started",
    wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED: "space.ended",
    wt.WEBHOOK_EVENT_TYPE_SPACE_CANCELLED: "space.cancelled",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_JOINED: "participant.joined",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_LEFT: "participant.left",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_ROLE_CHANGED: "participant.role_changed",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_MUTED: "participant.muted",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_UNMUTED: "participant.unmuted",
    wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_REMOVED: "participant.removed",
    wt.WEBHOOK_EVENT_TYPE_RECORDING_READY: "recording.ready",
    wt.WEBHOOK_EVENT_TYPE_REPLAY_DELETED: "replay.deleted",
}
BY_NAME: dict[str, WebhookEventType] = {name: value for value, name in NAMES.items()}
ALL_TYPES: tuple[WebhookEventType, ...] = tuple(NAMES)

_BY_EVENT: dict[type[Message], WebhookEventType] = {
    room.SpaceStarted: wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED,
    room.SpaceEnded: wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED,
    room.SpaceCancelled: wt.WEBHOOK_EVENT_TYPE_SPACE_CANCELLED,
    room.ParticipantJoined: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_JOINED,
    room.ParticipantLeft: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_LEFT,
    room.CoHostAdded: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_ROLE_CHANGED,
    room.CoHostRemoved: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_ROLE_CHANGED,
    room.SpeakerAdded: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_ROLE_CHANGED,
    room.SpeakerRemoved: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_ROLE_CHANGED,
    mod.ParticipantMuted: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_MUTED,
    mod.ParticipantUnmuted: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_UNMUTED,
    mod.ParticipantRemoved: wt.WEBHOOK_EVENT_TYPE_PARTICIPANT_REMOVED,
    rep.ReplayFinalized: wt.WEBHOOK_EVENT_TYPE_RECORDING_READY,
    rep.ReplayDeleted: wt.WEBHOOK_EVENT_TYPE_REPLAY_DELETED,
}


def webhook_type(payload: Message) -> WebhookEventType | None:
    """The webhook event type `payload` is, or None when no webhook is told of it."""
    if isinstance(payload, room.SpaceCreated):
        return wt.WEBHOOK_EVENT_TYPE_SPACE_SCHEDULED if payload.HasField("scheduled_start") else None
    return _BY_EVENT.get(type(payload))


def name(event_type: WebhookEventType) -> str:
    return NAMES[event_type]
