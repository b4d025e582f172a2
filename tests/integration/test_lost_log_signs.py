"""What a service does about topics it does not own and logs it did not keep.

Services never make topics: one whose topics are missing or have another partition count says
so and stays NOT_SERVING. A faust app's group with an offset committed beyond the end of its
partition's log is a lost log, reported, and the partition is no longer fetched.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.config.settings import PodiumSettings
from libs.devstack.broker import free_port
from libs.devstack.catalogue import service
from libs.devstack.supervisor import ServiceProcess
from libs.events.log_loss import LogLoss
from libs.events.topics import TopicSpec, create_topics
from libs.streams.log_watch import FaustLogWatch

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["room", "presence", "analytics"])
async def test_a_service_whose_topics_are_not_as_expected_says_so_stays_not_serving_and_stops_when_told(
    private_broker, private_database_url, tmp_path, name
):
    # The test stack made every topic with 6 partitions; this service expects 3.
    process = ServiceProcess(
        service(name),
        free_port(),
        {
            "DATABASE_URL": private_database_url,
            "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap,
            "PODIUM_TOPIC_PARTITIONS": "3",
            "PODIUM_METRICS_PORT": "0",
        },
        log_path=tmp_path / f"{name}.log",
    )
    process.launch()
    try:
        async with asyncio.timeout(60):
            while "cannot start" not in process.log_path.read_text(errors="replace"):
                await asyncio.sleep(0.2)
        line = next(line for line in process.log_path.read_text().splitlines() if "cannot start" in line)
        assert "has 6 partitions, expected 3" in line and "never by a service" in line
        assert await process.health() == "NOT_SERVING"
        # Waiting for its topics, it still stops at once when told (a rollout, a node drain).
        process.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.process.wait, 15)
        assert code == 0, process.output_tail()
    finally:
        process.kill()


async def test_a_faust_group_committed_beyond_the_log_end_is_a_lost_log(private_broker):
    settings = PodiumSettings(kafka_bootstrap_servers=private_broker.bootstrap)
    spec = TopicSpec(f"test.faust.{uuid.uuid4().hex[:8]}", "a faust app's source", partitions=1)
    await create_topics(private_broker.bootstrap, (spec,), 1, 1)
    tp = TopicPartition(spec.name, 0)
    producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap)
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(spec.name, b"r", partition=0)
    finally:
        await producer.stop()
    group = f"test-app-{uuid.uuid4().hex[:8]}"
    member = AIOKafkaConsumer(
        bootstrap_servers=private_broker.bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        member.assign([tp])
        await member.commit({tp: 50})  # read in a log that is gone: 50 records, this one has 5
    finally:
        await member.stop()
    paused: list = []
    app = SimpleNamespace(
        conf=SimpleNamespace(id=group),
        consumer=SimpleNamespace(assignment=lambda: {tp}, pause_partitions=paused.extend),
    )
    losses = LogLoss()
    watch = FaustLogWatch(app, settings, (spec,), losses, interval=0.2)
    await watch.start()
    try:
        async with asyncio.timeout(20):
            while not losses.lost:
                await asyncio.sleep(0.1)
    finally:
        await watch.stop()
    [loss] = losses.losses.values()
    assert (loss.consumer, loss.topic, loss.partition) == (group, spec.name, 0)
    assert "committed offset 50, beyond the log's end 5" in loss.reason
    assert paused == [tp]
