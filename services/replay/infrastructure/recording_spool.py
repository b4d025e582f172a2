"""The replay service's own copy of every recorded chunk, in PostgreSQL, taken as the relay writes them.

The media relay writes each speaker's audio, about a second per record, to
`podium.media.recording.v1`, keyed by Space id. Finalizing used to read the
Space's partition back from the broker when the Space ended. A broker that
lost its log (the in-memory dev broker restarted) then lost the audio recorded
before the loss: unlike events, chunks have no outbox to be reseeded from.

So the spool reads the recording topic as it is written and inserts each chunk
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

A broker that lost its log: every `verify_seconds` the spooler reads back the
chunk just before each stored position. If the broker no longer has it there,
the log was lost, and the position points into a new log it has not read: that
partition is read again from its beginning (what is stored stays stored).

Finalizing asks `frames(space_id)` once `caught_up()`: the stored position on
every partition has reached the partition's end as it was when asked, and the
chunk just before each position is one the spool stored (so a position left
from a lost log does not pass for caught up). A frame
recorded twice under different chunks (same speaker, same capture time, e.g. a
relay failover) counts once.

What it cannot keep: a chunk the broker acknowledged and then lost before the
spool read it (the spool's lag: milliseconds while it keeps up). Apache Kafka
with replication does not lose an acknowledged record; the dev broker's loss
of everything is what this guards against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.kafka_security import kafka_security
from libs.events.topics import MEDIA_RECORDING, ensure_topics
from libs.eventstore.schema import quoted
from podium.media.v1 import media_types_pb2 as mt
from services.replay.infrastructure.audio import SpeakerFrame

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS {s}.recording_chunks (
    space_id text NOT NULL,
    relay_id text NOT NULL,
    speaker_id text NOT NULL,
    chunk_sequence bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    chunk bytea NOT NULL,
    PRIMARY KEY (space_id, relay_id, speaker_id, chunk_sequence)
);
CREATE TABLE IF NOT EXISTS {s}.recording_positions (
    topic_partition integer PRIMARY KEY,
    next_offset bigint NOT NULL
);
"""


