"""Reading Podium's topics as an analyst would: decoded, filtered, one line per event.

Used by `podium events tail` and `export`. Reads every partition without a
consumer group (it never moves anyone's offsets), from the beginning or from
now. A record that does not decode (an event type this build does not know, a
corrupt value) is never dropped silently: the caller is told where it is and why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from aiokafka.errors import KafkaConnectionError
from google.protobuf import json_format

from libs.config.settings import PodiumSettings
from libs.domain.streams import SHARD_MARK, space_stream
from libs.events.envelope import EventEnvelope, decode, occurred_at
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.projection.ordering import StreamGate


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
    # A listener shard's versions are its own (ADR 0012): its line names it, `<space>/l<k> v<n>`.
    own, stream = space_stream(envelope.space_id), envelope.stream_id
    shard = stream.removeprefix(own) if stream.startswith(own + SHARD_MARK) else ""
    return (
        f"{when} {envelope.space_id}{shard} v{envelope.stream_version} {short} by {envelope.actor_user_id}: "
        f"{detail}"
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


class Logged(NamedTuple):
    """One event of a Space's history: its payload and time, and where it is in the log (its stream
    and its version there). Unpacks as `(payload, at, stream_id, version)`."""

    payload: object
    at: datetime
    stream_id: str
    version: int


def in_log_order(read: Iterable[tuple[EventEnvelope, object]]) -> list[Logged]:
    """Events as read, each once, in the order a projection applies them (`StreamGate`, keyed by
    producer and stream): each stream in version order, a duplicate dropped, an event after a gap
    held until the gap fills (and, where the log never fills it, given at the end all the same).

    The log's order across streams, not time's: `podium report` folds these with analytics' code,
    which folds a partition in that order, so the two agree. A Space's streams (its own and its
    listener shards, ADR 0012) share a partition, so that order is one order. Readers that need
    time order merge by time (`services.replay.domain.space_at.merge_by_time`)."""
    gate: StreamGate[Logged] = StreamGate()
    out: list[Logged] = []
    for envelope, payload in read:
        version = envelope.stream_version
        item = Logged(payload, occurred_at(envelope), envelope.stream_id, version)
        out.extend(gate.offer((envelope.producer, envelope.stream_id), version, item)[1])
    for stream in gate.held_streams():
        out.extend(gate.release(stream))
    return out


async def space_log(
    settings: PodiumSettings, topic: str, space_id: str, until: datetime | None = None
) -> list[Logged]:
    """One Space's events on `topic` (up to `until`), each once, in log order (`in_log_order`)."""
    found = tail(settings, [topic], Filters(space_id=space_id), from_beginning=True, follow=False)
    read = [event async for event in found]
    return [e for e in in_log_order(read) if until is None or e.at <= until]


async def space_history(
    settings: PodiumSettings, topic: str, space_id: str, until: datetime | None = None
) -> list[tuple[object, datetime]]:
    """One Space's events on `topic` (up to `until`), each once, in log order, with their times."""
    return [(e.payload, e.at) for e in await space_log(settings, topic, space_id, until)]
