"""Exporting events for analysis: JSON lines, or Parquet with the payload in typed columns.

One row per event: the envelope's fields, then the payload flattened into
`payload_<field>` columns where the field is a scalar (strings, numbers,
booleans, enums as their names, timestamps), and as JSON text where it is
repeated or a message. Columns are the union over the exported event types;
a column is empty (null) for events that do not have that field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope, occurred_at
from libs.events.tail import Filters, as_json, tail

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


def _payload_columns(payload) -> dict:
    row = {}
    for field in payload.DESCRIPTOR.fields:
        value = getattr(payload, field.name)
        name = f"payload_{field.name}"
        if field.is_repeated or (
            field.message_type and field.message_type.full_name != "google.protobuf.Timestamp"
        ):
            row[name] = json.dumps(json_format.MessageToDict(payload).get(field.json_name))
        elif field.message_type:  # a Timestamp
            row[name] = value.ToDatetime(tzinfo=UTC) if payload.HasField(field.name) else None
        elif field.enum_type:
            row[name] = field.enum_type.values_by_number[value].name
        elif field.type == FieldDescriptor.TYPE_BOOL:
            row[name] = bool(value)
        elif field.type == FieldDescriptor.TYPE_STRING:
            row[name] = value
        else:
            row[name] = int(value)
    return row


def _row(envelope: EventEnvelope, payload) -> dict:
    row = {c: getattr(envelope, c) for c in ENVELOPE_COLUMNS if c != "occurred_at"}
    row["occurred_at"] = occurred_at(envelope)
    row.update(_payload_columns(payload))
    return row


async def collect(
    settings: PodiumSettings,
    topics: list[str],
    since: datetime,
    until: datetime,
    on_event: Callable[[], None] = lambda: None,
) -> list[tuple[EventEnvelope, object]]:
    """The events on `topics` that occurred in [since, until), in log order."""
    found = []
    async for envelope, payload in tail(settings, topics, Filters(), from_beginning=True, follow=False):
        if since <= occurred_at(envelope) < until:
            found.append((envelope, payload))
            on_event()
    return found


def write(events: list[tuple[EventEnvelope, object]], out: Path, fmt: str) -> int:
    """Writes `events` to `out` as `jsonl` or `parquet`; returns how many."""
    if fmt == "jsonl":
        out.write_text("".join(as_json(e, p) + "\n" for e, p in events))
    elif fmt == "parquet":
        _write_parquet([_row(e, p) for e, p in events], out)
    else:
        raise ValueError(f"unknown format {fmt!r}: use jsonl or parquet")
    return len(events)


def _write_parquet(rows: list[dict], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, pa.DataType] = {c: pa.string() for c in ENVELOPE_COLUMNS}
    columns["stream_version"] = pa.int64()
    columns["occurred_at"] = pa.timestamp("us", tz="UTC")
    for row in rows:
        for name, value in row.items():
            if name in columns:
                continue
            if isinstance(value, bool):
                columns[name] = pa.bool_()
            elif isinstance(value, int):
                columns[name] = pa.int64()
            elif isinstance(value, datetime):
                columns[name] = pa.timestamp("us", tz="UTC")
            else:
                columns[name] = pa.string()
    schema = pa.schema([(name, kind) for name, kind in columns.items()])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
