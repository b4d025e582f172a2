"""The faust app and topics every Podium stream processor (presence, analytics) uses.

In-memory table stores recovered from their changelogs, acks from all
replicas, idempotence as configured (off against the dev broker), and short
rebalance timeouts so a restarted replica takes its partitions back quickly.
Podium topics are raw bytes both ways: the processors decode protobuf
themselves. The app connects as every other Podium Kafka client does (TLS,
SASL: `libs.events.kafka_security`), through faust's `broker_credentials`.

faust never makes a topic (`topic_allow_declare=False`, no leader topic): the
tables' changelogs are in the topic catalogue (`libs.events.topics`), made by
their owner like every other topic. Two upstream bugs are worked around, in
`libs.streams.faust_fixes` and nowhere else.
"""

from __future__ import annotations

import logging

import faust
from aiokafka.partitioner import murmur2

from libs.config.settings import PodiumSettings
from libs.events.kafka_security import kafka_security
from libs.events.topics import TopicSpec
from libs.streams.faust_fixes import (
    ack_only_what_a_stream_took,
    drain_on_flush,
    read_changelogs_to_their_true_ends,
    seek_every_partition_in_one_step,
)

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
        # batch that never finds a leader holds a rebalance's producer flush, and the app, that long
        # (docs/decisions/0006). 15 s, as every other Podium producer (make_producer); the price is
        # that a write waiting longer than that for a broker that is away fails instead of waiting.
        producer_request_timeout=15.0,
        web_enabled=False,
        broker_rebalance_timeout=5,
        broker_session_timeout=settings.kafka_group_session_timeout_seconds,
        # A third of the session timeout or less, as Kafka advises: a member misses a beat or two
        # before the group gives its partitions away.
        broker_heartbeat_interval=settings.kafka_group_session_timeout_seconds / 6,
        consumer_auto_offset_reset="earliest",
        # Topics are made by their owner (libs.events.topics), never by faust.
        topic_allow_declare=False,
        topic_disable_leader=True,  # no on_leader timers or agents
        # A topic gone or changed must show soon (faust's default is 5 minutes), as with make_reader.
        consumer_metadata_max_age_ms=5000,
        producer_metadata_max_age_ms=5000,
        table_standby_replicas=standby_replicas,
        **extra,
    )
    drain_on_flush(app)
    read_changelogs_to_their_true_ends(app, settings)
    seek_every_partition_in_one_step(app)
    ack_only_what_a_stream_took(app)
    return app


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
