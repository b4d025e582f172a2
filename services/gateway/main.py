"""The reference client gateway's composition root: wiring only.

    python -m services.gateway

It serves the web client and its JSON API over HTTP (PODIUM_GATEWAY_HTTP_PORT,
8080), terminates the browsers' WebRTC, and speaks to Podium only through the
services' public gRPC APIs. Its gRPC port serves health and reflection, like
every Podium service. It keeps no database and no log of its own: a gateway is
an edge, and Podium runs without it (docs/architecture.md).
"""

from __future__ import annotations

import logging

from aiohttp import web

from libs.config.runtime import run
from libs.grpckit.channels import ClientTls
from libs.grpckit.server import GrpcHost
from libs.grpckit.shell import authenticator_for
from libs.telemetry.setup import configure_telemetry
from podium.presence.v1 import presence_service_pb2 as presence_pb
from podium.presence.v1 import presence_types_pb2 as presence_types
from services.gateway.api.http_api import HttpApi
from services.gateway.application.ice_servers import IceServerSource
from services.gateway.application.presence_reporter import Connections, PresenceReporter
from services.gateway.application.sessions import Sessions
from services.gateway.infrastructure.podium import PodiumClients
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

# The name its health is reported under: the gateway serves no gRPC API of its own.
SERVICE_NAME = "podium.gateway.v1.Gateway"


async def serve(settings: GatewaySettings) -> None:
    host = GrpcHost(settings, [SERVICE_NAME])
    clients = PodiumClients(
        settings.peer_addresses(), ClientTls.from_settings(settings), settings.own_token()
    )
    connections = Connections()

    async def report(entries: list[tuple[str, str]]) -> None:
        request = presence_pb.ReportPresenceRequest(
            gateway_id=settings.gateway_id,
            entries=[presence_types.PresenceEntry(user_id=u, space_id=s) for u, s in entries],
        )
        await clients.presence.ReportPresence(request, metadata=clients.as_gateway, timeout=5)

    async def disconnect() -> None:
        request = presence_pb.GatewayDisconnectedRequest(gateway_id=settings.gateway_id)
        await clients.presence.GatewayDisconnected(request, metadata=clients.as_gateway, timeout=5)

    reporter = PresenceReporter(connections, report, disconnect, settings.gateway_presence_interval_seconds)
    ice_servers = IceServerSource(
        settings.ice_servers(),
        settings.gateway_turn_secret.get_secret_value(),
        settings.gateway_turn_credential_ttl_seconds,
    )
    sessions = Sessions(
        clients, settings.gateway_id, connections, settings.gateway_listener_buffer_frames, ice_servers
    )
    api = HttpApi(
        sessions,
        clients,
        authenticator_for(settings).verifier,
        dev_sign_in_key=settings.jwt_secret.get_secret_value() if settings.gateway_dev_sign_in else None,
        audience=settings.jwt_audience,
        key_id=settings.jwt_key_id,
        ice_servers=ice_servers,
    )
    runner = web.AppRunner(api.app(), access_log=None)
    host.install_signal_handlers()
    await host.start(f"{settings.gateway_bind_host}:{settings.gateway_port}")
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_bind_host, settings.gateway_http_port)
    try:
        await site.start()
        http_port = runner.addresses[0][1]
        await reporter.start()
        await host.serving()
        log.info("web client on http://127.0.0.1:%d", http_port)
        print(
            f"gateway service ready on port {host.port}, web client on http://127.0.0.1:{http_port}",
            flush=True,
        )
        await host.wait_for_stop_signal()
        log.info("stopping")
        await host.not_serving("stopping")
    finally:
        await sessions.stop()
        await reporter.stop()  # GatewayDisconnected: everyone it held is dropped now
        await runner.cleanup()
        await host.stop()
        await clients.close()


def main() -> None:
    settings = GatewaySettings()
    configure_telemetry(settings, "gateway")
    run(serve(settings), settings.event_loop)
