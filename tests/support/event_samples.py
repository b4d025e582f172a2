"""Events of every published type, written straight to their topics, for tests of the analysts' tools.

`samples()` gives, for every event type, one payload with every field set (nested messages and
repeated fields with one element, optional fields present) and one with only `space_id` set (every
optional field and timestamp absent), so a reader sees each field both ways. `write()` wraps them in
envelopes and sends them to the topic of their package, keyed by Space id, as the services do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, EventEnvelope, wrap
from libs.events.kafka import make_producer
from libs.events.registry import event_types, message_class
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, REPLAY_EVENTS, ROOM_EVENTS

TOPIC_OF_PACKAGE = {
    "podium.room.v1": ROOM_EVENTS.name,
    "podium.moderation.v1": MODERATION_EVENTS.name,
    "podium.presence.v1": PRESENCE_EVENTS.name,
    "podium.media.v1": MEDIA_EVENTS.name,
    "podium.replay.v1": REPLAY_EVENTS.name,
}
WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def fill(message: Message, depth: int = 0) -> Message:
    """Sets every field of `message`: scalars to a value that is not the default, enums to their
    first named value, timestamps to WHEN, messages recursively, repeated fields to one element."""
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            target = getattr(message, field.name).add() if field.is_repeated else getattr(message, field.name)
            if field.message_type.full_name == "google.protobuf.Timestamp":
                target.FromDatetime(WHEN)
            elif depth < 3:
                fill(target, depth + 1)
                target.SetInParent()
            continue
        value = _scalar(field)
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def _scalar(field: FieldDescriptor):
    if field.enum_type is not None:
        return field.enum_type.values[min(1, len(field.enum_type.values) - 1)].number
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"sample-{field.name}"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x01\x02"
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5
    return 7


def samples(space_id: str) -> list[Message]:
    """Two payloads of every event type: only `space_id` set, then every field (the order that once
    crashed the Parquet export, which took a column's type from the first row that had a value)."""
    found = []
    for event_type in event_types():
        cls = message_class(event_type)
        full = fill(cls())
        bare = cls()
        for payload in (bare, full):
            if "space_id" in cls.DESCRIPTOR.fields_by_name:
                payload.space_id = space_id
            found.append(payload)
    return found


def envelopes(space_id: str, payloads: Iterable[Message], start: datetime = WHEN) -> list[EventEnvelope]:
    """The payloads wrapped as one stream of the Space, a millisecond apart."""
    causation = Causation(actor_user_id="sample-actor", correlation_id="sample", causation_id="sample")
    return [
        wrap(
            payload,
            producer="samples",
            stream_id=f"samples/{space_id}",
            version=version,
            space_id=space_id,
            occurred_at=start + timedelta(milliseconds=version),
            causation=causation,
        )
        for version, payload in enumerate(payloads, start=1)
    ]


def topic_of(envelope: EventEnvelope) -> str:
    return TOPIC_OF_PACKAGE[envelope.event_type.rsplit(".", 1)[0]]


async def write(bootstrap: str, records: Iterable[tuple[str, str, bytes]]) -> int:
    """Sends (topic, key, value) records, in order; returns how many once all are acknowledged."""
    producer = make_producer(PodiumSettings(kafka_bootstrap_servers=bootstrap), "test-event-samples")
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key.encode()) for topic, key, value in records]
        for future in sent:
            await future
        return len(sent)
    finally:
        await producer.stop()


def as_records(items: Iterable[EventEnvelope]) -> list[tuple[str, str, bytes]]:
    return [(topic_of(e), e.space_id, e.SerializeToString()) for e in items]
