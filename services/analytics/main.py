"""The analytics service's composition root: a faust app, and a gRPC server for health only.

    python -m services.analytics

It keeps no PostgreSQL state: its tables recover from their changelogs, and
its outputs are derived topics for analysts. Health says SERVING once the
tables have recovered.
"""

from __future__ import annotations

import logging

from libs.config.runtime import run
from libs.events.kafka_security import kafka_security
from libs.events.topics import (
    ANALYTICS_LISTENERS_PER_MINUTE,
    ANALYTICS_SPACE_STATS,
    ANALYTICS_TICKS,
    MEDIA_EVENTS,
    REPLAY_EVENTS,
    ROOM_EVENTS,
    ensure_topics,
)
from libs.grpckit.server import GrpcHost
from libs.streams.lost_log import LostLogGuard
from libs.telemetry.setup import configure_telemetry
from services.analytics.application.stream_processor import AnalyticsStreams
from services.analytics.settings import AnalyticsSettings

log = logging.getLogger("podium.analytics")

SERVICE_NAME = "podium.analytics.v1.Analytics"


TOPICS = (
    ROOM_EVENTS,
    MEDIA_EVENTS,
    REPLAY_EVENTS,
    ANALYTICS_TICKS,
    ANALYTICS_SPACE_STATS,
    ANALYTICS_LISTENERS_PER_MINUTE,
)


async def serve(settings: AnalyticsSettings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        TOPICS,
        settings.topic_partitions,
        settings.topic_replication_factor,
        **kafka_security(settings),
    )
    streams = AnalyticsStreams(
        settings,
        window_seconds=settings.analytics_window_seconds,
        lateness_seconds=settings.analytics_lateness_seconds,
        tick_seconds=settings.analytics_tick_seconds,
        producer_batch_bytes=settings.analytics_producer_batch_bytes,
        app_id=settings.analytics_app_id,
        forget_ended_after_seconds=settings.analytics_forget_ended_after_seconds,
    )
    # Its own topics only: the room, the relay and replay bring back theirs (reseeded from PostgreSQL).
    own = (ANALYTICS_TICKS, ANALYTICS_SPACE_STATS, ANALYTICS_LISTENERS_PER_MINUTE)
    guard = LostLogGuard(streams.app, settings, own, rewrite=streams.changelog_partitions())
    host = GrpcHost(settings, [SERVICE_NAME])
    host.install_signal_handlers()
    await host.start(f"{settings.analytics_bind_host}:{settings.analytics_port}")
    await streams.app.start()
    await guard.start()
    try:
        await streams.app.tables.recovery.completed.wait()
        await host.serving()
        print(f"analytics service ready on port {host.port}", flush=True)
        await host.wait_for_stop_signal()
        await host.stop()
    finally:
        await guard.stop()
        await streams.app.producer.flush()
        await streams.app.stop()


def main() -> None:
    settings = AnalyticsSettings()
    configure_telemetry(settings, "analytics")
    run(serve(settings), settings.event_loop)