class RecordingSpool:
    def __init__(
        self,
        settings: PodiumSettings,
        pool: asyncpg.Pool,
        schema: str,
        *,
        verify_seconds: float = 2.0,
        lock_poll_seconds: float = 1.0,
    ):
        self.settings = settings
        self.pool = pool
        self.s = quoted(schema)
        self.verify_seconds = verify_seconds
        self.lock_poll_seconds = lock_poll_seconds
        self._task: asyncio.Task | None = None

    async def migrate(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"podium-migrate-{self.s}-chunks"
            )
            await conn.execute(DDL.format(s=self.s))

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

    async def _ensure_topic(self) -> None:
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            (MEDIA_RECORDING,),
            self.settings.topic_partitions,
            self.settings.topic_replication_factor,
            **kafka_security(self.settings),
        )

    async def _spool(self, conn: asyncpg.Connection) -> None:
        await self._ensure_topic()
        reader = make_reader(
            self.settings, "podium-replay-recording-spool", max_partition_fetch_bytes=4 * 1024 * 1024
        )
        checker = make_reader(self.settings, "podium-replay-spool-check")
        await reader.start()
        await checker.start()
        try:
            parts = await partitions_of(reader, MEDIA_RECORDING.name)
            await self._assign(reader, conn, parts)
            loop = asyncio.get_running_loop()
            verified_at = loop.time()
            while True:
                if loop.time() - verified_at >= self.verify_seconds:
                    parts = await self._verify(reader, checker, conn, parts)
                    verified_at = loop.time()
                batch = await reader.getmany(timeout_ms=500, max_records=2000)
                if any(batch.values()):
                    await self._store(conn, batch)
        finally:
            await _stop(checker)
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

    async def _verify(
        self,
        reader: AIOKafkaConsumer,
        checker: AIOKafkaConsumer,
        conn: asyncpg.Connection,
        parts: list[TopicPartition],
    ) -> list[TopicPartition]:
        """Checks that the broker still holds what the spool read; returns the partitions to read.

        A topic gone from the broker is created again (the relay writes to it, and no Podium client
        creates a topic by asking for it). A topic that came back with other partitions (made by
        someone else, with the broker's default count) is read as it is now. A partition whose broker log no longer holds, just before the stored
        position, the chunk the spool stored from there is read again from its beginning."""
        await reader._client.force_metadata_update()
        now = reader.partitions_for_topic(MEDIA_RECORDING.name)
        if not now:
            log.warning(
                "recording spool: %s is gone from the broker; creating it again", MEDIA_RECORDING.name
            )
            await self._ensure_topic()
            return parts
        current = [TopicPartition(MEDIA_RECORDING.name, p) for p in sorted(now)]
        if current != parts:
            log.warning("recording spool: %s now has partitions %s", MEDIA_RECORDING.name, sorted(now))
            await self._assign(reader, conn, current)
        stored = await self._positions(conn)
        checked = {tp: stored[tp.partition] - 1 for tp in current if stored.get(tp.partition, 0) > 0}
        try:
            found = await asyncio.wait_for(_chunks_at(checker, checked), 10.0) if checked else {}
        except TimeoutError:
            log.warning(
                "recording spool: the broker did not answer a check of %s; checking later", sorted(checked)
            )
            return current
        for tp, offset in checked.items():
            if tp in found and await self._is_stored(found[tp]):
                continue
            log.warning(
                "recording spool: %s no longer holds the chunk stored from offset %d; the broker lost "
                "its log, reading the partition again from its beginning", tp, offset,
            )  # fmt: skip
            async with conn.transaction():
                await conn.execute(
                    f"DELETE FROM {self.s}.recording_positions WHERE topic_partition = $1", tp.partition
                )
            await reader.seek_to_beginning(tp)
        return current

    async def _positions(self, db: asyncpg.Connection | asyncpg.Pool) -> dict[int, int]:
        """The stored position (the next offset to read) of each partition the spool has read."""
        rows = await db.fetch(f"SELECT topic_partition, next_offset FROM {self.s}.recording_positions")
        return {r["topic_partition"]: r["next_offset"] for r in rows}

    async def caught_up(self, timeout: float = 60.0) -> None:
        """Returns once every chunk on the recording topic, up to its end as of now, is stored.

        Every partition, not only the one a Space's key maps to: after a broker lost its log and
        someone else's client made the topic again with another partition count, a producer's
        cached metadata may put a Space's chunks elsewhere for a while. Raises TimeoutError if that takes
        over `timeout` seconds (no replica spooling, say)."""
        reader = make_reader(self.settings, "podium-replay-spool-ends")
        await reader.start()
        try:
            async with asyncio.timeout(timeout):
                parts = await partitions_of(reader, MEDIA_RECORDING.name, timeout=timeout)
                reader.assign(parts)
                ends = await log_end_offsets(reader, parts)
                written = [tp for tp in parts if ends[tp] > 0]
                while True:
                    stored = await self._positions(self.pool)
                    if any(stored.get(tp.partition, 0) < ends[tp] for tp in written):
                        await asyncio.sleep(0.1)
                        continue
                    last = {tp: stored[tp.partition] - 1 for tp in written}
                    found = await _chunks_at(reader, last) if last else {}
                    if all([tp in found and await self._is_stored(found[tp]) for tp in written]):
                        return
                    await asyncio.sleep(0.5)  # a position left from a lost log: the spool reads the new one
        finally:
            await _stop(reader)

    async def _is_stored(self, identity: tuple) -> bool:
        return await self.pool.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {self.s}.recording_chunks "
            "WHERE space_id = $1 AND relay_id = $2 AND speaker_id = $3 AND chunk_sequence = $4)",
            *identity,
        )

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


async def _chunks_at(
    reader: AIOKafkaConsumer, offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, tuple]:
    """The identity of the chunk at each offset, for the partitions whose broker log holds one.
    `reader` is assigned the partitions of `offsets`, and its positions are moved."""
    found: dict[TopicPartition, tuple] = {}
    parts = list(offsets)
    reader.assign(parts)
    ends = await log_end_offsets(reader, parts)
    waiting = {tp for tp in parts if offsets[tp] < ends[tp]}  # past the end: not there
    for tp in waiting:
        reader.seek(tp, offsets[tp])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while waiting and loop.time() < deadline:
        batch = await reader.getmany(*waiting, timeout_ms=500)
        for tp, records in batch.items():
            if not records:
                continue
            if records[0].offset == offsets[tp]:
                with contextlib.suppress(DecodeError):
                    found[tp] = _identity(mt.RecordingChunk.FromString(records[0].value))
            waiting.discard(tp)
    return found


async def _stop(reader: AIOKafkaConsumer) -> None:
    """Stops a reader without waiting on a broker that does not answer."""
    try:
        await asyncio.wait_for(reader.stop(), 5.0)
    except (TimeoutError, KafkaError, OSError) as e:
        log.warning("recording spool: a reader did not stop cleanly: %r", e)
