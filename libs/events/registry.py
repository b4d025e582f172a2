"""Which protobuf message each `event_type` names, for decoding payloads.

Importing this module imports every event module, so the default descriptor
pool knows every published event type.
"""

from __future__ import annotations

from google.protobuf import symbol_database
from google.protobuf.message import Message

from podium.media.v1 import media_events_pb2
from podium.moderation.v1 import moderation_events_pb2
from podium.presence.v1 import presence_events_pb2
from podium.replay.v1 import replay_events_pb2
from podium.room.v1 import room_events_pb2

EVENT_MODULES = (
    room_events_pb2,
    moderation_events_pb2,
    presence_events_pb2,
    media_events_pb2,
    replay_events_pb2,
)


class UnknownEventType(LookupError):
    """The payload names a type that this build does not know."""


def event_types() -> list[str]:
    """Every event type name this build can decode, sorted."""
    return sorted(name for module in EVENT_MODULES for name in _message_names(module))


def _message_names(module) -> list[str]:
    package = module.DESCRIPTOR.package
    return [f"{package}.{name}" for name in module.DESCRIPTOR.message_types_by_name]


def message_class(event_type: str) -> type[Message]:
    try:
        return symbol_database.Default().GetSymbol(event_type)
    except KeyError as missing:
        raise UnknownEventType(f"unknown event type {event_type!r}") from missing
