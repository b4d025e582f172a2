"""The presence service's composition root: a faust app and a gRPC server in one process.

    python -m services.presence

Presence keeps no PostgreSQL state: heartbeats are in its Kafka topic and
its table recovers from its changelog. The "who's here" board is rebuilt from
the room, moderation and presence topics. Health says SERVING once the faust
app has recovered its table and the board has caught up.
"""

from __future__ import annotations

import logging

from libs.config.runtime import run
from libs.events.kafka import make_producer
from libs.events.kafka_security import kafka_security
from libs.events.topics import DEAD_LETTER, PRESENCE_EVENTS, PRESENCE_HEARTBEATS, ROOM_EVENTS, ensure_topics
from libs.grpckit.channels import ClientTls
from libs.grpckit.server import GrpcHost
from libs.grpckit.shell import authenticator_for
from libs.projection.runner import ProjectionRunner
from libs.streams.faust_app import partition_of
from libs.streams.lost_log import LostLogGuard
from libs.telemetry.setup import configure_telemetry
from podium.presence.v1 import presence_service_pb2, presence_service_pb2_grpc
from services.presence.api.presence_api import PresenceApi
from services.presence.application.query_routing import PeerRouter
from services.presence.application.stream_processor import PresenceStreams
from services.presence.projections.space_board import SpaceBoard
from services.presence.settings import PresenceSettings

log = logging.getLogger("podium.presence")

SERVICE_NAME = presence_service_pb2.DESCRIPTOR.services_by_name["PresenceService"].full_name


async def serve(settings: PresenceSettings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        (PRESENCE_HEARTBEATS, PRESENCE_EVENTS, ROOM_EVENTS, DEAD_LETTER),
        settings.topic_partitions,
        settings.topic_replication_factor,
        **kafka_security(settings),
    )
    own_address = f"{settings.presence_advertised_host}:{settings.presence_port}"
    streams = PresenceStreams(
        settings,
        settings.rules(),
        tick_seconds=settings.presence_tick_seconds,
        producer_batch_bytes=settings.presence_producer_batch_bytes,
        advertised_address=own_address if settings.presence_port else "",
        standby_replicas=settings.presence_standby_replicas,
    )
    guard = LostLogGuard(
        streams.app,
        settings,
        (PRESENCE_HEARTBEATS, PRESENCE_EVENTS),  # its own; the room's relay brings back the room's
        rewrite={streams.table: lambda space_id: partition_of(space_id, settings.topic_partitions)},
        on_lost=streams.forget_offsets,
    )
    peers = PeerRouter(
        streams.app,
        streams.table.name,
        settings.topic_partitions,
        own_address,
        tls=ClientTls.from_settings(settings),
    )
    producer = make_producer(settings, client_id="presence-api")
    host = GrpcHost(settings, [SERVICE_NAME])
    board = SpaceBoard()
    board_runner = ProjectionRunner(settings, board, client_id="podium-presence-space-board")
    api = PresenceApi(
        authenticator_for(settings), streams, board, producer, settings.presence_max_entries_per_report, peers
    )
    presence_service_pb2_grpc.add_PresenceServiceServicer_to_server(api, host.server)
    host.install_signal_handlers()
    await host.start(f"{settings.presence_bind_host}:{settings.presence_port}")
    await producer.start()
    await streams.app.start()
    await guard.start()
    await board_runner.start()
    try:
        await streams.app.tables.recovery.completed.wait()
        await board_runner.caught_up.wait()
        await host.serving()
        print(f"presence service ready on port {host.port}", flush=True)
        await host.wait_for_stop_signal()
        await host.stop()
    finally:
        await guard.stop()
        await board_runner.stop()
        # Flush the table's changelog before faust commits its last offsets on the way out.
        await streams.app.producer.flush()
        await streams.app.stop()
        await producer.stop()
        await peers.close()


def main() -> None:
    settings = PresenceSettings()
    configure_telemetry(settings, "presence")
    run(serve(settings), settings.event_loop)
