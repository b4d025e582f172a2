"""Durable view catch-up rate against raw aiokafka consumption of the same topic.

Writes N realistic room events (Spaces created and started, listeners joining,
leaving, asking to speak, being approved) to a fresh topic, then in the same
run measures:
  raw        an AIOKafkaConsumer reading every record (no decoding),
  projection the room's SpaceDirectory, a durable view, catching up from its
             stored position (here the start of the log, which is a rebuild;
             a restart resumes the same way from wherever it stood) through
             the DurableProjectionRunner: decode envelope and payload, dedupe
             by stream version, evolve, and one PostgreSQL transaction per
             fetch with the rows and the tracking records,
  floor      the same runner with a view that writes nothing: what reading,
             decoding, ordering and tracking cost before any view's work,
             so the ceiling any durable view can reach on this runner,
  decoded    raw aiokafka plus decoding each record's envelope and payload,
             nothing else: the ceiling any consumer of Podium's events
             reaches in one process, whatever its runner.
Each is also measured in CPU seconds of this process per event, which the
other work on a shared machine disturbs far less than the wall-clock rates.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from libs.config.settings import PodiumSettings
from libs.events.envelope import Causation, EventEnvelope, unwrap, wrap
from libs.events.kafka import make_reader, partitions_of
from libs.events.topics import DEAD_LETTER, TopicSpec, create_topics
from libs.eventstore.pool import create_pool
from libs.eventstore.store import EventStore
from libs.migrations.tool import upgrade_async
from libs.projection.durable import DurableProjectionRunner
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.projections.space_directory import SpaceDirectory


@dataclass
class RebuildResult:
    events: int
    raw_seconds: float
    projection_seconds: float
    floor_seconds: float = float("nan")
    raw_cpu: float = float("nan")  # CPU seconds of this process
    projection_cpu: float = float("nan")
    floor_cpu: float = float("nan")
    decoded_seconds: float = float("nan")
    decoded_cpu: float = float("nan")

    def cpu_us(self, seconds: float) -> float:
        return seconds / self.events * 1e6

    @property
    def floor_ratio(self) -> float:
        return self.raw_seconds / self.floor_seconds

    @property
    def decoded_ratio(self) -> float:
        return self.raw_seconds / self.decoded_seconds

    @property
    def raw_rate(self) -> float:
        return self.events / self.raw_seconds

    @property
    def projection_rate(self) -> float:
        return self.events / self.projection_seconds

    @property
    def ratio(self) -> float:
        return self.projection_rate / self.raw_rate


def space_story(space_id: str, listeners: int) -> list:
    """One Space's events: created, started, listeners come and go, one speaks."""
    host = f"host-{space_id}"
    events = [
        ev.SpaceCreated(
            space_id=space_id, host_user_id=host, title="bench", join_policy=types.JOIN_POLICY_ANYONE
        ),
        ev.SpaceStarted(space_id=space_id, host_user_id=host),
        ev.ParticipantJoined(space_id=space_id, user_id=host, role=types.ROLE_HOST),
    ]
    for i in range(listeners):
        user = f"u{i}-{space_id[:8]}"
        events.append(ev.ParticipantJoined(space_id=space_id, user_id=user, role=types.ROLE_LISTENER))
        if i % 10 == 0:
            events.append(ev.SpeakRequested(space_id=space_id, user_id=user))
        if i % 7 == 0:
            events.append(ev.ParticipantLeft(space_id=space_id, user_id=user))
    return events


