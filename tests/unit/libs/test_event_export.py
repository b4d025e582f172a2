"""`podium events export`'s pure parts: each event once, and Parquet columns typed by the protos."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from libs.events.export import Seen, _ParquetOut, parquet_schema, payload_fields, row
from libs.events.registry import event_types, message_class
from tests.support import event_samples


def test_each_event_is_written_once_however_often_and_in_whatever_order_it_comes():
    events = event_samples.envelopes("sp-1", event_samples.samples("sp-1")[:6])
    seen = Seen()
    arrivals = [events[0], events[1], events[0], events[3], events[2], events[3], events[1], events[4]]
    first = [e.event_id for e in arrivals if seen.first_time(e)]
    assert first == [events[i].event_id for i in (0, 1, 3, 2, 4)]
    # in-order streams keep one number each, not one id per event
    assert seen.streams == {("samples", "samples/sp-1"): (5, set())}


def test_the_parquet_schema_comes_from_the_protos_and_covers_every_field_of_every_event():
    schema = parquet_schema()
    for event_type in event_types():
        for field in message_class(event_type).DESCRIPTOR.fields:
            assert f"payload_{field.name}" in schema.names
    assert schema.field("payload_scheduled_start").type == pa.timestamp("us", tz="UTC")
    assert schema.field("payload_recording_enabled").type == pa.bool_()
    assert schema.field("payload_role").type == pa.string()  # an enum, by name
    assert schema.field("payload_talked_ms").type == pa.int64()
    assert set(payload_fields()) == {name for name in schema.names if name.startswith("payload_")}


def test_every_event_type_with_optional_fields_set_and_unset_writes_to_parquet_with_those_types(tmp_path):
    payloads = event_samples.samples("sp-1")
    envelopes = event_samples.envelopes("sp-1", payloads)
    out = _ParquetOut(tmp_path / "all.parquet")
    for envelope, payload in zip(envelopes, payloads, strict=True):
        out.add(envelope, payload)
    out.close()
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.schema == parquet_schema()
    rows = table.to_pylist()
    assert len(rows) == len(payloads) == 2 * len(event_types())
    created = [r for r in rows if r["event_type"] == "podium.room.v1.SpaceCreated"]
    assert created[0]["payload_scheduled_start"] is None  # created without a schedule, first
    assert created[1]["payload_scheduled_start"] == event_samples.WHEN
    for envelope, payload, written in zip(envelopes, payloads, rows, strict=True):
        expected = row(envelope, payload)
        assert {name: written[name] for name in expected} == expected
        assert all(written[name] is None for name in written.keys() - expected.keys())  # not its fields
