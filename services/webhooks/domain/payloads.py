"""The JSON body POSTed for each event: one explicit shape per type (docs/webhooks.md).

    body = webhook_body(envelope, payload)     # None: no webhook is told of this event

Every body is an object with the same envelope fields (`id`, `type`,
`space_id`, `occurred_at`, `actor_user_id`) and a `data` object whose fields
depend on `type`. Enum values are lower-case names without their prefix
(`ROLE_CO_HOST` is `co_host`; an unset one is null); times are RFC 3339 in UTC.
Bodies are serialised once, compactly, and signed and sent byte for byte as
stored, so what a receiver verifies is exactly what Podium signed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from podium.common.v1.envelope_pb2 import EventEnvelope
from podium.moderation.v1 import moderation_events_pb2 as mod
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.replay.v1 import replay_events_pb2 as rep
from podium.room.v1 import room_events_pb2 as room
from podium.room.v1 import room_types_pb2 as rt
from services.webhooks.domain.event_types import WebhookEventType, name, webhook_type


@dataclass(frozen=True)
class WebhookBody:
    event_type: WebhookEventType
    json: str  # the exact bytes (UTF-8) that are signed and POSTed


def webhook_body(envelope: EventEnvelope, payload: Message) -> WebhookBody | None:
    event_type = webhook_type(payload)
    if event_type is None:
        return None
    body = {
        "id": envelope.event_id,
        "type": name(event_type),
        "space_id": envelope.space_id,
        "occurred_at": _time(envelope.occurred_at),
        "actor_user_id": envelope.actor_user_id,
        "data": _DATA[type(payload)](payload),
    }
    return WebhookBody(event_type, json.dumps(body, separators=(",", ":"), ensure_ascii=False))


def enum_name(enum: EnumDescriptor, number: int) -> str | None:
    """`ROLE_CO_HOST` -> `co_host`; the zero value (unset) -> None; a number this build does not
    know (a newer producer) -> its number as text, so nothing is silently renamed."""
    if number == 0:
        return None
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower()


def _time(stamp: Timestamp) -> str | None:
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else None


def _role(number: int) -> str | None:
    return enum_name(rt.Role.DESCRIPTOR, number)


def _scheduled(e: room.SpaceCreated) -> dict[str, Any]:
    return {
        "host_user_id": e.host_user_id,
        "title": e.title,
        "description": e.description,
        "join_policy": enum_name(rt.JoinPolicy.DESCRIPTOR, e.join_policy),
        "scheduled_start": _time(e.scheduled_start),
        "recording_enabled": e.recording_enabled,
    }


def _joined(e: room.ParticipantJoined) -> dict[str, Any]:
    data = {
        "user_id": e.user_id,
        "role": _role(e.role),
        "source": enum_name(room.JoinSource.DESCRIPTOR, e.source),
    }
    if e.invite_link_id:
        data["invite_link_id"] = e.invite_link_id
    return data


def _left(e: room.ParticipantLeft) -> dict[str, Any]:
    return {
        "user_id": e.user_id,
        "reason": enum_name(room.LeaveReason.DESCRIPTOR, e.reason),
        "previous_role": _role(e.previous_role),
    }


def _role_changed(user_id: str, role: int, change: str, reason: str | None = None) -> dict[str, Any]:
    data = {"user_id": user_id, "role": _role(role), "change": change}
    if reason is not None:
        data["reason"] = reason
    return data


def _finalized(e: rep.ReplayFinalized) -> dict[str, Any]:
    return {
        "duration_seconds": e.duration.ToTimedelta().total_seconds(),
        "size_bytes": e.size_bytes,
        "speaker_user_ids": list(e.speaker_ids),
        "recording_started_at": _time(e.recording_started_at),
        "ended_at": _time(e.ended_at),
    }


_DATA: dict[type[Message], Callable[[Any], dict[str, Any]]] = {
    room.SpaceCreated: _scheduled,
    room.SpaceStarted: lambda e: {"host_user_id": e.host_user_id},
    room.SpaceEnded: lambda e: {"reason": enum_name(room.EndReason.DESCRIPTOR, e.reason)},
    room.SpaceCancelled: lambda e: {},
    room.ParticipantJoined: _joined,
    room.ParticipantLeft: _left,
    room.CoHostAdded: lambda e: _role_changed(e.user_id, rt.ROLE_CO_HOST, "co_host_added"),
    room.CoHostRemoved: lambda e: _role_changed(e.user_id, rt.ROLE_LISTENER, "co_host_removed"),
    room.SpeakerAdded: lambda e: _role_changed(
        e.user_id, rt.ROLE_SPEAKER, "speaker_added", enum_name(room.SpeakerSource.DESCRIPTOR, e.source)
    ),
    room.SpeakerRemoved: lambda e: _role_changed(
        e.user_id,
        rt.ROLE_LISTENER,
        "speaker_removed",
        enum_name(room.SpeakerRemovalReason.DESCRIPTOR, e.reason),
    ),
    mod.ParticipantMuted: lambda e: {"user_id": e.user_id, "kind": enum_name(mt.MuteKind.DESCRIPTOR, e.kind)},
    mod.ParticipantUnmuted: lambda e: {
        "user_id": e.user_id,
        "lifted": enum_name(mt.MuteKind.DESCRIPTOR, e.lifted),
    },
    mod.ParticipantRemoved: lambda e: {"user_id": e.user_id, "reason": e.reason},
    rep.ReplayFinalized: _finalized,
    rep.ReplayDeleted: lambda e: {"reason": enum_name(rep.DeletionReason.DESCRIPTOR, e.reason)},
}
