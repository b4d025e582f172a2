"""Reading one Space's recorded audio from the recording topic.

Records are keyed by Space id, so all of a Space's chunks are on one partition
(Kafka's murmur2 on the key, as every Podium producer partitions). The reader
takes that partition from the Space's start (found with the broker's timestamp
index, so finalizing does not scan a week of other Spaces' audio; Tansu, the dev
broker, answers that lookup with the earliest offset, so there it reads the
partition and skips records timestamped before the start) to its end, keeps the Space's chunks,
and drops duplicates by (relay id, speaker id, chunk sequence): a relay that
resends a chunk after a failed acknowledgement adds nothing. A frame recorded
twice under different chunks (same speaker, same capture time) counts once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from google.protobuf.message import DecodeError

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader, partitions_of
from libs.events.topics import MEDIA_RECORDING, ensure_topics
from podium.media.v1 import media_types_pb2 as mt
from services.replay.infrastructure.audio import SpeakerFrame

log = logging.getLogger(__name__)

_partitioner = DefaultPartitioner()


async def read_recording(
    settings: PodiumSettings,
    space_id: str,
    *,
    since: datetime | None = None,
    progress: Callable[[float], None] = lambda _p: None,
) -> list[SpeakerFrame]:
    """The Space's frames (any order). With `since`, reading starts at the first record the broker
    timestamped at or after it (the Space's start, less a margin), not at the partition's beginning."""
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        (MEDIA_RECORDING,),
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    reader = make_reader(settings, f"podium-replay-recording-{space_id[:40]}")
    await reader.start()
    try:
        parts = await partitions_of(reader, MEDIA_RECORDING.name)
        numbers = [tp.partition for tp in parts]
        key = space_id.encode()
        tp = TopicPartition(MEDIA_RECORDING.name, _partitioner(key, numbers, numbers))
        reader.assign([tp])
        end = (await log_end_offsets(reader, [tp]))[tp]
        begin = await _first_offset(reader, tp, since)
        since_ms = int(since.timestamp() * 1000) if since else -1
        reader.seek(tp, begin)
        seen: set[tuple[str, str, int]] = set()
        frames: list[SpeakerFrame] = []
        heard: set[tuple[str, object]] = set()
        position = begin
        while position < end:
            batch = await reader.getmany(tp, timeout_ms=500, max_records=2000)
            for record in batch.get(tp, ()):
                position = record.offset + 1
                if record.key != key or record.timestamp < since_ms:
                    continue
                try:
                    chunk = mt.RecordingChunk.FromString(record.value)
                except DecodeError:
                    log.warning("undecodable recording chunk at %s@%d", tp, record.offset)
                    continue
                identity = (chunk.relay_id, chunk.speaker_id, chunk.chunk_sequence)
                if identity in seen or chunk.space_id != space_id:
                    continue
                seen.add(identity)
                for f in chunk.frames:
                    speaker, captured = f.speaker_id or chunk.speaker_id, f.captured_at.ToDatetime(tzinfo=UTC)
                    if (speaker, captured) in heard:  # the same frame recorded twice (a relay failover)
                        continue
                    heard.add((speaker, captured))
                    frames.append(SpeakerFrame(speaker, captured, f.sequence, bytes(f.opus)))
            if not batch:
                position = max(position, await reader.position(tp))
            if end > begin:
                progress(min(1.0, (position - begin) / (end - begin)))
        return frames
    finally:
        await reader.stop()


async def _first_offset(reader, tp: TopicPartition, since: datetime | None) -> int:
    earliest = (await reader.beginning_offsets([tp]))[tp]
    if since is None:
        return earliest
    try:
        found = (await reader.offsets_for_times({tp: int(since.timestamp() * 1000)}))[tp]
    except Exception as e:  # a broker without timestamp lookups: read it all
        log.warning("offsets_for_times failed on %s (%s); reading from the beginning", tp, e)
        return earliest
    return earliest if found is None else max(earliest, found.offset)
