"""Podium's topics: names, keys and settings, and creating them when missing.

Topics are grouped by ordering needs: each service publishes its events on one
topic keyed by Space id, so all of one Space's events from that service stay in
order on one partition. Event topics keep everything (`retention.ms=-1`):
services rebuild their views from the beginning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    cleanup_policy: str = "delete"
    retention_ms: int = -1
    partitions: int | None = None  # None: the deployment's partition count

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


ROOM_EVENTS = TopicSpec("podium.room.events.v1", "Space lifecycle, membership and roles, keyed by Space id.")
MODERATION_EVENTS = TopicSpec(
    "podium.moderation.events.v1",
    "Mutes, removals, reports and their resolutions, keyed by Space id; blocks, keyed by the blocking host's user id.",
)
PRESENCE_EVENTS = TopicSpec(
    "podium.presence.events.v1", "Connections and timeouts of participants, keyed by Space id."
)
PRESENCE_HEARTBEATS = TopicSpec(
    "podium.presence.heartbeats.v1",
    "Internal to presence: gateways' heartbeat batches, gateway losses and clock ticks, keyed by Space id.",
    retention_ms=3600 * 1000,
)
MEDIA_EVENTS = TopicSpec(
    "podium.media.events.v1",
    "Who started and stopped talking, from the relay's audio levels, keyed by Space id.",
)
MEDIA_RECORDING = TopicSpec(
    "podium.media.recording.v1",
    "Recorded audio: about one second of one speaker's Opus frames per record (RecordingChunk, not an envelope), keyed by Space id.",
    retention_ms=7 * 24 * 3600 * 1000,
)
REPLAY_EVENTS = TopicSpec(
    "podium.replay.events.v1",
    "Replays finalized, deleted (by the host or by retention) and listened to, keyed by Space id.",
)
ANALYTICS_SPACE_STATS = TopicSpec(
    "podium.analytics.space_stats.v1",
    "Derived by the analytics service: a Space's figures (SpaceStats, plain protobuf, not an envelope) once per closed window while live and when it ends, keyed by Space id; the latest record is the summary.",
)
ANALYTICS_LISTENERS_PER_MINUTE = TopicSpec(
    "podium.analytics.listeners_per_minute.v1",
    "Derived by the analytics service: listeners in each window of a live Space (ListenersInWindow, plain protobuf), keyed by Space id.",
)
ANALYTICS_TICKS = TopicSpec(
    "podium.analytics.ticks.v1",
    "Internal to analytics: clock ticks sent to every partition, which close windows of quiet Spaces.",
    retention_ms=3600 * 1000,
)
DEAD_LETTER = TopicSpec(
    "podium.deadletter.v1",
    "Records a consumer could not decode or apply, with the reason in headers.",
    retention_ms=14 * 24 * 3600 * 1000,
)

ALL_TOPICS = (
    ROOM_EVENTS,
    MODERATION_EVENTS,
    PRESENCE_EVENTS,
    PRESENCE_HEARTBEATS,
    MEDIA_EVENTS,
    MEDIA_RECORDING,
    REPLAY_EVENTS,
    ANALYTICS_SPACE_STATS,
    ANALYTICS_LISTENERS_PER_MINUTE,
    ANALYTICS_TICKS,
    DEAD_LETTER,
)


async def ensure_topics(
    bootstrap: str, specs: tuple[TopicSpec, ...], partitions: int, replication: int, **client_options
) -> None:
    """Creates the topics that do not exist yet; existing ones are left as they are. A service passes
    its connection security (`**kafka_security(settings)`) as `client_options`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
        new = [
            NewTopic(s.name, s.partitions or partitions, replication, topic_configs=s.configs())
            for s in missing
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        log.info("created topics %s", [s.name for s in missing])
    finally:
        await admin.close()
