"""Kafka clients configured the one way every Podium process uses them.

Producers wait for all in-sync replicas (`acks=all`) and partition by the
record key (the Space id) with Kafka's murmur2 partitioner, so every client,
Java or Python, puts one Space's events on the same partition. Idempotence is
a setting: Apache Kafka supports it, the embedded dev broker does not.

Clients are used through their public API only: no Podium code patches or
reads private state of aiokafka (a test fails on any new reach,
tests/unit/test_public_apis_only.py). Topics are made by their owner, never by
a client (`libs.events.topics`); in production the brokers have
`auto.create.topics.enable=false`.

Every client connects as `libs.events.kafka_security` says (TLS, SASL).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner, murmur2

from libs.config.settings import PodiumSettings
from libs.events.kafka_security import kafka_security

log = logging.getLogger(__name__)


class KeyHashes:
    """aiokafka's default partitioner (Kafka's murmur2 of the key), with each key's hash remembered:
    a relay publishes thousands of records for a few keys (a Space's events share its id), and the
    pure-Python murmur2 cost more than the rest of a send. The partition chosen is the default's,
    so records land where any Kafka client puts them (tests/unit/libs/test_key_hashes.py holds
    it to aiokafka's DefaultPartitioner)."""

    def __init__(self, max_keys: int = 100_000):
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}
        self._unkeyed = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return self._unkeyed(key, all_partitions, available)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def make_producer(settings: PodiumSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        partitioner=KeyHashes(),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=0,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
        **kafka_security(settings),
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
        **kafka_security(settings),
    )
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0
) -> list[TopicPartition]:
    """The topic's partitions, waiting for the consumer's metadata to list the topic (a started
    consumer knows every topic that existed then; a newer one appears at its next refresh)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(f"topic {topic!r} has no partitions in the broker's metadata")
        await asyncio.sleep(0.1)


async def log_end_offsets(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    *,
    enough: int | None = None,
    timeout: float = 10.0,
) -> dict[TopicPartition, int]:
    """Each partition's end offset as its records say, not only as the broker reports it.

    Some Kafka-protocol brokers (Tansu, our embedded dev broker) report the end
    offset as the last batch's base offset + 1, short by the rest of a
    multi-record batch. So this reads the record just before each reported end:
    it is always there, and a fetch returns its whole batch, so the batch's last
    record gives the true end. The read waits for that record (up to `timeout`,
    then the reported end stands, with a warning), never for an empty fetch: a
    fetch that is merely slow, on a busy machine, does not end it early. On
    Apache Kafka that record is the last one and the reported ends stand. When
    `enough` is given and the reported ends already add up to it, nothing is
    read. The consumer must be assigned `parts`; its positions are moved.
    """
    ends = await consumer.end_offsets(parts)
    if enough is not None and sum(ends.values()) >= enough:
        return ends
    waiting = {tp for tp in parts if ends[tp] > 0}
    for tp in waiting:
        consumer.seek(tp, ends[tp] - 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while waiting:
        left = deadline - loop.time()
        if left <= 0:
            log.warning(
                "no record before the reported end of %s came within %.0f s", sorted(waiting), timeout
            )
            break
        batch = await consumer.getmany(*waiting, timeout_ms=int(min(left, 1.0) * 1000) or 1)
        for tp, records in batch.items():
            if records:
                ends[tp] = max(ends[tp], max(r.offset for r in records) + 1)
                waiting.discard(tp)
    return ends


async def true_ends(
    settings: PodiumSettings, parts: list[TopicPartition], client_id: str
) -> dict[TopicPartition, int]:
    """`log_end_offsets` with a reader of its own, so no consumer's positions move. Raises
    TimeoutError (or a KafkaError) when the broker cannot say within a few seconds (it is away)."""
    probe = make_reader(settings, f"{client_id}-ends", request_timeout_ms=5000)
    await probe.start()
    try:
        probe.assign(parts)
        async with asyncio.timeout(8.0):
            return await log_end_offsets(probe, parts, timeout=3.0)
    finally:
        await probe.stop()


class PastTheEnd:
    """Finds the positions that lie past the end of their partition's log: the sign that the log
    they were read from is gone. Apache Kafka answers a fetch from there with OFFSET_OUT_OF_RANGE;
    the dev broker answers it with nothing, and under-reports the end of a multi-record batch, so a
    position past the reported end is confirmed with `true_ends` before it counts. A position found
    fine is not asked about again until it or the reported end moves."""

    def __init__(self, settings: PodiumSettings, client_id: str):
        self.settings = settings
        self.client_id = client_id
        self._cleared: dict[TopicPartition, tuple[int, int]] = {}

    async def beyond(
        self, positions: dict[TopicPartition, int], reported: dict[TopicPartition, int | None]
    ) -> dict[TopicPartition, int]:
        """Each partition whose position is past its log's true end, with that end. Raises
        TimeoutError (or a KafkaError, OSError) when the broker cannot say (it is away)."""
        suspect = {}
        for tp, position in positions.items():
            end = reported.get(tp)
            if end is not None and position > end and self._cleared.get(tp) != (end, position):
                suspect[tp] = end
        if not suspect:
            return {}
        ends = await true_ends(self.settings, list(suspect), self.client_id)
        found = {}
        for tp, end in suspect.items():
            if positions[tp] > ends[tp]:
                found[tp] = ends[tp]
            else:
                self._cleared[tp] = (end, positions[tp])
        return found
