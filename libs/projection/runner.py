"""The projection runner: builds a view by reading its topics from the beginning.

It assigns itself every partition of the topics it reads (no consumer group:
each replica builds its own complete view), starts at the earliest offset and
applies events in partition order. It is idempotent: it remembers the last
version it applied for each stream (producer + stream id), so a duplicate or
redelivered event changes nothing.

A version that skips ahead is held back until the versions before it arrive
(a producer's retry can land a batch after the next one). A hole that has not
filled once the partition was read to its end and `hole_seconds` passed means
the log lost those events: the runner stops reading that partition and reports
it (`libs.events.log_loss`), as it does when its position lies beyond the log's
end or a topic is gone or changed its partition count. It never skips history
to go on.

An event whose envelope decodes but whose type this consumer does not know
(a producer upgraded before its consumers) still advances its stream: it is
skipped, counted (`podium_projection_unknown_events_total`) and logged once
per type, and never holds later events back. Records whose envelope cannot be
decoded, and events that cannot be applied, go to the dead-letter topic with
the reason in their headers.

`caught_up` turns true once every partition reached the end offset it had when
the runner started; health reports NOT_SERVING until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from google.protobuf.message import DecodeError, Message

from libs.config.settings import PodiumSettings
from libs.events.envelope import EventEnvelope, unwrap
from libs.events.kafka import (
    PastTheEnd,
    log_end_offsets,
    make_producer,
    make_reader,
    partitions_of,
)
from libs.events.kafka_security import kafka_security
from libs.events.log_loss import LogLoss
from libs.events.registry import UnknownEventType
from libs.events.topics import DEAD_LETTER, TopicSpec, wait_for_topics
from libs.projection.ordering import StreamGate, Verdict
from libs.telemetry.metrics import (
    DEAD_LETTERS,
    PROJECTION_CAUGHT_UP,
    PROJECTION_LAG,
    PROJECTION_UNKNOWN_EVENTS,
)
from libs.telemetry.tracing import consume_span

log = logging.getLogger(__name__)


class ConsumedEvent(NamedTuple):
    envelope: EventEnvelope
    payload: Message | None  # None: a type this consumer does not know (skipped, never applied)
    topic: str
    partition: int
    offset: int


class Projection(Protocol):
    """A view built from events. `apply` may be a plain or an async function."""

    name: str
    topics: tuple[TopicSpec, ...]

    def apply(self, event: ConsumedEvent) -> Awaitable[None] | None: ...


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    held: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # events of unknown types
    started_at: float = field(default_factory=time.monotonic)
    caught_up_after: float | None = None


class ProjectionRunner:
    def __init__(
        self,
        settings: PodiumSettings,
        projection: Projection,
        *,
        client_id: str | None = None,
        on_caught_up: Callable[[], None] | None = None,
        log_loss: LogLoss | None = None,
        hole_seconds: float | None = None,
    ):
        self.settings = settings
        self.projection = projection
        self.client_id = client_id or f"podium-projection-{projection.name}"
        self.stats = RunnerStats()
        self.caught_up = asyncio.Event()
        self.log_loss = log_loss or LogLoss()
        self.hole_seconds = settings.log_hole_seconds if hole_seconds is None else hole_seconds
        self._on_caught_up = on_caught_up
        self._gate: StreamGate[ConsumedEvent] = StreamGate()
        self._holes: dict[TopicPartition, float] = {}  # partition -> when it first held an event
        self._stopped: set[TopicPartition] = set()  # partitions whose log was lost
        self._partitions: dict[str, int] = {}  # topic -> the partition count it started with
        self._checked_at = 0.0
        self._past_the_end = PastTheEnd(settings, self.client_id)
        self._targets: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._dead_letters: AIOKafkaProducer | None = None
        self._task: asyncio.Task | None = None
        self._is_async = inspect.iscoroutinefunction(projection.apply)
        self._progress: asyncio.Event | None = None  # set after each batch, for `wait_for`

    async def start(self) -> None:
        parts = await self._open(self.projection.topics)
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._targets = await self._ends(parts, await self._consumer.beginning_offsets(parts))
        await self._open_dead_letters()
        self._measure(self.projection.name)
        if not self._targets:
            self._mark_caught_up()
        self._task = asyncio.create_task(self._run(), name=f"projection-{self.projection.name}")

    # The parts every runner starts with

    async def _open(self, topics: tuple[TopicSpec, ...]) -> list[TopicPartition]:
        """Waits until the topics exist as expected (their owner makes them, never a runner), starts
        the reader, and returns the topics' partitions."""
        await wait_for_topics(
            self.settings.kafka_bootstrap_servers,
            (*topics, DEAD_LETTER),
            self.settings.topic_partitions,
            f"projection {self.projection.name}",
            **kafka_security(self.settings),
        )
        # No reset: a position beyond the log's end is a lost log, reported, never skipped over.
        self._consumer = make_reader(self.settings, self.client_id, auto_offset_reset="none")
        await self._consumer.start()
        parts: list[TopicPartition] = []
        for spec in topics:
            found = await partitions_of(self._consumer, spec.name)
            self._partitions[spec.name] = len(found)
            parts.extend(found)
        return parts

    async def _ends(self, parts: list[TopicPartition], starts: dict) -> dict[TopicPartition, int]:
        """Each partition's true end as of now (decision 0007: a broker's reported end may fall short
        of a batch's last record), where it lies past where reading starts: what `caught_up` waits
        for. The reader is left at `starts`."""
        consumer = self._consumer
        assert consumer is not None
        consumer.assign(parts)
        ends = await log_end_offsets(consumer, parts, timeout=3.0)
        for tp in parts:
            consumer.seek(tp, starts.get(tp, 0))
        return {tp: end for tp, end in ends.items() if end > starts.get(tp, 0)}

    async def _open_dead_letters(self) -> None:
        self._dead_letters = make_producer(self.settings, client_id=f"{self.client_id}-dlq")
        await self._dead_letters.start()

    def _measure(self, name: str) -> None:
        self.stats.started_at = time.monotonic()
        PROJECTION_LAG.labels(name).set_function(self.lag)
        PROJECTION_CAUGHT_UP.labels(name).set_function(lambda: float(self.caught_up.is_set()))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()
        if self._dead_letters:
            await self._dead_letters.stop()

    def lag(self) -> int:
        """Records on the broker that this runner has not read yet (as of its last fetch)."""
        if not self._consumer:
            return 0
        total = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            total += max(0, high - self._positions.get(tp, 0))
        return total

    def applied_version(self, producer: str, stream_id: str) -> int:
        """The last version of the stream this view has applied (0: none, or none it remembers)."""
        return self._gate.applied_version((producer, stream_id))

    async def wait_for(self, producer: str, stream_id: str, version: int, timeout: float) -> bool:
        """Waits until this view has applied the stream up to `version`; False if `timeout` s pass first.

        What a consistency token rests on: a caller that has seen version N of a stream (in a
        response) is answered from a view that has applied at least N, never from an older one.
        """

        async def reached() -> bool:
            return self.applied_version(producer, stream_id) >= version

        return await self.until(reached, timeout, every=timeout)

    async def until(
        self, ready: Callable[[], Awaitable[bool]], timeout: float, *, every: float = 0.05
    ) -> bool:
        """Waits until `ready()` is true, asking again after each batch this view applies and at
        least every `every` s (a follower's rows are written by another replica); False if
        `timeout` s pass first. For a fact a view's rows show, where `wait_for` takes a version."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await ready():
            left = deadline - loop.time()
            if left <= 0:
                return False
            if self._progress is None:
                self._progress = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, every))
        return True

    def _progressed(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await self._getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                await self._handle_batch(tp, records)
            if batches:
                self._progressed()
                self._after_batches()
            await self._look_for_a_lost_log()
            if not self.caught_up.is_set():
                await self._check_caught_up()

    # A lost log: noticed, reported, and the partition no longer read

    async def _getmany(self, **options) -> dict[TopicPartition, list]:
        assert self._consumer is not None
        try:
            return await self._consumer.getmany(**options)
        except OffsetOutOfRangeError as e:
            for tp, offset in e.args[0].items():
                self._stop_reading(tp, f"its position {offset} lies beyond the end of the partition's log")
            return {}

    def _stop_reading(self, tp: TopicPartition, reason: str) -> None:
        assert self._consumer is not None
        self._stopped.add(tp)
        self._consumer.pause(tp)
        self.log_loss.report(self.projection.name, tp.topic, tp.partition, reason)

    async def _look_for_a_lost_log(self) -> None:
        """A position past the log's end, a topic gone or changed (in the reader's metadata,
        refreshed every few seconds), and holes that did not fill; at most once a second."""
        now = time.monotonic()
        if now - self._checked_at < 1.0:
            return
        self._checked_at = now
        consumer = self._consumer
        assert consumer is not None
        for topic, count in self._partitions.items():
            found = consumer.partitions_for_topic(topic)
            if found is not None and len(found) == count:
                continue
            reason = "the topic is gone" if not found else f"it has {len(found)} partitions, not {count}"
            for tp in consumer.assignment():
                if tp.topic == topic and tp not in self._stopped:
                    self._stop_reading(tp, reason)
        reading = {tp: p for tp, p in self._positions.items() if tp not in self._stopped}
        try:
            beyond = await self._past_the_end.beyond(reading, {tp: consumer.highwater(tp) for tp in reading})
        except (KafkaError, TimeoutError, OSError) as e:  # the broker is away: look next time
            log.info("projection %s: cannot tell where the log ends now: %r", self.projection.name, e)
            return
        for tp, end in beyond.items():
            self._stop_reading(tp, f"its position {reading[tp]} lies beyond the log's end {end}")
        for tp, since in list(self._holes.items()):
            if tp in self._stopped or now - since < self.hole_seconds:
                continue
            high = consumer.highwater(tp)
            if high is not None and self._positions.get(tp, 0) >= high:
                self._stop_reading(
                    tp,
                    f"a stream's versions have had a hole for {now - since:.0f} s, with the partition"
                    " read to its end",
                )

    async def _stop_reading_beyond_the_end(self, stored: dict[TopicPartition, int]) -> None:
        """A stored position past the end of its partition's log: the log it was read from is gone."""
        consumer = self._consumer
        assert consumer is not None
        try:
            async with asyncio.timeout(10.0):
                ends = await consumer.end_offsets([tp for tp in stored if tp in consumer.assignment()])
        except (KafkaError, TimeoutError, OSError) as e:  # the broker is away: the reading loop looks
            log.info("projection %s: cannot tell where the log ends now: %r", self.projection.name, e)
            return
        try:
            beyond = await self._past_the_end.beyond(stored, ends)
        except (KafkaError, TimeoutError, OSError) as e:  # the broker is away: the reading loop looks
            log.info("projection %s: cannot tell where the log ends now: %r", self.projection.name, e)
            return
        for tp, end in beyond.items():
            self._stop_reading(tp, f"its stored position {stored[tp]} lies beyond the log's end {end}")

    def _held(self, tp: TopicPartition) -> None:
        self.stats.held = self._gate.held_count
        self._holes.setdefault(tp, time.monotonic())

    def _released(self) -> None:
        """Some held events were applied: partitions whose holes all filled are clear again."""
        self.stats.held = self._gate.held_count
        if not self._gate.held_count:
            self._holes.clear()

    def _after_batches(self) -> None:
        """Housekeeping after a fetch was applied (a subclass's)."""

    async def _check_caught_up(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp, target in self._targets.items():
            if await consumer.position(tp) < target:
                return
        self._mark_caught_up()

    def _mark_caught_up(self) -> None:
        if self.caught_up.is_set():
            return
        self.stats.caught_up_after = time.monotonic() - self.stats.started_at
        self.caught_up.set()
        log.info(
            "projection %s caught up: %d events in %.2fs",
            self.projection.name,
            self.stats.applied,
            self.stats.caught_up_after,
        )
        if self._on_caught_up:
            self._on_caught_up()

    async def _handle_batch(self, tp: TopicPartition, records) -> None:
        """The hot path: plain function calls per record; awaits only where a record needs one."""
        gate, stats, positions = self._gate, self.stats, self._positions
        apply, is_async = self.projection.apply, self._is_async
        topic = tp.topic
        for record in records:
            # A record before the furthest offset read is being read again (a rescan): it was
            # handled the first time, so it is never dead-lettered twice.
            first_read = record.offset >= positions.get(tp, 0)
            if first_read:
                positions[tp] = record.offset + 1
            event = await decode_record(self, record, first_read)
            if event is None:
                continue
            envelope = event.envelope
            verdict, ready = gate.offer(
                (envelope.producer, envelope.stream_id), envelope.stream_version, event
            )
            if verdict is Verdict.DUPLICATE:
                stats.duplicates += 1
                continue
            if verdict is Verdict.HELD:
                self._held(tp)
                continue
            # Live events continue their command's trace; a rebuild is no request's work.
            traced = self.caught_up.is_set()
            for item in ready:
                if item.payload is None:
                    stats.skipped += 1
                    continue
                span = (
                    consume_span(
                        topic,
                        record.headers if item is event else None,
                        item.envelope.traceparent,
                        **{
                            "podium.projection": self.projection.name,
                            "podium.space_id": item.envelope.space_id,
                        },
                    )
                    if traced
                    else contextlib.nullcontext()
                )
                try:
                    with span:
                        if is_async:
                            await apply(item)
                        else:
                            apply(item)
                except Exception as e:
                    log.exception(
                        "projection %s could not apply %s", self.projection.name, item.envelope.event_type
                    )
                    if item is event:
                        await self._dead_letter(record, f"apply failed: {e!r}")
                stats.applied += 1
            if len(ready) > 1:
                self._released()

    async def _dead_letter(self, record, reason: str) -> None:
        self.stats.dead_lettered += 1
        DEAD_LETTERS.labels(self.projection.name).inc()
        log.error("dead-lettering %s:%s@%s: %s", record.topic, record.partition, record.offset, reason)
        assert self._dead_letters is not None
        headers = [
            ("podium.reason", reason.encode()[:1000]),
            ("podium.source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
            ("podium.consumer", self.projection.name.encode()),
        ]
        await self._dead_letters.send_and_wait(
            DEAD_LETTER.name, value=record.value, key=record.key, headers=headers
        )


_unknown_types_logged: set[tuple[str, str]] = set()


def decode(record, projection: str = "", *, count: bool = True) -> tuple[ConsumedEvent | None, str]:
    """The record as an event, and why it should be dead-lettered ('' when it should not).

    None when even the envelope does not decode. An event of a type this consumer does not know
    comes back with `payload=None`: it still moves its stream on (a rolling upgrade deploys
    producers before consumers) but is never applied; it is counted and logged once per type.
    A known type whose payload does not parse also comes back with `payload=None`, and is
    dead-lettered.
    """
    try:
        envelope = EventEnvelope.FromString(record.value)
    except DecodeError as e:
        return None, f"undecodable envelope: {e}"
    problem = ""
    try:
        payload = unwrap(envelope)
    except UnknownEventType:
        payload = None
        if count:  # not when a record is read again
            _count_unknown(projection, envelope.event_type)
    except DecodeError as e:
        payload, problem = None, f"undecodable payload: {e}"
    return ConsumedEvent(envelope, payload, record.topic, record.partition, record.offset), problem


def _count_unknown(projection: str, event_type: str) -> None:
    PROJECTION_UNKNOWN_EVENTS.labels(projection, event_type).inc()
    if (projection, event_type) not in _unknown_types_logged:
        _unknown_types_logged.add((projection, event_type))
        log.warning(
            "projection %s skips events of type %s, which it does not know (a newer producer?)",
            projection,
            event_type,
        )


async def decode_record(runner: ProjectionRunner, record, first_read: bool) -> ConsumedEvent | None:
    """`decode`, dead-lettering what must be on the record's first reading."""
    event, problem = decode(record, runner.projection.name, count=first_read)
    if problem and first_read:
        await runner._dead_letter(record, problem)
    return event
