"""Kafka clients configured the one way every Podium process uses them.

Producers wait for all in-sync replicas (`acks=all`) and partition by the
record key (the Space id) with Kafka's murmur2 partitioner, so every client,
Java or Python, puts one Space's events on the same partition. Idempotence is
a setting: Apache Kafka supports it, the embedded dev broker does not.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from libs.config.settings import PodiumSettings

log = logging.getLogger(__name__)


def make_producer(settings: PodiumSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=0,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def make_reader(settings: PodiumSettings, client_id: str, **overrides) -> AIOKafkaConsumer:
    """A group-less consumer for manual assignment: projections read every partition."""
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        metadata_max_age_ms=5000,
    )
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0
) -> list[TopicPartition]:
    """The topic's partitions, waiting for metadata if the topic was just created."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(f"topic {topic!r} has no partitions in the broker's metadata")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)


async def log_end_offsets(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    *,
    enough: int | None = None,
    probe_ms: int = 1000,
    from_beginning: bool = False,
) -> dict[TopicPartition, int]:
    """Each partition's end offset as its records say, not only as the broker reports it.

    Some Kafka-protocol brokers (Tansu, our embedded dev broker) report the end
    offset as the last batch's base offset + 1, short by the rest of a
    multi-record batch. This reads from the reported ends and counts what is
    really there, until a fetch comes back empty or, when `enough` is given, as
    soon as the ends add up to `enough` (so the common case costs one fetch, not
    a wait). On Apache Kafka the probe finds nothing and the reported ends
    stand. The consumer must be assigned `parts`; its positions are moved.

    `from_beginning` trusts nothing the broker reports: it reads each partition
    from its start, and the end is one past the highest offset it finds (for a
    log whose reported end no record may reach).
    """
    if from_beginning:
        ends = dict.fromkeys(parts, 0)
        await consumer.seek_to_beginning(*parts)
    else:
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, ends[tp])
    while enough is None or sum(ends.values()) < enough:
        batch = await consumer.getmany(*parts, timeout_ms=probe_ms)
        if not any(batch.values()):
            break
        for tp, records in batch.items():
            if records:
                ends[tp] = max(ends[tp], max(r.offset for r in records) + 1)
    return ends