async def write_events(
    settings: PodiumSettings,
    topic: TopicSpec,
    total: int,
    per_space: int = 500,
    story: Callable[[str, int], list] = space_story,
    spaces: int | None = None,
    apart: timedelta = timedelta(0),
) -> tuple[int, int]:
    """Writes `total` room events, Space after Space (`story(space_id, per_space)` each, the last one
    cut short), as the room would, or stops after `spaces` Spaces; returns (events, Spaces) written.
    Each Space's events occur `apart` after the one before's (the last Space's now)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    written = spaces_written = 0
    now = datetime.now(UTC) - apart * (spaces if spaces is not None else total // per_space)
    cause = Causation("bench", "bench", "bench")
    try:
        futures = []
        while written < total and (spaces is None or spaces_written < spaces):
            space_id = str(uuid.uuid4())
            events = story(space_id, per_space)[: total - written]
            for version, payload in enumerate(events, start=1):
                envelope = wrap(
                    payload,
                    producer="room",
                    stream_id=f"space-{space_id}",
                    version=version,
                    space_id=space_id,
                    occurred_at=now,
                    causation=cause,
                )
                futures.append(
                    await producer.send(topic.name, envelope.SerializeToString(), key=space_id.encode())
                )
            written += len(events)
            spaces_written += 1
            now += apart
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return written, spaces_written


async def raw_consume(settings: PodiumSettings, topic: TopicSpec, expected: int, decode=False) -> float:
    """Seconds to read every record with a plain consumer; with `decode`, also decoding each
    record's envelope and payload, as every consumer of Podium's events must."""
    reader = make_reader(settings, "bench-raw")
    await reader.start()
    try:
        parts = await partitions_of(reader, topic.name)
        reader.assign(parts)
        await reader.seek_to_beginning(*parts)
        count = 0
        started = time.perf_counter()
        while count < expected:
            batch = await reader.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                count += len(records)
                if decode:
                    for record in records:
                        unwrap(EventEnvelope.FromString(record.value))
        return time.perf_counter() - started
    finally:
        await reader.stop()


async def catch_up(settings: PodiumSettings, view_of: Callable, expected: int, name: str) -> float:
    """Seconds the durable view `view_of(pool, schema)` takes to catch up with the log from its
    start, in a fresh schema migrated as the room's (its event store and views, empty: a Space's
    first event starts it)."""
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    await upgrade_async(settings.database_url, "room", schema)
    pool = await create_pool(settings)
    try:
        runner = DurableProjectionRunner(
            settings, pool, schema, view_of(pool, schema), client_id=f"bench-{name}"
        )
        await runner.start()
        try:
            await runner.caught_up.wait()
            assert runner.stats.applied == expected, (runner.stats, expected)
            assert runner.stats.caught_up_after is not None
            return runner.stats.caught_up_after
        finally:
            await runner.stop()
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


def directory_on(topic: TopicSpec) -> Callable:
    def view_of(pool, schema: str) -> SpaceDirectory:
        directory = SpaceDirectory(pool, EventStore(pool, schema, producer="room"), schema)
        directory.topics = (topic,)
        return directory

    return view_of


class NothingView:
    """A durable view that writes nothing: the runner's own cost (the floor)."""

    name = "bench-floor"
    version = 1
    steps = ()
    tables = ()

    def __init__(self, topic: TopicSpec):
        self.topics = (topic,)

    async def apply(self, conn, events) -> None:
        return None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(measure, *args) -> tuple[float, float]:
    """(wall seconds the measure reports, CPU seconds of this process meanwhile)."""
    started = _cpu()
    seconds = await measure(*args)
    return seconds, _cpu() - started


async def run(settings: PodiumSettings, events: int) -> RebuildResult:
    topic = TopicSpec(f"bench.rebuild.{uuid.uuid4().hex[:8]}.v1", "benchmark copy of the room topic")
    await create_topics(settings.kafka_bootstrap_servers, (topic, DEAD_LETTER), settings.topic_partitions, 1)
    written, _ = await write_events(settings, topic, events)
    raw, raw_cpu = await _timed(raw_consume, settings, topic, written)
    projection, projection_cpu = await _timed(catch_up, settings, directory_on(topic), written, "directory")
    floor, floor_cpu = await _timed(
        catch_up, settings, lambda _pool, _schema: NothingView(topic), written, "floor"
    )
    decoded, decoded_cpu = await _timed(raw_consume, settings, topic, written, True)
    return RebuildResult(
        written, raw, projection, floor, raw_cpu, projection_cpu, floor_cpu, decoded, decoded_cpu
    )
