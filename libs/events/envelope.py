"""Wrapping typed events in the one envelope, and unwrapping them again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

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
        occurred_at=_timestamp(occurred_at),
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
    envelope.payload.Pack(payload, type_url_prefix=TYPE_URL_PREFIX)
    return envelope


_last_stamp: tuple[datetime | None, Timestamp] = (None, Timestamp())


def _timestamp(at: datetime) -> Timestamp:
    """`at` as a protobuf Timestamp. A batch's events share their time (a decision's, or a group
    commit's few), and converting a datetime costs as much as the rest of an envelope, so the last
    one made is made again only for another time."""
    global _last_stamp
    last, stamp = _last_stamp
    if at is not last:
        stamp = Timestamp()
        stamp.FromDatetime(at.astimezone(UTC))
        _last_stamp = (at, stamp)
    return stamp


def unwrap(envelope: EventEnvelope) -> Message:
    """The typed payload. Raises UnknownEventType or DecodeError.

    This runs once per event in every projection (a view catching up runs it hundreds of
    thousands of times a second), so each protobuf field is read once, the class and the type
    URL it must carry are looked up in a dict, and the payload is parsed directly rather than
    through `Any.Unpack`.
    """
    event_type = envelope.event_type
    known = _KNOWN.get(event_type)
    if known is None:
        known = _KNOWN[event_type] = (TYPE_URL_PREFIX + event_type, message_class(event_type))
    payload = envelope.payload
    type_url = payload.type_url
    if type_url != known[0]:
        raise DecodeError(f"payload is {type_url}, not {event_type}")
    return known[1].FromString(payload.value)


# event type -> (the type URL its payload carries, its class): only types this build knows, so it
# is bounded by the build's event catalogue.
_KNOWN: dict[str, tuple[str, type[Message]]] = {}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def occurred_at(envelope: EventEnvelope) -> datetime:
    stamp = envelope.occurred_at
    return _EPOCH + timedelta(0, stamp.seconds, stamp.nanos // 1000)  # positional: twice as fast


def decode(data: bytes) -> tuple[EventEnvelope, Message]:
    """Parses a record value into its envelope and typed payload."""
    envelope = EventEnvelope.FromString(data)
    return envelope, unwrap(envelope)


__all__ = ["Any", "Causation", "EventEnvelope", "decode", "occurred_at", "unwrap", "wrap"]
