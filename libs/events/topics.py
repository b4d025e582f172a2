"""Podium's topics: names, keys and settings; making them, and checking them.

Topics are grouped by ordering needs: each service publishes its events on one
topic keyed by Space id, so all of one Space's events from that service stay in
order on one partition. Event topics keep everything (`retention.ms=-1`):
services rebuild their views from the beginning.

Topics have one owner per environment, and it is never a service: Strimzi's
`KafkaTopic`s in Kubernetes, `podium up` in the dev stack, the test stack in
tests, and `podium log topics` when an operator recovers a lost log (all through
`create_topics`). A service only checks, at start, that the topics it uses exist
with the partitions it expects (`topic_problems`), and stays NOT_SERVING until
they do. The faust apps' table changelogs are topics like any other: faust is
told not to declare them (`libs.streams.faust_app`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

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

#: The topics whose records are EventEnvelopes: what `podium events tail` and `export` read by default.
EVENT_TOPICS = (ROOM_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, MEDIA_EVENTS, REPLAY_EVENTS)

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


@dataclass(frozen=True)
class FaustTable:
    """A faust table, as far as its changelog topic goes: `<app id>-<table>-changelog`."""

    name: str
    description: str
    cleanup_policy: str = "compact"
    retention_ms: int = -1

    def changelog(self, app_id: str) -> TopicSpec:
        return TopicSpec(
            f"{app_id}-{self.name}-changelog",
            self.description,
            cleanup_policy=self.cleanup_policy,
            retention_ms=self.retention_ms,
        )


PRESENCE_APP = "podium-presence"
PRESENCE_TABLES = (
    FaustTable(
        "presence-by-space", "Internal to presence: faust's changelog of the presence-by-space table."
    ),
)
MODERATION_REPORTS_APP = "podium-moderation-reports"
MODERATION_REPORTS_TABLES = (
    # A windowed table's changelog also deletes: windows expire after twice the auto-mute window
    # (PODIUM_MODERATION_AUTO_MUTE_WINDOW_SECONDS, 120 s by default).
    FaustTable(
        "reporters-by-speaker",
        "Internal to moderation: faust's changelog of the windowed reporters-by-speaker table (auto-mute).",
        cleanup_policy="compact,delete",
        retention_ms=240_000,
    ),
)
ANALYTICS_APP = "podium-analytics"
ANALYTICS_TABLES = (
    FaustTable("space-stats", "Internal to analytics: faust's changelog of the space-stats table."),
    FaustTable("space-members", "Internal to analytics: faust's changelog of the space-members table."),
)


def changelogs(app_id: str, tables: tuple[FaustTable, ...]) -> tuple[TopicSpec, ...]:
    return tuple(table.changelog(app_id) for table in tables)


FAUST_CHANGELOGS = (
    *changelogs(PRESENCE_APP, PRESENCE_TABLES),
    *changelogs(ANALYTICS_APP, ANALYTICS_TABLES),
    *changelogs(MODERATION_REPORTS_APP, MODERATION_REPORTS_TABLES),
)

#: Every topic a Podium deployment has: what `podium up`, the test stack and the manifests make.
EVERY_TOPIC = (*ALL_TOPICS, *FAUST_CHANGELOGS)


async def create_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...],
    partitions: int,
    replication: int,
    *,
    replace_mismatched: bool = False,
    **client_options,
) -> list[str]:
    """Makes the topics that do not exist yet, with their partitions and settings; returns their names.

    For the owners of topics only (the dev stack, the test stack, `podium log topics`), never a
    service. An existing topic is left as it is, unless `replace_mismatched` and its partition
    count is not the expected one: a client that asked for it while it was gone made it with the
    broker's default count (Kafka's `auto.create.topics.enable`, which the dev broker cannot turn
    off). Then it is deleted and made again, which only a recovery may do. `client_options` is
    the connection's security (`**kafka_security(settings)`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if replace_mismatched:
            wrong = [
                problem.topic
                for problem in await _problems(admin, specs, partitions, existing)
                if problem.topic in existing
            ]
            if wrong:
                log.warning("deleting topics %s: their partition count is not the expected one", wrong)
                await admin.delete_topics(wrong)
                await _until(admin, lambda names: not set(wrong) & names)
                existing -= set(wrong)
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(s.name, s.partitions or partitions, replication, topic_configs=s.configs())
            for s in missing
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        log.info("created topics %s", [s.name for s in missing])
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _until(admin: AIOKafkaAdminClient, done, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(set(await admin.list_topics())):
        if loop.time() > deadline:
            raise TimeoutError("the broker did not finish deleting topics")
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class TopicProblem:
    topic: str
    problem: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.problem}"


async def topic_problems(
    bootstrap: str, specs: tuple[TopicSpec, ...], partitions: int, **client_options
) -> list[TopicProblem]:
    """What is wrong with `specs` on the broker: a topic missing, or with another partition count
    than expected (which would send Space ids to other partitions). Empty when all is well."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    await admin.start()
    try:
        return await _problems(admin, specs, partitions, set(await admin.list_topics()))
    finally:
        await admin.close()


async def _problems(
    admin: AIOKafkaAdminClient, specs: tuple[TopicSpec, ...], partitions: int, existing: set[str]
) -> list[TopicProblem]:
    problems = [TopicProblem(s.name, "does not exist") for s in specs if s.name not in existing]
    present = [s for s in specs if s.name in existing]
    if present:
        described = await admin.describe_topics([s.name for s in present])
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
        for spec in present:
            expected = spec.partitions or partitions
            found = counts.get(spec.name)
            if found is None:
                problems.append(TopicProblem(spec.name, "does not exist"))
            elif found != expected:
                problems.append(TopicProblem(spec.name, f"has {found} partitions, expected {expected}"))
    return problems


async def wait_for_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...],
    partitions: int,
    who: str,
    *,
    interval: float = 2.0,
    **client_options,
) -> None:
    """Returns once every topic of `specs` exists with its partitions; until then logs one clear
    line (again only when what is wrong changes). A service calls it before it reads or writes,
    while its health says NOT_SERVING."""
    said: list[TopicProblem] | None = None
    while True:
        try:
            problems = await topic_problems(bootstrap, specs, partitions, **client_options)
        except (KafkaError, OSError) as e:
            problems = [TopicProblem("(broker)", f"unreachable: {e!r}")]
        if not problems:
            if said:
                log.info("%s: its topics are in place now", who)
            return
        if problems != said:
            log.error(
                "%s cannot start: %s. Topics are made by their owner (KafkaTopic resources,"
                " `podium up`, or `podium log topics`), never by a service; NOT_SERVING until then",
                who,
                "; ".join(map(str, problems)),
            )
            said = problems
        await asyncio.sleep(interval)
