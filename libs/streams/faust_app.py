"""The faust app and topics every Podium stream processor (presence, analytics) uses.

In-memory table stores recovered from their changelogs, acks from all
replicas, idempotence as configured (off against the dev broker), and short
rebalance timeouts so a restarted replica takes its partitions back quickly.
Podium topics are raw bytes both ways: the processors decode protobuf
themselves. The app connects as every other Podium Kafka client does (TLS,
SASL: `libs.events.kafka_security`), through faust's `broker_credentials`.

Two faust behaviours are corrected here, both found by the SIGKILL fault tests:

- its producer buffer is replaced by `DrainingProducerBuffer`, whose flush
  waits for every buffered message (see there): without it a SIGKILL could
  lose table writes whose source offsets were already committed;
- table recovery reads each changelog partition to the end its records show
  (`RecoveryEnds`), not only to the end offset the broker reports: the
  embedded dev broker reports the end of a multi-record batch short.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2
from faust.transport.producer import ProducerBuffer

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader
from libs.events.kafka_security import kafka_security
from libs.events.topics import TopicSpec

log = logging.getLogger(__name__)


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as every client computes it."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def faust_credentials(settings: PodiumSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The Kafka security settings as faust's `broker_credentials` (None: plaintext), made from the
    same options as every aiokafka client's (faust hands them on to its own aiokafka clients)."""
    options = kafka_security(settings)
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),  # with a context, faust says SASL_SSL
        )
    if "ssl_context" in options:
        return faust.SSLCredentials(options["ssl_context"])
    return None


def make_faust_app(
    app_id: str,
    settings: PodiumSettings,
    *,
    producer_batch_bytes: int = 16_384,
    canonical_url: str | None = None,
    standby_replicas: int = 1,
) -> faust.App:
    """`canonical_url` is what the other members of the group learn as this one's address (faust's
    assignor shares it), so a replica can send a query about a key to the replica that owns it."""
    extra: dict[str, object] = {"canonical_url": canonical_url} if canonical_url else {}
    credentials = faust_credentials(settings)
    if credentials is not None:
        extra["broker_credentials"] = credentials
    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        producer_enable_idempotence=settings.kafka_enable_idempotence,
        producer_acks=-1,
        producer_max_batch_size=producer_batch_bytes,
        # faust's default is 20 minutes, and it is also when a batch nobody can deliver expires: a
        # batch that never finds a leader (seen after the dev broker lost its log, cause not found)
        # held a rebalance's producer flush, and the app, that long. 15 s, as every other Podium
        # producer (make_producer); the price is that a write waiting longer than that for a broker
        # that is away fails instead of waiting.
        producer_request_timeout=15.0,
        web_enabled=False,
        broker_rebalance_timeout=5,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        # Podium's clients never create a topic by asking for it (libs.events.kafka): a topic the
        # broker lost comes back when its owner makes it again, and clients must learn that soon
        # (faust's default is 5 minutes), as make_reader's do.
        consumer_metadata_max_age_ms=5000,
        producer_metadata_max_age_ms=5000,
        table_standby_replicas=standby_replicas,
        **extra,
    )
    _drain_on_flush(app)
    app.recovery_ends = RecoveryEnds(app, settings)
    return app


class DrainingProducerBuffer(ProducerBuffer):
    """faust's buffer of `send_soon` messages (every table write's changelog record), whose `flush`
    returns only when each buffered message has been handed to the Kafka client.

    faust 0.15's `flush` gives up as soon as one message takes longer than 0.1 s to be handed over
    (a busy loop, a metadata refresh, a slow broker) and returns with messages still buffered; a
    message already taken from the queue but not yet handed over is not counted at all. The
    consumer flushes the producer and then commits its source offsets, so it could commit offsets
    whose table writes were still in this buffer. A SIGKILL then lost those writes: the table came
    back from its changelog older than the committed offsets, and the records between were never
    applied (presence's counts and analytics' figures after a SIGKILL, issues 3 and 7).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.handing_over = 0

    async def _send_pending(self, fut) -> None:
        self.handing_over += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.handing_over -= 1
            self.message_sent.set()

    async def flush(self) -> None:
        while self.size or self.handing_over:
            if self.state != "running":
                raise RuntimeError(
                    f"cannot flush {self.size + self.handing_over} messages: producer not running"
                )
            self.message_sent.clear()
            try:
                await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
            except TimeoutError:
                continue  # still waiting on the Kafka client; the state is checked again


def _drain_on_flush(app: faust.App) -> None:
    producer = app.producer  # created here, started with the app
    buffer = DrainingProducerBuffer(loop=producer.loop, beacon=producer.beacon)
    buffer.app = app
    producer.buffer = buffer


def raw_topic(app: faust.App, spec: TopicSpec, partitions: int, **options):
    """A Podium topic as faust sees it: bytes keys and values."""
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        **options,
    )


class RecoveryEnds:
    """Where faust's table recovery stops reading each changelog partition.

    faust recovers a table by reading its changelog partitions up to the end offsets the broker
    reports. Tansu, the embedded dev broker, reports the last batch's base offset + 1, so recovery
    stopped short of the rest of that batch: the newest table values were lost. This finds the
    ends the records show (`libs.events.kafka.log_end_offsets`) with a group-less reader of its
    own; on Apache Kafka they are the reported ones, at the cost of one fetch per recovery.

    After the broker lost its log (`after_log_loss`, from `libs.streams.lost_log`) the reported end
    is not trusted at all for a while: batches a producer held through the loss land in the new log
    at offsets that overlap later ones (seen with Tansu), and a recovery waiting for a reported end
    no record reaches waits forever. Then the end is what a read from the beginning finds.
    """

    def __init__(self, app: faust.App, settings: PodiumSettings):
        self.app = app
        self.settings = settings
        self.distrust_until = 0.0
        app.consumer.highwaters = self.highwaters  # in place of faust's, which asks the broker only

    def after_log_loss(self, seconds: float = 120.0) -> None:
        self.distrust_until = time.monotonic() + seconds

    async def highwaters(self, *partitions):
        if not partitions:
            return {}
        distrust = time.monotonic() < self.distrust_until
        probe = make_reader(self.settings, f"{self.app.conf.id}-recovery-ends")
        await probe.start()
        try:
            parts = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
            probe.assign(parts)
            # The ends the records show (never below the reported ones), or after a loss from the start.
            found = await log_end_offsets(probe, parts, from_beginning=distrust)
        finally:
            await probe.stop()
        if distrust:
            log.warning("recovery of %s after a lost log reads to %s", self.app.conf.id, found)
        return {tp: found[TopicPartition(tp.topic, tp.partition)] for tp in partitions}


class PartitionIndex:
    """Which of a table's keys (Space ids) live on a partition: murmur2, computed once per key.

    A tick sent to every partition must touch only the Spaces of its own partition, since only
    that partition's stream may write their table values.
    """

    def __init__(self, partitions: int):
        self.partitions = partitions
        self._partition_of: dict[str, int] = {}

    def keys_on(self, keys, partition: int) -> list[str]:
        on = []
        for key in list(keys):
            owner = self._partition_of.get(key)
            if owner is None:
                owner = self._partition_of[key] = partition_of(key, self.partitions)
            if owner == partition:
                on.append(key)
        return on

    def forget(self, key: str) -> None:
        self._partition_of.pop(key, None)


async def send_to_every_partition(topic, value: bytes, partitions: int) -> None:
    """One record to each partition of `topic`: a clock tick every partition's stream sees in order."""
    for partition in range(partitions):
        await topic.send(value=value, partition=partition)
