"""Reading Podium's topics as an analyst would: decoded, filtered, one line per event.

Used by `podium events tail` and `export`. Reads every partition without a
consumer group (it never moves anyone's offsets), from the beginning or from
now. A record that does not decode (an event type this build does not know, a
corrupt value) is never dropped silently: the caller is told where it is and why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka.errors import KafkaConnectionError
from google.protobuf import json_format

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope, decode, occurred_at
from libs.events.kafka import log_end_offsets, make_reader, partitions_of


class TailError(Exception):
    """Something the person running the tail can fix: a wrong topic, an unreachable broker."""


@dataclass(frozen=True)
class Filters:
    space_id: str = ""
    event_type: str = ""  # a full name, or the short name (`SpeakerAdded`)

    def match(self, envelope: EventEnvelope) -> bool:
        if self.space_id and envelope.space_id != self.space_id:
            return False
        if self.event_type and self.event_type not in (
            envelope.event_type,
            envelope.event_type.rsplit(".", 1)[-1],
        ):
            return False
        return True


@dataclass(frozen=True)
class Undecodable:
    """A record that is not a Podium event this build can read."""

    topic: str
    partition: int
    offset: int
    key: str
    reason: str

    def as_line(self) -> str:
        return f"undecodable record {self.topic}:{self.partition}@{self.offset} (key {self.key or '-'}): {self.reason}"

    def as_json(self) -> str:
        return json.dumps({"undecodable": self.__dict__}, sort_keys=True)


def as_line(envelope: EventEnvelope, payload) -> str:
    fields = json_format.MessageToDict(payload)
    fields.pop("spaceId", None)
    detail = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in fields.items())
    when = occurred_at(envelope).isoformat(timespec="milliseconds")
    short = envelope.event_type.rsplit(".", 1)[-1]
    return (
        f"{when} {envelope.space_id} v{envelope.stream_version} {short} by {envelope.actor_user_id}: {detail}"
    )


def as_json(envelope: EventEnvelope, payload) -> str:
    record = json_format.MessageToDict(envelope)
    record["payload"] = json_format.MessageToDict(payload)
    record["payload"]["@type"] = envelope.event_type
    return json.dumps(record, sort_keys=True)


async def tail(
    settings: PodiumSettings,
    topics: list[str],
    filters: Filters,
    *,
    from_beginning: bool,
    follow: bool,
    connect_timeout: float = 10.0,
    undecodable: Callable[[Undecodable], None] | None = None,
    **reader_options,
) -> AsyncIterator[tuple[EventEnvelope, object]]:
    """The events on `topics` that pass `filters`, in log order per partition. Each record that does
    not decode is passed to `undecodable` instead (when the Space filter allows its key)."""
    reader = make_reader(
        settings, "podium-events-tail", request_timeout_ms=int(connect_timeout * 1000), **reader_options
    )
    try:
        await asyncio.wait_for(reader.start(), connect_timeout)
    except (KafkaConnectionError, TimeoutError, OSError) as e:
        raise TailError(f"cannot reach the broker at {settings.kafka_bootstrap_servers}: {e}") from e
    try:
        existing = await reader.topics()
        missing = [t for t in topics if t not in existing]
        if missing:
            podium = sorted(t for t in existing if t.startswith("podium."))
            raise TailError(
                f"no topic {', '.join(missing)} on the broker; its Podium topics: {', '.join(podium) or 'none'}"
            )
        parts = [p for t in topics for p in await partitions_of(reader, t)]
        reader.assign(parts)
        # Where a --no-follow read stops: the ends as the records say, since Tansu reports the
        # last batch's base offset + 1 and a read to that would miss the rest of a batch.
        ends = await log_end_offsets(reader, parts) if not follow else {}
        if from_beginning:
            await reader.seek_to_beginning(*parts)
        else:
            await reader.seek_to_end(*parts)
        while True:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        envelope, payload = decode(record.value)
                    except Exception as e:  # whatever the bytes are, the reader is told
                        key = (record.key or b"").decode(errors="replace")
                        if undecodable is not None and filters.space_id in ("", key):
                            where = (record.topic, record.partition, record.offset, key)
                            undecodable(Undecodable(*where, f"{type(e).__name__}: {e}"))
                        continue
                    if filters.match(envelope):
                        yield envelope, payload
            if not follow and await _read_to(reader, ends):
                return
    finally:
        await reader.stop()


async def _read_to(reader, ends: dict) -> bool:
    for tp, end in ends.items():
        if await reader.position(tp) < end:
            return False
    return True


async def space_history(
    settings: PodiumSettings, topic: str, space_id: str, until: datetime | None = None
) -> list[tuple[object, datetime]]:
    """One Space's events on `topic` (up to `until`), each once, in stream order, with their times."""
    by_version: dict[int, tuple[object, datetime]] = {}
    async for envelope, payload in tail(
        settings, [topic], Filters(space_id=space_id), from_beginning=True, follow=False
    ):
        when = occurred_at(envelope)
        if until is None or when <= until:
            by_version.setdefault(envelope.stream_version, (payload, when))  # duplicates dropped by version
    return [by_version[v] for v in sorted(by_version)]
