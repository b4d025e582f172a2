"""Exporting events for analysis: JSON lines, or Parquet with the payload in typed columns.

One row per event: the envelope's fields, then the payload flattened into
`payload_<field>` columns. Columns and their types come from the protobuf
schema, never from the rows: the union of the fields of every event type this
build knows, each typed by its protobuf type (strings, integers, booleans,
doubles, enums as their names, timestamps, durations; repeated and message
fields as JSON text). So every export has the same columns, whatever events its
window holds; a field an event does not have, or an unset optional one, is null.

It streams: events are written as they are read, Parquet in row groups of
`ROW_GROUP` rows (or `ROW_GROUP_BYTES`), so memory does not grow with the log. Each event is written
once: a duplicate delivery (the same event id, which is the same producer, stream
and version) is dropped. To know that without keeping every id, `Seen` keeps per
stream the version up to which it has seen every event, and the few versions
seen above it: memory grows with the number of streams, not of events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope, occurred_at
from libs.events.registry import event_types, message_class
from libs.events.tail import Filters, Undecodable, as_json, tail
from libs.extras import optional

ENVELOPE_COLUMNS = (
    "event_id",
    "event_type",
    "space_id",
    "producer",
    "stream_id",
    "stream_version",
    "occurred_at",
    "actor_user_id",
    "correlation_id",
    "causation_id",
)
ROW_GROUP = 2000  # rows, or
ROW_GROUP_BYTES = 1024 * 1024  # of events (as encoded), whichever comes first
# Small fetches: what the reader buffers is bounded by these, whatever the log holds.
READER_OPTIONS = {"max_partition_fetch_bytes": 256 * 1024, "fetch_max_bytes": 4 * 1024 * 1024}
TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"


@dataclass
class Seen:
    """Which events have been written, per (producer, stream): every version up to `through`, and the
    versions above it seen out of order."""

    streams: dict[tuple[str, str], tuple[int, set[int]]] = field(default_factory=dict)

    def first_time(self, envelope: EventEnvelope) -> bool:
        key = (envelope.producer, envelope.stream_id)
        version = envelope.stream_version
        through, above = self.streams.get(key, (0, set()))
        if version <= through or version in above:
            return False
        above.add(version)
        while through + 1 in above:
            through += 1
            above.remove(through)
        self.streams[key] = (through, above)
        return True


@dataclass
class Exported:
    written: int = 0
    duplicates: int = 0
    undecodable: int = 0
    first_undecodable: list[Undecodable] = field(default_factory=list)  # the first few, to show

    def skipped(self, record: Undecodable) -> None:
        self.undecodable += 1
        if len(self.first_undecodable) < 10:
            self.first_undecodable.append(record)


def payload_fields() -> dict[str, FieldDescriptor]:
    """Every payload column and the protobuf field it comes from, over every event type. Two event
    types may share a column only where their fields have the same column type."""
    columns: dict[str, FieldDescriptor] = {}
    for event_type in event_types():
        for f in message_class(event_type).DESCRIPTOR.fields:
            name = f"payload_{f.name}"
            if name in columns and _column_kind(columns[name]) != _column_kind(f):
                raise TypeError(
                    f"{event_type}.{f.name} is {_column_kind(f)}, but another event's {f.name} is "
                    f"{_column_kind(columns[name])}: they cannot share the column {name}"
                )
            columns.setdefault(name, f)
    return dict(sorted(columns.items()))


def _column_kind(f: FieldDescriptor) -> str:
    if f.is_repeated or (f.message_type and f.message_type.full_name not in (TIMESTAMP, DURATION)):
        return "json"
    if f.message_type:
        return f.message_type.full_name
    if f.enum_type or f.type == FieldDescriptor.TYPE_STRING:
        return "string"
    if f.type == FieldDescriptor.TYPE_BOOL:
        return "bool"
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return "double"
    if f.type == FieldDescriptor.TYPE_BYTES:
        return "bytes"
    if f.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return "uint64"
    return "int64"


def parquet_schema():
    """The Parquet schema of every export: from the protos alone."""
    pa = optional("pyarrow", "analyst", "Exporting Parquet")

    kinds = {
        "json": pa.string(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "double": pa.float64(),
        "bytes": pa.binary(),
        "uint64": pa.uint64(),
        "int64": pa.int64(),
        TIMESTAMP: pa.timestamp("us", tz="UTC"),
        DURATION: pa.duration("us"),
    }
    columns = [(c, pa.string()) for c in ENVELOPE_COLUMNS]
    columns[ENVELOPE_COLUMNS.index("stream_version")] = ("stream_version", pa.int64())
    columns[ENVELOPE_COLUMNS.index("occurred_at")] = ("occurred_at", pa.timestamp("us", tz="UTC"))
    columns += [(name, kinds[_column_kind(f)]) for name, f in payload_fields().items()]
    return pa.schema(columns)


def _value(payload, f: FieldDescriptor):
    kind = _column_kind(f)
    if kind == "json":
        if not f.is_repeated and not payload.HasField(f.name):
            return None
        return json.dumps(
            json_format.MessageToDict(payload, always_print_fields_with_no_presence=True)[f.json_name]
        )
    if f.has_presence and not payload.HasField(f.name):
        return None  # an optional field left unset
    value = getattr(payload, f.name)
    if kind == TIMESTAMP:
        return value.ToDatetime(tzinfo=UTC)
    if kind == DURATION:
        return value.ToTimedelta()
    if f.enum_type:
        known = f.enum_type.values_by_number.get(value)
        return known.name if known else str(value)
    return value


def row(envelope: EventEnvelope, payload) -> dict:
    out = {c: getattr(envelope, c) for c in ENVELOPE_COLUMNS if c != "occurred_at"}
    out["occurred_at"] = occurred_at(envelope)
    descriptor: Descriptor = payload.DESCRIPTOR
    for f in descriptor.fields:
        out[f"payload_{f.name}"] = _value(payload, f)
    return out


class _ParquetOut:
    def __init__(self, out: Path):
        pa = optional("pyarrow", "analyst", "Exporting Parquet")
        pq = optional("pyarrow.parquet", "analyst", "Exporting Parquet")

        self.pa = pa
        self.schema = parquet_schema()
        self.writer = pq.ParquetWriter(out, self.schema)
        self.rows: list[dict] = []
        self.bytes = 0

    def add(self, envelope: EventEnvelope, payload) -> None:
        self.rows.append(row(envelope, payload))
        self.bytes += envelope.ByteSize()
        if len(self.rows) >= ROW_GROUP or self.bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows, self.bytes = [], 0
            self.pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages

    def close(self) -> None:
        self.flush()
        self.writer.close()


class _JsonLinesOut:
    def __init__(self, out: Path):
        self.file = out.open("w")

    def add(self, envelope: EventEnvelope, payload) -> None:
        self.file.write(as_json(envelope, payload) + "\n")

    def close(self) -> None:
        self.file.close()


FORMATS = {"jsonl": _JsonLinesOut, "parquet": _ParquetOut}


async def export(
    settings: PodiumSettings,
    topics: list[str],
    since: datetime,
    until: datetime,
    out: Path,
    fmt: str,
    on_event: Callable[[], None] = lambda: None,
) -> Exported:
    """Writes the events on `topics` that occurred in [since, until) to `out`, each once, in log
    order per partition, as they are read."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use jsonl or parquet")
    result, seen = Exported(), Seen()
    sink = FORMATS[fmt](out)
    try:
        async for envelope, payload in tail(
            settings,
            topics,
            Filters(),
            from_beginning=True,
            follow=False,
            undecodable=result.skipped,
            **READER_OPTIONS,
        ):
            if not seen.first_time(envelope):
                result.duplicates += 1
                continue
            if since <= occurred_at(envelope) < until:
                sink.add(envelope, payload)
                result.written += 1
                on_event()
    finally:
        sink.close()
    return result
