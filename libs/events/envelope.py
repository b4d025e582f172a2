"""Wrapping typed events in the one envelope, and unwrapping them again."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from libs.events.ids import new_id
from libs.events.registry import message_class
from podium.common.v1.envelope_pb2 import EventEnvelope

TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True)
class Causation:
    """Who and what caused a batch of events."""

    actor_user_id: str
    correlation_id: str
    causation_id: str
    traceparent: str = ""
    tracestate: str = ""


def wrap(
    payload: Message,
    *,
    producer: str,
    stream_id: str,
    version: int,
    space_id: str,
    occurred_at: datetime,
    causation: Causation,
) -> EventEnvelope:
    envelope = EventEnvelope(
        event_id=new_id(),
        space_id=space_id,
        producer=producer,
        stream_id=stream_id,
        stream_version=version,
        event_type=payload.DESCRIPTOR.full_name,
        actor_user_id=causation.actor_user_id,
        correlation_id=causation.correlation_id,
        causation_id=causation.causation_id,
        traceparent=causation.traceparent,
        tracestate=causation.tracestate,
    )
    envelope.occurred_at.FromDatetime(occurred_at.astimezone(UTC))
    envelope.payload.Pack(payload, type_url_prefix=TYPE_URL_PREFIX)
    return envelope


def unwrap(envelope: EventEnvelope) -> Message:
    """The typed payload. Raises UnknownEventType or DecodeError.

    This runs once per event in every projection, so the class lookup is cached
    and the payload is parsed directly rather than through `Any.Unpack`.
    """
    cls = _payload_class(envelope.event_type)
    if envelope.payload.type_url != TYPE_URL_PREFIX + envelope.event_type:
        raise DecodeError(f"payload is {envelope.payload.type_url}, not {envelope.event_type}")
    return cls.FromString(envelope.payload.value)


@functools.lru_cache(maxsize=1024)
def _payload_class(event_type: str) -> type[Message]:
    return message_class(event_type)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def occurred_at(envelope: EventEnvelope) -> datetime:
    stamp = envelope.occurred_at
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def decode(data: bytes) -> tuple[EventEnvelope, Message]:
    """Parses a record value into its envelope and typed payload."""
    envelope = EventEnvelope.FromString(data)
    return envelope, unwrap(envelope)


__all__ = ["Any", "Causation", "EventEnvelope", "decode", "occurred_at", "unwrap", "wrap"]
