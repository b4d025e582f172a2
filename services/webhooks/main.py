"""The webhooks service's composition root: wiring only.

    python -m services.webhooks

It keeps registered webhooks and their deliveries in its own `webhooks`
schema and publishes no events. Its delivery-queue view reads the room,
moderation and replay topics and enqueues a delivery per event and webhook
that wants it (resumed from its stored position on start); the delivery
worker sends them; a purge forgets old ones (docs/webhooks.md).
"""

from __future__ import annotations

from libs.config.runtime import run
from libs.grpckit.shell import ServiceShell
from libs.telemetry.setup import configure_telemetry
from podium.webhooks.v1 import webhook_service_pb2, webhook_service_pb2_grpc
from services.webhooks.api.webhook_api import WebhookApi
from services.webhooks.application.delivery_worker import DeliveryWorker
from services.webhooks.application.retention_purge import RetentionPurge
from services.webhooks.application.webhook_registry import WebhookRegistry
from services.webhooks.infrastructure.deliveries import Deliveries
from services.webhooks.infrastructure.endpoints import Endpoints
from services.webhooks.infrastructure.http_sender import HttpSender
from services.webhooks.projections.delivery_queue import DeliveryQueue
from services.webhooks.settings import WebhooksSettings

SCHEMA = "webhooks"
SERVICE_NAME = webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name


async def serve(settings: WebhooksSettings) -> None:
    shell = ServiceShell(
        settings, schema=SCHEMA, producer="webhooks", publishes=(), service_names=[SERVICE_NAME]
    )
    async with shell:
        assert shell.pool is not None and shell.store is not None
        endpoints = Endpoints(shell.pool, SCHEMA)
        deliveries = Deliveries(shell.pool, SCHEMA)
        shell.add_durable_view(DeliveryQueue(SCHEMA, settings.retention()))
        shell.add_background(
            DeliveryWorker(
                settings.database_url,
                deliveries,
                HttpSender(
                    timeout_seconds=settings.webhooks_request_timeout_seconds,
                    max_connections=settings.webhooks_max_concurrent_requests,
                    allow_private=settings.webhooks_allow_private_addresses,
                ),
                settings.retry_policy(),
                max_concurrent=settings.webhooks_max_concurrent_requests,
                max_run=settings.webhooks_max_run,
                poll_seconds=settings.webhooks_poll_seconds,
                request_timeout=settings.webhooks_request_timeout_seconds,
            )
        )
        shell.add_background(
            RetentionPurge(
                deliveries, endpoints, settings.retention(), settings.webhooks_purge_interval_seconds
            )
        )
        registry = WebhookRegistry(shell.store, endpoints, deliveries, settings.webhooks_max_per_owner)
        api = WebhookApi(shell.authenticator, registry, settings.url_policy())
        webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(api, shell.host.server)
        await shell.serve(settings.webhooks_bind_host, settings.webhooks_port)


def main() -> None:
    settings = WebhooksSettings()
    configure_telemetry(settings, "webhooks")
    run(serve(settings), settings.event_loop)
