"""`podium events export` and `tail` against the real broker: every topic, each event once, typed
Parquet, a line for what does not decode, and memory that does not grow with the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from libs.events.export import parquet_schema
from libs.events.registry import event_types
from libs.events.topics import EVENT_TOPICS, ROOM_EVENTS, TopicSpec
from podium.room.v1 import room_events_pb2 as rev
from tests.support import event_samples
from tests.support.infrastructure import make_topics

pytestmark = pytest.mark.integration


def _podium(*args: str, bootstrap: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


async def test_export_reads_every_event_topic_writes_each_event_once_with_parquet_types_from_the_protos(
    private_broker, tmp_path
):
    space_id = f"export-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)  # a window of its own
    envelopes = event_samples.envelopes(space_id, event_samples.samples(space_id), start)
    records = event_samples.as_records(envelopes)
    garbage = (ROOM_EVENTS.name, space_id, b"\xff not an envelope")
    await event_samples.write(private_broker.bootstrap, [*records, records[0], records[-1], garbage])
    assert {topic for topic, _, _ in records} == {t.name for t in EVENT_TOPICS}

    out = tmp_path / "window.parquet"
    window = ("--since", start.isoformat(), "--until", (start + timedelta(minutes=1)).isoformat())
    result = _podium(
        "events",
        "export",
        *window,
        "--format",
        "parquet",
        "--out",
        str(out),
        bootstrap=private_broker.bootstrap,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"undecodable record {ROOM_EVENTS.name}:" in result.stdout and f"(key {space_id})" in result.stdout
    table = pq.read_table(out)
    assert table.schema == parquet_schema()
    mine = table.filter(pc.equal(table["space_id"], space_id))
    assert mine.num_rows == len(envelopes)  # each once, the duplicates dropped
    assert sorted(set(mine["event_type"].to_pylist())) == event_types()
    created = [r for r in mine.to_pylist() if r["event_type"] == "podium.room.v1.SpaceCreated"]
    assert [r["payload_scheduled_start"] for r in created] == [None, event_samples.WHEN]
    assert mine.schema.field("payload_scheduled_start").type == pa.timestamp("us", tz="UTC")

    jsonl = tmp_path / "window.jsonl"
    again = _podium("events", "export", *window, "--out", str(jsonl), bootstrap=private_broker.bootstrap)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(line["eventId"] for line in lines if line["spaceId"] == space_id) == sorted(
        e.event_id for e in envelopes
    )


async def test_tail_prints_a_line_for_each_record_it_cannot_decode_in_its_place(private_broker):
    space_id = f"tail-bad-{uuid.uuid4().hex[:8]}"
    created, started = event_samples.envelopes(
        space_id, [rev.SpaceCreated(space_id=space_id), rev.SpaceStarted()]
    )
    unknown = event_samples.envelopes(space_id, [rev.SpaceEnded()])[0]
    unknown.event_type = "podium.room.v1.SpaceTeleported"  # from a newer build
    unknown.payload.type_url = "type.googleapis.com/podium.room.v1.SpaceTeleported"
    await event_samples.write(
        private_broker.bootstrap,
        [
            (ROOM_EVENTS.name, space_id, created.SerializeToString()),
            (ROOM_EVENTS.name, space_id, b"\x0a\xff\xff"),
            (ROOM_EVENTS.name, space_id, unknown.SerializeToString()),
            (ROOM_EVENTS.name, space_id, started.SerializeToString()),
        ],
    )
    args = (
        "events",
        "tail",
        "--from-beginning",
        "--no-follow",
        "--space",
        space_id,
        "--topic",
        ROOM_EVENTS.name,
    )
    result = _podium(*args, bootstrap=private_broker.bootstrap)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines
    assert "SpaceCreated" in lines[0] and "SpaceStarted" in lines[3]
    assert lines[1].startswith(f"undecodable record {ROOM_EVENTS.name}:") and "DecodeError" in lines[1]
    assert lines[2].startswith("undecodable record") and "SpaceTeleported" in lines[2]
    as_json = _podium(*args, "--json", bootstrap=private_broker.bootstrap)
    bad = [json.loads(line)["undecodable"] for line in as_json.stdout.splitlines() if "undecodable" in line]
    assert [b["key"] for b in bad] == [space_id, space_id] and bad[0]["offset"] < bad[1]["offset"]


# The bounded-memory test: a log several times the cap, exported in a child process that reports how
# far its peak resident memory (VmHWM) rose above its resident memory once everything was imported.
# Not ru_maxrss: Linux carries into it the pages the child shared with this process (which holds the
# whole log) between fork and exec.
MEASURE = """
import asyncio, json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from libs.config.settings import PodiumSettings
from libs.events.export import export, parquet_schema

