"""The replay service's own copy of every recorded chunk, in PostgreSQL, taken as the relay writes them.

The media relay writes each speaker's audio, about a second per record, to
`podium.media.recording.v1`, keyed by Space id. Chunks have no outbox: the
topic's retention is a week, and a broker that lost its log would lose the
audio with it. So the spool is replay's durable copy of recorded audio: it reads the recording topic as it is written and inserts each chunk
into `replay.recording_chunks`, in the same transaction as the offset it read
to (`replay.recording_positions`, per partition): a chunk and the position past
it are stored together or not at all, and inserting a chunk twice changes
nothing (its key is Space, relay, speaker and chunk sequence, so a chunk a relay
resent after a failed acknowledgement adds nothing either).

One replica spools at a time: the one holding a PostgreSQL advisory lock, on a
connection of its own. The others wait for the lock; when the spooling replica
dies, PostgreSQL drops its connection and the lock, and another takes over
from the stored positions within `lock_poll_seconds`. No consumer group is
involved, so nothing waits for a group to rebalance.

A stored position beyond the end of its partition's log means the log was
lost: the spool reports it (`libs.events.log_loss`) and stops reading that
partition; what is stored stays stored. The operator's recovery
(`podium log recover`) forgets the positions, so the spool reads the new log
from its beginning.

Finalizing asks `frames(space_id)` once `caught_up()`: the stored position on
every partition has reached the partition's end as it was when asked. A frame
recorded twice under different chunks (same speaker, same capture time, e.g. a
relay failover) counts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from google.protobuf.message import DecodeError

from libs.config.settings import PodiumSettings
from libs.events.kafka import PastTheEnd, log_end_offsets, make_reader, partitions_of
from libs.events.kafka_security import kafka_security
from libs.events.log_loss import LogLoss
from libs.events.topics import MEDIA_RECORDING, wait_for_topics
from libs.eventstore.schema import quoted
from podium.media.v1 import media_types_pb2 as mt
from services.replay.infrastructure.audio import SpeakerFrame

log = logging.getLogger(__name__)


class RecordingSpool:
    def __init__(
        self,
        settings: PodiumSettings,
        pool: asyncpg.Pool,
        schema: str,
        *,
        lock_poll_seconds: float = 1.0,
        log_loss: LogLoss | None = None,
    ):
        self.settings = settings
        self.pool = pool
        self.s = quoted(schema)
        self.lock_poll_seconds = lock_poll_seconds
        self.log_loss = log_loss or LogLoss()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="replay-recording-spool")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        """Waits for the lock, then spools until cancelled; starts over after any failure."""
        while True:
            try:
                conn = await asyncpg.connect(self.settings.database_url)
                try:
                    lock = f"podium-{self.s}-recording-spool"
                    while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):
                        await asyncio.sleep(self.lock_poll_seconds)
                    await self._spool(conn)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()  # and the lock with it
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the broker or the database away, or a bug: never stop spooling
                log.warning(
                    "recording spool: %r; starting over", e, exc_info=not isinstance(e, KafkaError | OSError)
                )
                await asyncio.sleep(1.0)

    async def _spool(self, conn: asyncpg.Connection) -> None:
        await wait_for_topics(
            self.settings.kafka_bootstrap_servers,
            (MEDIA_RECORDING,),
            self.settings.topic_partitions,
            "replay's recording spool",
            **kafka_security(self.settings),
        )
        # No reset: a position beyond the log's end is a lost log, reported, never skipped over.
        reader = make_reader(
            self.settings,
            "podium-replay-recording-spool",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            auto_offset_reset="none",
        )
        await reader.start()
        try:
            parts = await partitions_of(reader, MEDIA_RECORDING.name)
            await self._assign(reader, conn, parts)
            past_the_end = PastTheEnd(self.settings, "podium-replay-recording-spool")
            while True:
                try:
                    batch = await reader.getmany(timeout_ms=500, max_records=2000)
                except OffsetOutOfRangeError as e:
                    for tp, offset in e.args[0].items():
                        self._lost(reader, tp, f"its stored position {offset} lies beyond the log's end")
                    continue
                if any(batch.values()):
                    await self._store(conn, batch)
                await self._look_past_the_end(reader, past_the_end)
        finally:
            await _stop(reader)

    async def _assign(
        self, reader: AIOKafkaConsumer, conn: asyncpg.Connection, parts: list[TopicPartition]
    ) -> None:
        """Reads `parts`, each from its stored position, or from its beginning."""
        reader.assign(parts)
        stored = await self._positions(conn)
        for tp in parts:
            if tp.partition in stored:
                reader.seek(tp, stored[tp.partition])
            else:
                await reader.seek_to_beginning(tp)

    async def _look_past_the_end(self, reader: AIOKafkaConsumer, past_the_end: PastTheEnd) -> None:
        positions = {tp: await reader.position(tp) for tp in reader.assignment() - reader.paused()}
        try:
            beyond = await past_the_end.beyond(positions, {tp: reader.highwater(tp) for tp in positions})
        except (KafkaError, TimeoutError, OSError):  # the broker is away: look next time
            return
        for tp, end in beyond.items():
            self._lost(reader, tp, f"its stored position {positions[tp]} lies beyond the log's end {end}")

    def _lost(self, reader: AIOKafkaConsumer, tp: TopicPartition, reason: str) -> None:
        reader.pause(tp)
        self.log_loss.report("replay-recording-spool", tp.topic, tp.partition, reason)

    async def _store(self, conn: asyncpg.Connection, batch) -> None:
        rows = []
        for records in batch.values():
            for record in records:
                try:
                    chunk = mt.RecordingChunk.FromString(record.value)
                except DecodeError:
                    log.warning(
                        "undecodable recording chunk at %s/%d@%d",
                        record.topic,
                        record.partition,
                        record.offset,
                    )
                    continue
                if not chunk.space_id:
                    continue
                recorded_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                rows.append((*_identity(chunk), recorded_at, record.value))
        positions = [(tp.partition, records[-1].offset + 1) for tp, records in batch.items() if records]
        async with conn.transaction():
            if rows:
                await conn.executemany(
                    f"INSERT INTO {self.s}.recording_chunks "
                    "(space_id, relay_id, speaker_id, chunk_sequence, recorded_at, chunk) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    rows,
                )
            await conn.executemany(
                f"INSERT INTO {self.s}.recording_positions (topic_partition, next_offset) VALUES ($1, $2) "
                "ON CONFLICT (topic_partition) DO UPDATE SET next_offset = excluded.next_offset",
                positions,
            )

    async def _positions(self, db: asyncpg.Connection | asyncpg.Pool) -> dict[int, int]:
        """The stored position (the next offset to read) of each partition the spool has read."""
        rows = await db.fetch(f"SELECT topic_partition, next_offset FROM {self.s}.recording_positions")
        return {r["topic_partition"]: r["next_offset"] for r in rows}

    async def caught_up(self, timeout: float = 60.0) -> None:
        """Returns once every chunk on the recording topic, up to its end as of now, is stored.
        Raises TimeoutError if that takes over `timeout` seconds (no replica spooling, say)."""
        reader = make_reader(self.settings, "podium-replay-spool-ends")
        await reader.start()
        try:
            async with asyncio.timeout(timeout):
                parts = await partitions_of(reader, MEDIA_RECORDING.name, timeout=timeout)
                reader.assign(parts)
                ends = await log_end_offsets(reader, parts)
                while True:
                    stored = await self._positions(self.pool)
                    if all(stored.get(tp.partition, 0) >= ends[tp] for tp in parts):
                        return
                    await asyncio.sleep(0.1)
        finally:
            await _stop(reader)

    async def frames(
        self,
        space_id: str,
        *,
        since: datetime | None = None,
        progress: Callable[[float], None] = lambda _p: None,
    ) -> list[SpeakerFrame]:
        """The Space's frames (any order). With `since`, only chunks the broker timestamped at or
        after it (the Space's start, less a margin for the relay's clock)."""
        rows = await self.pool.fetch(
            f"SELECT chunk FROM {self.s}.recording_chunks WHERE space_id = $1 AND recorded_at >= $2",
            space_id,
            since or datetime.fromtimestamp(0, UTC),
        )
        frames: list[SpeakerFrame] = []
        heard: set[tuple[str, object]] = set()
        for n, row in enumerate(rows, start=1):
            chunk = mt.RecordingChunk.FromString(row["chunk"])
            for f in chunk.frames:
                speaker, captured = f.speaker_id or chunk.speaker_id, f.captured_at.ToDatetime(tzinfo=UTC)
                if (speaker, captured) in heard:  # the same frame recorded twice (a relay failover)
                    continue
                heard.add((speaker, captured))
                frames.append(SpeakerFrame(speaker, captured, f.sequence, bytes(f.opus)))
            progress(n / len(rows))
        return frames

    async def forget(self, space_id: str) -> int:
        """Deletes the Space's chunks (its replay was deleted or expired). Returns how many."""
        status = await self.pool.execute(
            f"DELETE FROM {self.s}.recording_chunks WHERE space_id = $1", space_id
        )
        return int(status.split()[-1])


def _identity(chunk: mt.RecordingChunk) -> tuple:
    return (chunk.space_id, chunk.relay_id, chunk.speaker_id, chunk.chunk_sequence)


async def _stop(reader: AIOKafkaConsumer) -> None:
    """Stops a reader without waiting on a broker that does not answer."""
    try:
        await asyncio.wait_for(reader.stop(), 5.0)
    except (TimeoutError, KafkaError, OSError) as e:
        log.warning("recording spool: a reader did not stop cleanly: %r", e)
