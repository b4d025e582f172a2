"""Noticing that the broker lost its log, and giving a faust app its topics back.

Apache Kafka keeps its log. The embedded dev broker (Tansu) keeps it in memory,
so a broker restart comes back empty, and faust does not survive that by
itself: it rejoins its group, starts a recovery, asks for the offsets of
changelog topics the broker no longer has, and crashes 40 s later with the app
stalled (seen in the broker-restart fault test). The services' outbox relays
reseed their own topics from PostgreSQL; nobody else brings back a faust app's
changelogs, its internal topics, or topics that live only in the broker.

`LostLogGuard` looks every `interval` seconds. When a topic the app needs is
missing, the log was lost, and it:

1. makes faust forget the offsets it read and committed, and tells the
   service (`on_lost`), before anything can be read from the new log (faust
   cannot finish its recovery while the changelogs are missing): the new log
   numbers its records from 0 again, so faust would skip them, and so would a
   table value that remembers source offsets;
2. creates the missing topics (`own_topics`): the service's own (`specs`),
   each table's changelog and faust's leader topic;
3. writes every value of the tables it was given to their new changelogs, each
   to its key's partition, so that a later restart recovers the whole table
   and not only what changed after the loss;
4. once the group has rebalanced and the tables are recovered, reads every
   assigned partition of the topics other services bring back (their relays
   reseed them from PostgreSQL) again from its beginning. Where the consumer
   starts in the new log is otherwise chance: the position it had in the lost
   log, or an offset committed from it, can point into the reseeded one past
   events it never saw, and a Space's last event missed that way leaves no
   later one to reveal the hole.

The app's in-memory tables hold through all of this, and its consumer group,
lost with the log, starts again from the earliest offsets of the reseeded
topics; the services' version gates skip what their tables already reflect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from mode.utils.times import want_seconds

from libs.config.settings import PodiumSettings
from libs.events.kafka_security import kafka_security
from libs.events.topics import TopicSpec, ensure_topics
from libs.telemetry.metrics import BROKER_LOG_LOSSES

log = logging.getLogger(__name__)

#: table -> the changelog partition of a key (the partition its source stream writes it from)
Rewrites = dict[faust.Table, Callable[[str], int]]


class LostLogGuard:
    def __init__(
        self,
        app: faust.App,
        settings: PodiumSettings,
        specs: tuple[TopicSpec, ...],
        *,
        rewrite: Rewrites | None = None,
        on_lost: Callable[[], Awaitable[None] | None] | None = None,
        interval: float = 1.0,
    ):
        self.app = app
        self.settings = settings
        self.specs = specs
        self.rewrite = rewrite or {}
        self.on_lost = on_lost
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._reread_pending = False  # the log was lost: read the other services' topics again
        self._rejoined = False  # the group rebalanced since
        app.on_partitions_assigned.connect(self._on_assigned)

    def _on_assigned(self, *_args, **_kwargs) -> None:
        if self._reread_pending:
            self._rejoined = True

    def own_topics(self) -> tuple[TopicSpec, ...]:
        """The topics only this app brings back: `specs` (those the app alone writes; topics with an
        outbox relay are its relay's to reseed), the tables' changelogs (as faust makes them: not
        through faust's own `declare`, which trusts the client's cached metadata, still listing the
        lost topics, and skips them) and faust's single-partition leader topic."""
        leader = TopicSpec(
            self.app._leader_assignor._leader_topic_name, "faust's leader election", partitions=1
        )
        return (*self.specs, *(_changelog_spec(table) for table in self.app.tables.values()), leader)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"{self.app.conf.id}-lost-log-guard")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, **kafka_security(self.settings)
        )
        await admin.start()
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    existing = set(await admin.list_topics())
                    missing = {spec.name for spec in self.own_topics()} - existing
                    if missing:
                        await self.restore(missing)
                    elif self._reread_pending:
                        await self._reread_others(existing)
                except (KafkaError, OSError) as e:  # the broker is away: look again later
                    log.debug("lost-log check of %s failed: %r", self.app.conf.id, e)
                except Exception:  # never die quietly: the next loss would stall the app
                    log.exception("lost-log check of %s failed", self.app.conf.id)
        finally:
            await admin.close()

    async def restore(self, missing: set[str]) -> None:
        BROKER_LOG_LOSSES.labels(self.app.conf.id).inc()
        log.warning(
            "%s: the broker lost topics %s (its log was lost); restoring them and the tables' changelogs",
            self.app.conf.id,
            sorted(missing),
        )
        self._forget_positions()
        self._reread_pending, self._rejoined = True, False
        self.app.recovery_ends.after_log_loss()
        if self.on_lost is not None:
            outcome = self.on_lost()
            if outcome is not None:
                await outcome
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            self.own_topics(),
            self.settings.topic_partitions,
            self.settings.topic_replication_factor,
            **kafka_security(self.settings),
        )
        # The Kafka client under faust's producer still has the lost topics' metadata; it must
        # learn the new partitions before anything is sent to them.
        client = self.app.producer._producer
        await client.client.force_metadata_update()
        for table in self.app.tables.values():
            await client.partitions_for(table.changelog_topic.get_topic_name())
        written = 0
        for table, partition_of_key in self.rewrite.items():
            for key, value in list(table.items()):
                table.send_changelog(partition_of_key(key), key, value)
                written += 1
        await self.app.producer.flush()
        log.warning(
            "%s: topics restored; %d table values written to their changelogs", self.app.conf.id, written
        )

    async def _reread_others(self, existing: set[str]) -> None:
        """Step 4: after the rebalance and recovery, and once those topics are back."""
        recovery = self.app.tables.recovery
        if (
            not self._rejoined
            or self.app.rebalancing
            or recovery.in_recovery
            or not recovery.completed.is_set()
        ):
            return
        own = {spec.name for spec in self.own_topics()}
        others = sorted(tp for tp in self.app.consumer.assignment() if tp.topic not in own)
        if any(tp.topic not in existing for tp in others):
            return  # their owners have not made them again yet
        earliest = await self.app.consumer.earliest_offsets(*others) if others else {}
        for tp in others:
            await self.app.consumer.seek(tp, earliest.get(tp, 0))
        self._reread_pending = False
        log.warning(
            "%s: reading %d partitions of other services' topics again from their beginning after the lost log",
            self.app.conf.id,
            len(others),
        )

    def _forget_positions(self) -> None:
        """faust drops a record whose offset is below the last one it read from that partition, and
        commits only above the last committed one. The new log numbers from 0 again, so what faust
        remembers of the old one must go, or it would skip the reseeded records."""
        consumer = self.app.consumer
        for remembered in ("_read_offset", "_committed_offset", "_acked", "_acked_index", "_gap"):
            getattr(consumer, remembered).clear()


def _changelog_spec(table: faust.Table) -> TopicSpec:
    """The topic faust makes for a table's changelog: compacted, and for a windowed table also
    deleted after the windows expire."""
    topic = table.changelog_topic
    policies = [name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
    return TopicSpec(
        topic.get_topic_name(),
        f"changelog of faust table {table.name}",
        cleanup_policy=",".join(policies) or "compact",
        retention_ms=int(want_seconds(topic.retention) * 1000) if topic.retention else -1,
    )