def status(name):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))  # KiB

parquet_schema()  # imports pyarrow and builds the schema before the baseline
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from here
before, began = status("VmRSS"), time.monotonic()
bootstrap, topic, out, fmt = sys.argv[1:5]
result = asyncio.run(export(PodiumSettings(kafka_bootstrap_servers=bootstrap), [topic],
                            datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), Path(out), fmt))
grew = status("VmHWM") - before
print(json.dumps({"written": result.written, "grew_kib": grew, "seconds": time.monotonic() - began}))
"""
CAP_MIB = 32
SMALL_MIB, BIG_MIB = 4, 104


def _log(topic: str, mib: int, spaces: int = 20) -> list[tuple[str, str, bytes]]:
    """About `mib` MiB of 8 KiB room events, over `spaces` Spaces, for `topic`."""
    padding = "x" * 7900
    records = []
    for i in range(spaces):
        space_id = f"{topic}-{i}"
        payloads = [rev.SpaceCreated(space_id=space_id, title="big", description=padding)]
        payloads += [rev.SpaceUpdated(space_id=space_id, description=padding)] * (mib * 128 // spaces - 1)
        records += [
            (topic, space_id, e.SerializeToString()) for e in event_samples.envelopes(space_id, payloads)
        ]
    return records


def _export_measured(bootstrap: str, topic: str, out, fmt: str) -> dict:
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, bootstrap, topic, str(out), fmt],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert measured.returncode == 0, measured.stderr[-2000:]
    return json.loads(measured.stdout.strip().splitlines()[-1])


async def test_export_streams_its_memory_does_not_grow_with_a_log_several_times_its_cap(
    private_broker, tmp_path
):
    small, big = (TopicSpec(f"test.export.{name}", "a log to export") for name in ("small", "big"))
    await make_topics(private_broker.bootstrap, (small, big))
    logs = {small.name: _log(small.name, SMALL_MIB), big.name: _log(big.name, BIG_MIB)}
    await event_samples.write(private_broker.bootstrap, [r for records in logs.values() for r in records])
    size = {topic: sum(len(value) for _, _, value in records) for topic, records in logs.items()}
    assert size[big.name] - size[small.name] > 3 * CAP_MIB * 2**20

    # Parquet, the format that buffers (a row group at a time); JSON lines go out a line at a time
    # through the same reader.
    grew = {}
    for topic in (small.name, big.name):
        figures = _export_measured(private_broker.bootstrap, topic, tmp_path / f"{topic}.parquet", "parquet")
        assert figures["written"] == len(logs[topic])
        grew[topic] = figures["grew_kib"] * 1024
        print(
            f"export parquet: log {size[topic] / 2**20:.0f} MiB, peak RSS grew {grew[topic] / 2**20:.0f} MiB"
            f" in {figures['seconds']:.1f} s"
        )
    # What the export holds at once does not depend on how long the log is. (The small log's export
    # measures what any export costs: the client, the writer, the allocators' first arenas. The export
    # that held the whole log grew by 579 MiB on the big one.)
    assert grew[big.name] - grew[small.name] < CAP_MIB * 2**20, grew
