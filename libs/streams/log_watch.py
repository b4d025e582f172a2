"""A faust app's view of a lost log, through public Kafka APIs only.

Every `interval` seconds it asks the broker whether the app's topics (its sources
and its tables' changelogs) still exist with their partitions, and whether the
app's consumer group has committed an offset beyond the end of a partition's log.
Either means the log the app read is gone: the partition is reported
(`libs.events.log_loss`: a log line, `podium_log_lost`, health NOT_SERVING) and the
app stops fetching it. faust would otherwise start the partition again from its
earliest offset (`consumer_auto_offset_reset`) and fold what it finds into tables
that already hold the lost history. Recovering is the operator's procedure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from libs.config.settings import PodiumSettings
from libs.events.kafka import PastTheEnd, make_reader
from libs.events.kafka_security import kafka_security
from libs.events.log_loss import LogLoss
from libs.events.topics import TopicSpec, topic_problems

log = logging.getLogger(__name__)


class FaustLogWatch:
    def __init__(
        self,
        app: faust.App,
        settings: PodiumSettings,
        topics: tuple[TopicSpec, ...],
        log_loss: LogLoss,
        *,
        interval: float = 5.0,
    ):
        self.app = app
        self.settings = settings
        self.topics = topics
        self.log_loss = log_loss
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._past_the_end = PastTheEnd(settings, f"{self.group}-log-watch")

    @property
    def group(self) -> str:
        return self.app.conf.id  # a faust app's consumer group is its id

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name=f"{self.group}-log-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        # The group's committed offsets, read as a member would (OffsetFetch) without joining it:
        # the dev broker cannot answer the admin API's ListConsumerGroupOffsets.
        offsets = make_reader(
            self.settings, f"{self.group}-log-watch", group_id=self.group, enable_auto_commit=False
        )
        ends = make_reader(self.settings, f"{self.group}-log-watch-ends")
        await offsets.start()
        await ends.start()
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    async with asyncio.timeout(30.0):
                        await self.check(offsets, ends)
                except (KafkaError, OSError, TimeoutError) as e:  # the broker is away: look again later
                    log.info("%s: could not look at the log: %r", self.group, e)
        finally:
            await ends.stop()
            await offsets.stop()

    async def check(self, offsets, ends) -> None:
        problems = await topic_problems(
            self.settings.kafka_bootstrap_servers,
            self.topics,
            self.settings.topic_partitions,
            **kafka_security(self.settings),
        )
        for problem in problems:
            self._lost(problem.topic, -1, f"the topic {problem.problem}")
        broken = {problem.topic for problem in problems}
        parts = [
            TopicPartition(spec.name, p)
            for spec in self.topics
            if spec.name not in broken
            for p in sorted(offsets.partitions_for_topic(spec.name) or ())
        ]
        if set(parts) != offsets.assignment():
            offsets.assign(parts)
        committed = {}
        for tp in parts:
            offset = await offsets.committed(tp)
            if offset is not None and offset >= 0:
                committed[tp] = offset
        if not committed:
            return
        reported = await ends.end_offsets(list(committed))
        for tp, end in (await self._past_the_end.beyond(committed, reported)).items():
            self._lost(
                tp.topic,
                tp.partition,
                f"the group committed offset {committed[tp]}, beyond the log's end {end}",
            )

    def _lost(self, topic: str, partition: int, reason: str) -> None:
        if not self.log_loss.report(self.group, topic, partition, reason):
            return
        assigned = [
            tp
            for tp in self.app.consumer.assignment()
            if tp.topic == topic and partition in (-1, tp.partition)
        ]
        if assigned:
            self.app.consumer.pause_partitions(assigned)
