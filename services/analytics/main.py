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
from libs.events.log_loss import LogLoss
from libs.events.topics import (
    ANALYTICS_LISTENERS_PER_MINUTE,
    ANALYTICS_SPACE_STATS,
    ANALYTICS_TABLES,
    ANALYTICS_TICKS,
    MEDIA_EVENTS,
    REPLAY_EVENTS,
    ROOM_EVENTS,
    changelogs,
    wait_for_topics,
)
from libs.grpckit.server import GrpcHost
from libs.streams.log_watch import FaustLogWatch
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
    topics = (*TOPICS, *changelogs(settings.analytics_app_id, ANALYTICS_TABLES))
    host = GrpcHost(settings, [SERVICE_NAME])
    host.install_signal_handlers()
    await host.start(f"{settings.analytics_bind_host}:{settings.analytics_port}")
    waiting = wait_for_topics(
        settings.kafka_bootstrap_servers,
        topics,
        settings.topic_partitions,
        "analytics",
        **kafka_security(settings),
    )
    if not await host.unless_stopped(waiting):
        await host.stop()
        return
    log_loss = LogLoss()
    streams = AnalyticsStreams(
        settings,
        window_seconds=settings.analytics_window_seconds,
        lateness_seconds=settings.analytics_lateness_seconds,
        tick_seconds=settings.analytics_tick_seconds,
        producer_batch_bytes=settings.analytics_producer_batch_bytes,
        app_id=settings.analytics_app_id,
        forget_ended_after_seconds=settings.analytics_forget_ended_after_seconds,
        hole_seconds=settings.log_hole_seconds,
        log_loss=log_loss,
    )
    watch = FaustLogWatch(streams.app, settings, topics, log_loss)
    host.follow(log_loss)
    await streams.app.start()
    await watch.start()
    try:
        if await host.unless_stopped(streams.app.tables.recovery.completed.wait()):
            await host.serving()
            print(f"analytics service ready on port {host.port}", flush=True)
            await host.wait_for_stop_signal()
        await host.stop()
    finally:
        await watch.stop()
        await streams.app.producer.flush()
        await streams.app.stop()


def main() -> None:
    settings = AnalyticsSettings()
    configure_telemetry(settings, "analytics")
    run(serve(settings), settings.event_loop)
