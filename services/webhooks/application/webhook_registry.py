"""Registering, listing and deleting webhooks, and putting dead-lettered deliveries back.

Each call acts for its owner only: a webhook of someone else is NOT_FOUND,
exactly as one that does not exist, so ids reveal nothing. Mutations are made
once per `request_id` (`libs/application/once.py`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import asyncpg

from libs.application.executor import RequestKey
from libs.application.once import once
from libs.domain.errors import NotFound, ResourceExhausted
from libs.domain.reasons import Reason
from libs.events.ids import new_id
from libs.eventstore.store import EventStore
from podium.webhooks.v1 import webhook_service_pb2 as pb
from podium.webhooks.v1 import webhook_types_pb2 as wt
from services.webhooks.domain.event_types import BY_NAME, name
from services.webhooks.domain.registration import Owner, Registration
from services.webhooks.infrastructure.deliveries import Deliveries, DeliveryRecord
from services.webhooks.infrastructure.endpoints import Endpoints, StoredWebhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A signing secret: 32 random bytes, URL-safe base64, with a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_message(webhook: StoredWebhook) -> wt.Webhook:
    message = wt.Webhook(
        webhook_id=webhook.webhook_id,
        owner_id=webhook.owner.id,
        owner_is_gateway=webhook.owner.is_gateway,
        url=webhook.url,
        event_types=[BY_NAME[t] for t in webhook.event_types if t in BY_NAME],
        space_ids=webhook.space_ids,
        description=webhook.description,
    )
    message.create_time.FromDatetime(webhook.created_at)
    return message


class WebhookRegistry:
    def __init__(self, store: EventStore, endpoints: Endpoints, deliveries: Deliveries, max_per_owner: int):
        self.store = store
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.max_per_owner = max_per_owner

    async def register(
        self,
        owner: Owner,
        registration: Registration,
        key: RequestKey | None,
    ) -> pb.RegisterWebhookResponse:
        async def work(conn: asyncpg.Connection) -> pb.RegisterWebhookResponse:
            await self.endpoints.lock_owner(conn, owner)
            if await self.endpoints.count(conn, owner) >= self.max_per_owner:
                raise ResourceExhausted(
                    f"an owner may have at most {self.max_per_owner} webhooks; delete one first",
                    reason=Reason.WEBHOOK_LIMIT_REACHED,
                )
            secret = new_secret()
            stored = await self.endpoints.insert(
                conn,
                new_id(),
                owner,
                registration.url,
                tuple(name(t) for t in registration.event_types),
                registration.space_ids,
                registration.description,
                secret,
            )
            return pb.RegisterWebhookResponse(webhook=webhook_message(stored), signing_secret=secret)

        return await once(self.store, key, pb.RegisterWebhookResponse, work)

    async def owned(self, owner: Owner, after: str, limit: int) -> list[StoredWebhook]:
        return await self.endpoints.owned(owner, after, limit)

    async def delete(self, owner: Owner, webhook_id: str, key: RequestKey | None) -> pb.DeleteWebhookResponse:
        """Deletes the owner's webhook; deleting it again changes nothing and succeeds."""
        await self._owned(owner, webhook_id, deleted_ok=True)

        async def work(conn: asyncpg.Connection) -> pb.DeleteWebhookResponse:
            await self.endpoints.delete(conn, webhook_id)
            return pb.DeleteWebhookResponse()

        return await once(self.store, key, pb.DeleteWebhookResponse, work)

    async def deliveries_of(
        self, owner: Owner, webhook_id: str, state: str, after: int, limit: int
    ) -> list[DeliveryRecord]:
        await self._owned(owner, webhook_id)
        return await self.deliveries.listed(webhook_id, state, after, limit)

    async def retry(
        self, owner: Owner, webhook_id: str, delivery_ids: Sequence[int], key: RequestKey | None
    ) -> pb.RetryWebhookDeliveriesResponse:
        await self._owned(owner, webhook_id)

        async def work(conn: asyncpg.Connection) -> pb.RetryWebhookDeliveriesResponse:
            count = await self.deliveries.retry(conn, webhook_id, delivery_ids)
            return pb.RetryWebhookDeliveriesResponse(retried_count=count)

        return await once(self.store, key, pb.RetryWebhookDeliveriesResponse, work)

    async def _owned(self, owner: Owner, webhook_id: str, *, deleted_ok: bool = False) -> StoredWebhook:
        webhook = await self.endpoints.get(webhook_id)
        if webhook is None or webhook.owner != owner or (webhook.deleted_at is not None and not deleted_ok):
            raise NotFound(f"you have no webhook {webhook_id!r}", reason=Reason.WEBHOOK_NOT_FOUND)
        return webhook
