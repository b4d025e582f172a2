"""Kafka clients configured the one way every Podium process uses them.

Producers wait for all in-sync replicas (`acks=all`) and partition by the
record key (the Space id) with Kafka's murmur2 partitioner, so every client,
Java or Python, puts one Space's events on the same partition. Idempotence is
a setting: Apache Kafka supports it, the embedded dev broker does not.

No Podium client creates a topic by asking for it. Kafka's metadata request
carries `allow_auto_topic_creation`, and aiokafka always sends true: a broker
that creates topics on demand (the dev broker; Apache Kafka unless
`auto.create.topics.enable=false`) then makes one with its default partition
count, not ours, when a client merely looks for a topic that is gone (after
the dev broker lost its log), and every Space's key maps to another partition
from then on. Topics are created by `libs.events.topics.ensure_topics`, with
their configured partitions, and by nothing else; importing this module makes
every aiokafka client in the process (faust's included) ask with false.

A produce request can make a topic too: the dev broker creates a missing topic
when a producer writes to it, with its default partition count, whatever the
metadata request said. A producer writes to a topic that is gone only with
metadata from before the loss, so this module also makes every client forget
the leaders a broken connection led: its next write waits for fresh metadata,
which says the topic is gone, and so waits until the topic's owner has made it
again (Apache Kafka's Java client waits for a metadata update after a
disconnect in the same way). A client with no connection open when the broker
went away keeps its old metadata until it next refreshes it (every 5 s here).

Every client connects as `libs.events.kafka_security` says (TLS, SASL).
"""

from __future__ import annotations

import asyncio
import functools
import logging

import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import CloseReason
from aiokafka.protocol.metadata import MetadataRequest

from libs.config.settings import PodiumSettings
from libs.events.kafka_security import kafka_security

log = logging.getLogger(__name__)

# aiokafka's client builds every metadata request through this module-level name (aiokafka 0.14).
aiokafka.client.MetadataRequest = functools.partial(MetadataRequest, allow_auto_topic_creation=False)


def forget_leaders(cluster: ClusterMetadata, node_id: int | None = None) -> set[str]:
    """Marks the partitions `node_id` leads (every partition, when None) as having no known leader,
    until the next metadata response says otherwise. Returns their topics."""
    topics: set[str] = set()
    for topic, partitions in cluster._partitions.items():
        for number, partition in list(partitions.items()):
            if partition.leader != -1 and node_id in (None, partition.leader):
                partitions[number] = partition._replace(leader=-1)
                topics.add(topic)
    if node_id is None:
        cluster._broker_partitions.clear()
    else:
        cluster._broker_partitions.pop(node_id, None)
    return topics


_on_connection_closed = aiokafka.client.AIOKafkaClient._on_connection_closed


def _forget_leaders_of_a_broken_connection(client, conn, reason) -> None:
    if reason in (CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT):
        nodes = {node for (node, _group), c in client._conns.items() if c is conn}
        if not nodes or any(isinstance(node, int) for node in nodes):  # not a bootstrap connection
            topics = forget_leaders(client.cluster, next((n for n in nodes if isinstance(n, int)), None))
            # A client asks for the metadata of the topics it looked up, not of every topic it knows
            # (a producer learns some from its first, all-topics request): a batch waiting for the
            # leader of a topic left out of the next request would wait forever.
            if client._topics:
                client._topics |= topics
    _on_connection_closed(client, conn, reason)


aiokafka.client.AIOKafkaClient._on_connection_closed = _forget_leaders_of_a_broken_connection


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
    from_beginning: bool = False,
    probe_ms: int = 250,
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

    `from_beginning` trusts nothing the broker reports: it reads each partition
    from its start until a fetch of `probe_ms` comes back empty, and the end is
    one past the highest offset it finds (for a log whose reported end no record
    may reach).
    """
    if from_beginning:
        ends = dict.fromkeys(parts, 0)
        await consumer.seek_to_beginning(*parts)
        while True:
            batch = await consumer.getmany(*parts, timeout_ms=probe_ms)
            if not any(batch.values()):
                return ends
            for tp, records in batch.items():
                if records:
                    ends[tp] = max(ends[tp], max(r.offset for r in records) + 1)
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
