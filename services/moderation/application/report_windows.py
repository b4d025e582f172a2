"""Auto-moderation's detector, on faust: who reported whom, in hopping windows of event time.

The agent reads moderation's own topic (keyed by Space id). Each
`ParticipantReported` adds `[reporter, report_id]` to a windowed table keyed
by `space/target`: hopping windows `window` seconds long that advance every
`window / 12` (at least 1 s), so any run of reports within eleven twelfths of
the window lands in one window together. Time is the event's own time from
its envelope, so a consumer that is behind, or reads the topic again after a
restart, sees the same windows.

When the earliest window open at the report's time holds `threshold` distinct
reporters, the agent asks for an automatic mute through `on_threshold`. The
table only detects: the moderation decider checks the claim against the
Space's record and is idempotent on the triggering event, so duplicate
deliveries, replays of old reports and a mute a host already lifted change
nothing. The table lives in memory and is recovered from its changelog.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from libs.config.settings import PodiumSettings
from libs.domain.errors import DomainError
from libs.events.envelope import EventEnvelope, occurred_at, unwrap
from libs.events.kafka_security import kafka_security
from libs.events.log_loss import LogLoss
from libs.events.topics import (
    MODERATION_EVENTS,
    MODERATION_REPORTS_APP,
    MODERATION_REPORTS_TABLES,
    changelogs,
    wait_for_topics,
)
from libs.streams.faust_app import make_faust_app, raw_topic
from libs.streams.log_watch import FaustLogWatch
from podium.moderation.v1 import moderation_events_pb2 as ev

log = logging.getLogger(__name__)

# (space_id, target_user_id, report_ids, triggering event id)
OnThreshold = Callable[[str, str, tuple[str, ...], str], Awaitable[None]]


def distinct_reporters(entries: Iterable[list[str]]) -> dict[str, str]:
    """`[[reporter, report_id], ...]` -> each reporter's first report id, in order."""
    first: dict[str, str] = {}
    for reporter, report_id in entries:
        first.setdefault(reporter, report_id)
    return first


def hop_seconds(window: timedelta) -> int:
    return max(1, int(window.total_seconds() // 12))


class ReportWindows:
    """Start/stop like any background part of a service; SERVING waits for its table's recovery."""

    def __init__(
        self,
        settings: PodiumSettings,
        *,
        threshold: int,
        window: timedelta,
        on_threshold: OnThreshold,
        producer_batch_bytes: int = 16_384,
        log_loss: LogLoss | None = None,
    ):
        self.settings = settings
        self.threshold = threshold
        self.window_seconds = max(1, int(window.total_seconds()))
        self.on_threshold = on_threshold
        self.app = make_faust_app(MODERATION_REPORTS_APP, settings, producer_batch_bytes=producer_batch_bytes)
        self.topic = raw_topic(self.app, MODERATION_EVENTS, settings.topic_partitions)
        self._event_time = 0.0
        self.table = (
            self.app.Table(
                "reporters-by-speaker",
                default=list,
                partitions=settings.topic_partitions,
                key_type=str,
                help="[reporter, report_id] pairs per Space and reported speaker, per hopping window.",
            )
            .hopping(self.window_seconds, hop_seconds(window), expires=2 * self.window_seconds)
            .relative_to(lambda _event: self._event_time)
        )
        self.app.agent(self.topic, name="count-reports")(self._count)
        self.topics = (MODERATION_EVENTS, *changelogs(MODERATION_REPORTS_APP, MODERATION_REPORTS_TABLES))
        self.watch = FaustLogWatch(self.app, settings, self.topics, log_loss or LogLoss())

    async def start(self) -> None:
        await wait_for_topics(
            self.settings.kafka_bootstrap_servers,
            self.topics,
            self.settings.topic_partitions,
            "moderation's report windows",
            **kafka_security(self.settings),
        )
        await self.app.start()
        await self.watch.start()
        await self.app.tables.recovery.completed.wait()

    async def stop(self) -> None:
        await self.watch.stop()
        # Flush the table's changelog before faust commits its last offsets on the way out.
        await self.app.producer.flush()
        await self.app.stop()

    async def _count(self, stream):
        async for event in stream.events():
            try:
                envelope = EventEnvelope.FromString(event.value)
                payload = unwrap(envelope)
            except Exception:  # not ours to dead-letter: the report index consumer does that
                continue
            if not isinstance(payload, ev.ParticipantReported):
                continue
            self._event_time = occurred_at(envelope).timestamp()
            key = f"{envelope.space_id}/{payload.target_user_id}"
            windows = self.table[key]
            windows += [[payload.reporter_user_id, payload.report_id]]
            # The earliest window open at this time reaches furthest back: the one to count.
            earliest = self.table.table.window.earliest(self._event_time)
            reporters = distinct_reporters(windows[earliest])
            if len(reporters) < self.threshold:
                continue
            try:
                await self.on_threshold(
                    envelope.space_id, payload.target_user_id, tuple(reporters.values()), envelope.event_id
                )
            except DomainError as refused:
                log.warning("automatic mute of %s refused: %s", payload.target_user_id, refused.message)
