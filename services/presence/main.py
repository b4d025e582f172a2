"""The presence service's composition root: a faust app and a gRPC server in one process.

    python -m services.presence

Heartbeats are in presence's Kafka topic and its faust table recovers from its
changelog. The "who's here" board is folded from the room, moderation, presence
and media topics into rows in its `presence` schema (one writer among replicas)
and, on every replica, the live Spaces in memory, loaded from those rows at
start and read on from the log. Health says SERVING once the faust app has
recovered its table and the board has caught up.
"""

from __future__ import annotations

import logging

from libs.config.runtime import run
from libs.events.kafka import make_producer
from libs.events.kafka_security import kafka_security
from libs.events.log_loss import LogLoss
from libs.events.topics import (
    DEAD_LETTER,
    PRESENCE_APP,
    PRESENCE_EVENTS,
    PRESENCE_HEARTBEATS,
    PRESENCE_TABLES,
    ROOM_EVENTS,
    changelogs,
    wait_for_topics,
)
from libs.eventstore.pool import create_pool
from libs.grpckit.channels import ClientTls
from libs.grpckit.server import GrpcHost
from libs.grpckit.shell import authenticator_for
from libs.migrations.check import require_at_head
from libs.projection.durable import CacheRunner, DurableProjectionRunner
from libs.streams.log_watch import FaustLogWatch
from libs.telemetry.metrics import VIEW_CACHED_SPACES
from libs.telemetry.setup import configure_telemetry
from podium.presence.v1 import presence_service_pb2, presence_service_pb2_grpc
from services.presence.api.presence_api import PresenceApi
from services.presence.application.query_routing import PeerRouter
from services.presence.application.stream_processor import PresenceStreams
from services.presence.projections.space_board import SpaceBoard
from services.presence.projections.space_board_rows import SpaceBoardRows
from services.presence.settings import PresenceSettings

log = logging.getLogger("podium.presence")

SERVICE_NAME = presence_service_pb2.DESCRIPTOR.services_by_name["PresenceService"].full_name


TOPICS = (
    PRESENCE_HEARTBEATS,
    PRESENCE_EVENTS,
    ROOM_EVENTS,
    DEAD_LETTER,
    *changelogs(PRESENCE_APP, PRESENCE_TABLES),
)


async def serve(settings: PresenceSettings) -> None:
    host = GrpcHost(settings, [SERVICE_NAME])
    own_address = f"{settings.presence_advertised_host}:{settings.presence_port}"
    streams = PresenceStreams(
        settings,
        settings.rules(),
        tick_seconds=settings.presence_tick_seconds,
        producer_batch_bytes=settings.presence_producer_batch_bytes,
        advertised_address=own_address if settings.presence_port else "",
        standby_replicas=settings.presence_standby_replicas,
        users_per_part=settings.presence_users_per_part,
        max_parts=settings.presence_max_parts,
    )
    log_loss = LogLoss()
    host.follow(log_loss)
    watch = FaustLogWatch(streams.app, settings, TOPICS, log_loss)
    peers = PeerRouter(
        streams.app,
        streams.table.name,
        settings.topic_partitions,
        own_address,
        tls=ClientTls.from_settings(settings),
    )
    producer = make_producer(settings, client_id="presence-api")
    pool = await create_pool(settings)
    try:
        await require_at_head(pool, "presence")  # services run no DDL: `podium migrate` does
    except BaseException:
        await pool.close()
        raise
    rows = SpaceBoardRows(pool)
    board = SpaceBoard(rows, forget_ended_after=settings.presence_forget_ended_after_seconds)
    VIEW_CACHED_SPACES.labels(board.name).set_function(lambda: len(board.boards))
    runners = (
        DurableProjectionRunner(
            settings, pool, "presence", rows, client_id=f"podium-presence-{rows.name}", log_loss=log_loss
        ),
        CacheRunner(
            settings,
            pool,
            "presence",
            rows,
            board,
            client_id=f"podium-presence-{board.name}",
            log_loss=log_loss,
        ),
    )
    api = PresenceApi(
        authenticator_for(settings),
        streams,
        board,
        producer,
        settings.presence_max_entries_per_report,
        peers,
        pulse_every_seconds=settings.rules().pulse_every_seconds,
    )
    presence_service_pb2_grpc.add_PresenceServiceServicer_to_server(api, host.server)
    host.install_signal_handlers()
    await host.start(f"{settings.presence_bind_host}:{settings.presence_port}")
    topics = wait_for_topics(
        settings.kafka_bootstrap_servers,
        TOPICS,
        settings.topic_partitions,
        "presence",
        **kafka_security(settings),
    )
    if not await host.unless_stopped(topics):
        await host.stop()
        await peers.close()
        await pool.close()
        return
    await producer.start()
    await streams.app.start()
    await watch.start()
    for runner in runners:
        await runner.start()
    try:
        if await host.unless_stopped(_caught_up(streams, runners)):
            await host.serving()
            print(f"presence service ready on port {host.port}", flush=True)
            await host.wait_for_stop_signal()
        await host.stop()
    finally:
        await watch.stop()
        for runner in reversed(runners):
            await runner.stop()
        # Flush the table's changelog before faust commits its last offsets on the way out.
        await streams.app.producer.flush()
        await streams.app.stop()
        await producer.stop()
        await peers.close()
        await pool.close()


async def _caught_up(streams: PresenceStreams, runners) -> None:
    await streams.app.tables.recovery.completed.wait()
    for runner in runners:
        await runner.caught_up.wait()


def main() -> None:
    settings = PresenceSettings()
    configure_telemetry(settings, "presence")
    run(serve(settings), settings.event_loop)
