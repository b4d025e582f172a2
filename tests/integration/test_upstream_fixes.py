"""The dev broker's short end offsets, and the workaround in `libs.streams.faust_fixes`.

Tansu reports a partition's end as its last batch's base offset + 1. If the first
test starts failing, Tansu reports true ends now and `read_changelogs_to_their_true_ends`
can go (with its line in docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_reader
from libs.events.topics import TopicSpec, create_topics
from libs.streams.faust_fixes import read_changelogs_to_their_true_ends

pytestmark = pytest.mark.integration

RECORDS = 10


async def _one_batch_of_ten(bootstrap: str) -> TopicPartition:
    topic = f"upstream-ends-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, (TopicSpec(topic, "a test's"),), 1, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"v%d" % i, partition=0) for i in range(RECORDS)]
        offsets = [m.offset for m in await asyncio.gather(*sent)]
    finally:
        await producer.stop()
    assert offsets == list(range(RECORDS))
    return TopicPartition(topic, 0)


async def test_the_dev_broker_reports_the_end_of_a_batch_short(private_broker):
    broker = private_broker  # always the embedded one
    tp = await _one_batch_of_ten(broker.bootstrap)
    settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)
    reader = make_reader(settings, "upstream-ends")
    await reader.start()
    try:
        reported = (await reader.end_offsets([tp]))[tp]
    finally:
        await reader.stop()
    assert reported < RECORDS, "Tansu reports true end offsets now: the workaround can go"


async def test_table_recovery_reads_to_the_end_the_records_show(broker):
    tp = await _one_batch_of_ten(broker.bootstrap)
    settings = PodiumSettings(kafka_bootstrap_servers=broker.bootstrap)
    app = SimpleNamespace(conf=SimpleNamespace(id="upstream-ends"), consumer=SimpleNamespace())
    read_changelogs_to_their_true_ends(app, settings)
    assert await app.consumer.highwaters(tp) == {tp: RECORDS}
