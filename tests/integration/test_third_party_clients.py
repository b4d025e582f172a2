"""Analysts' path: clients that are not ours read Podium's topics, and the bytes decode with the
published protos (EventEnvelope, then the payload type it names)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from libs.devstack.broker import EmbeddedBroker
from libs.events.envelope import unwrap
from libs.events.topics import ROOM_EVENTS
from podium.common.v1.envelope_pb2 import EventEnvelope
from podium.room.v1 import room_events_pb2 as rev
from tests.integration.clients import RoomClient

pytestmark = pytest.mark.integration


async def _a_space(room) -> str:
    host = RoomClient(room.channel, "analyst-subject")
    space_id = (await host.CreateSpace(title="read by others")).space.space_id
    await host.StartSpace(space_id=space_id)
    return space_id


def _read_with_kafka_python(bootstrap: str, space_id: str) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(ROOM_EVENTS.name, p) for p in consumer.partitions_for_topic(ROOM_EVENTS.name)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return [m.value for m in consumer if m.key == space_id.encode()]
    finally:
        consumer.close()


async def test_kafka_python_reads_the_room_topic_and_the_bytes_decode_with_the_protos(room, broker):
    space_id = await _a_space(room)
    async with asyncio.timeout(90):  # generous: the shared broker is busy late in a full run
        while len(values := await asyncio.to_thread(_read_with_kafka_python, broker.bootstrap, space_id)) < 2:
            await asyncio.sleep(0.2)
    payloads = [unwrap(EventEnvelope.FromString(v)) for v in values]
    assert isinstance(payloads[0], rev.SpaceCreated) and payloads[0].title == "read by others"
    assert any(isinstance(p, rev.SpaceStarted) for p in payloads)


def _current_librdkafka(into: Path) -> Path:
    """A directory holding the librdkafka that confluent-kafka's wheel ships, as librdkafka.so.1."""
    import confluent_kafka

    shipped = sorted(
        (Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs").glob("librdkafka*.so*")
    )
    assert shipped, "confluent-kafka's wheel no longer ships librdkafka"
    (into / "librdkafka.so.1").symlink_to(shipped[0])
    return into


def _kcat(bootstrap: str, library_dir: Path | None) -> subprocess.CompletedProcess:
    """Debian's kcat reads the room topic from the beginning: for each record a header line
    `partition offset key length`, then exactly `length` bytes of the value."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(library_dir)} if library_dir else None
    return subprocess.run(
        [
            "kcat",
            "-b",
            bootstrap,
            "-C",
            "-t",
            ROOM_EVENTS.name,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %k %S\n%s",
        ],
        capture_output=True,
        timeout=60,
        env=env,
    )


def _records(output: bytes) -> list[tuple[str, bytes]]:
    records, at = [], 0
    while at < len(output):
        end = output.index(b"\n", at)
        _partition, _offset, key, length = output[at:end].decode().split(" ")
        records.append((key, output[end + 1 : end + 1 + int(length)]))
        at = end + 1 + int(length)
    return records


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
async def test_kcat_reads_the_room_topic_and_the_bytes_decode_with_the_protos(room, broker, tmp_path):
    space_id = await _a_space(room)
    library_dir = _current_librdkafka(tmp_path) if isinstance(broker, EmbeddedBroker) else None
    async with asyncio.timeout(60):
        while True:
            result = await asyncio.to_thread(_kcat, broker.bootstrap, library_dir)
            assert result.returncode == 0, result.stderr[-500:]
            values = [value for key, value in _records(result.stdout) if key == space_id]
            if len(values) >= 2:
                break
            await asyncio.sleep(0.2)
    payloads = [unwrap(EventEnvelope.FromString(v)) for v in values]
    assert isinstance(payloads[0], rev.SpaceCreated) and payloads[0].title == "read by others"
    assert any(isinstance(p, rev.SpaceStarted) for p in payloads)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
async def test_debians_own_librdkafka_cannot_talk_to_the_embedded_broker(broker):
    """Why the test above runs kcat on a current librdkafka against Tansu: Debian's librdkafka
    2.0.2 cannot parse Tansu's ApiVersions answer. Fails the day that changes, so the workaround
    can go. Against Apache Kafka, Debian's kcat works as it is (the test above then uses it)."""
    if not isinstance(broker, EmbeddedBroker):
        pytest.skip("only the embedded Tansu broker has this incompatibility")
    result = await asyncio.to_thread(_kcat, broker.bootstrap, None)
    assert result.returncode != 0
    assert b"ApiVersionRequest failed" in result.stderr, result.stderr[-500:]
