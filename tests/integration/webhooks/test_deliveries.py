"""Webhooks end to end: real gRPC, PostgreSQL, the broker and an aiohttp receiver.

A host registers a webhook whose endpoint answers 500 for a while, then
recovers; the host runs two Spaces (scheduled, started, joined, a speaker
promoted and muted, a listener removed, ended), and another host a Space of
their own. Every event of the host's Spaces reaches the endpoint exactly once
(counted by `Idempotency-Key`), nothing of the other host's, and per Space
nothing is sent while an earlier event is still unacknowledged; every request
verifies with the sample verifier of docs/webhooks.md. What to expect is read
from the room's and moderation's own event stores, in stream order.

Then a gateway's webhook whose endpoint stays down: its deliveries are
dead-lettered after the attempts allowed, listed, retried once the endpoint is
back (a repeated retry with the same request id changes nothing), delivered in
order; and the webhook is deleted, twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from libs.events.envelope import EventEnvelope, unwrap
from podium.webhooks.v1 import webhook_types_pb2 as wt
from services.webhooks.domain.event_types import name, webhook_type
from tests.integration.clients import ModerationClient, RoomClient, error_reason
from tests.integration.conftest import eventually
from tests.integration.webhooks.conftest import WebhookClient
from tests.support.auth import gateway_token
from tests.support.webhook_verifier import documented_verifier

pytestmark = pytest.mark.integration

VIEW_BEHIND = (grpc.StatusCode.UNAVAILABLE,)  # moderation's view not there yet, on a loaded machine
ROOM_TYPES = {"space.scheduled", "space.started", "space.ended", "participant.joined", "participant.left",
              "participant.role_changed"}  # fmt: skip


async def _expected(database_url: str, space_id: str) -> dict[str, list[tuple[str, str]]]:
    """The Space's webhook events per producer, in stream order: (event id, type)."""
    found: dict[str, list[tuple[str, str]]] = {}
    conn = await asyncpg.connect(database_url)
    try:
        for schema in ("room", "moderation"):
            rows = await conn.fetch(
                f"SELECT envelope FROM {schema}.events WHERE space_id = $1 ORDER BY stream_id, version",
                space_id,
            )
            for row in rows:
                envelope = EventEnvelope.FromString(bytes(row["envelope"]))
                kind = webhook_type(unwrap(envelope))
                if kind is not None:
                    found.setdefault(schema, []).append((envelope.event_id, name(kind)))
    finally:
        await conn.close()
    return found


async def _run_a_space(room, moderation, host: str, guests: list[str], *, scheduled: bool) -> str:
    host_room = RoomClient(room.channel, host)
    start = datetime.now(UTC) + timedelta(hours=1)
    created = await host_room.CreateSpace(title="hooked", **({"scheduled_start": start} if scheduled else {}))
    space_id = created.space.space_id
    await host_room.StartSpace(space_id=space_id)
    for guest in guests:
        await RoomClient(room.channel, guest).JoinSpace(space_id=space_id)
    promoted = await host_room.InviteToSpeak(space_id=space_id, user_id=guests[0])
    host_mod = ModerationClient(moderation.channel, host)
    version = promoted.space.version  # moderation decides once its view has seen the promotion
    await eventually(
        lambda: host_mod.MuteParticipant(space_id=space_id, user_id=guests[0], room_version=version),
        retry_on=VIEW_BEHIND,
    )
    await eventually(
        lambda: host_mod.RemoveParticipant(
            space_id=space_id, user_id=guests[1], reason="off topic", room_version=version
        ),
        retry_on=VIEW_BEHIND,
    )
    async with asyncio.timeout(15):  # the room takes the removed user out, then the Space ends
        while guests[1] in [
            p.user_id for p in (await host_room.ListParticipants(space_id=space_id)).participants
        ]:
            await asyncio.sleep(0.05)
    await host_room.EndSpace(space_id=space_id)
    return space_id


async def test_every_event_reaches_the_host_once_in_order_and_signed_through_an_outage(
    room, moderation, webhooks, receiver, database_url
):
    run = uuid.uuid4().hex[:6]
    host, other_host = f"wh-host-{run}", f"wh-other-{run}"
    url, endpoint = receiver.endpoint("host", refuse_first=3)
    registered = await WebhookClient(webhooks.channel, host).RegisterWebhook(url=url, description="all of it")
    secret, webhook_id = registered.signing_secret, registered.webhook.webhook_id
    assert (
        secret.startswith("whsec_")
        and len(registered.webhook.event_types) == len(wt.WebhookEventType.keys()) - 1
    )

    spaces = [
        await _run_a_space(
            room, moderation, host, [f"wh-a-{run}", f"wh-b-{run}", f"wh-c-{run}"], scheduled=True
        ),
        await _run_a_space(room, moderation, host, [f"wh-d-{run}", f"wh-e-{run}"], scheduled=False),
    ]
    elsewhere = await _run_a_space(
        room, moderation, other_host, [f"wh-f-{run}", f"wh-g-{run}"], scheduled=True
    )

    expected = {}
    async with asyncio.timeout(30):
        while True:
            expected = {s: await _expected(database_url, s) for s in spaces}
            wanted = {event_id for s in spaces for events in expected[s].values() for event_id, _ in events}
            got = {a.headers["Idempotency-Key"] for a in endpoint.accepted}
            if wanted <= got:
                break
            await asyncio.sleep(0.1)
    types = {t for s in spaces for events in expected[s].values() for _, t in events}
    assert types >= ROOM_TYPES | {"participant.muted", "participant.removed"}, types
    assert [a.status for a in endpoint.arrivals[:4]] == [500, 500, 500, 204]  # the outage, then recovery

    keys = [a.headers["Idempotency-Key"] for a in endpoint.accepted]
    assert len(keys) == len(set(keys)) == len(wanted)  # each once, nothing else
    bodies = [json.loads(a.body) for a in endpoint.arrivals]
    assert elsewhere not in {b["space_id"] for b in bodies}
    for space_id in spaces:
        order = {
            event_id: n
            for producer in expected[space_id].values()
            for n, (event_id, _) in enumerate(producer)
        }
        producer_of = {event_id: p for p, events in expected[space_id].items() for event_id, _ in events}
        done: set[str] = set()
        for arrival, body in zip(endpoint.arrivals, bodies, strict=True):
            if body["space_id"] != space_id:
                continue
            event_id = body["id"]
            earlier = {e for e, _ in expected[space_id][producer_of[event_id]][: order[event_id]]}
            assert earlier <= done, (
                f"{body['type']} sent before an earlier event of its Space was acknowledged"
            )
            if arrival.status < 300:
                done.add(event_id)

    verify = documented_verifier()
    for arrival, body in zip(endpoint.arrivals, bodies, strict=True):
        assert verify(secret, arrival.headers["Podium-Signature"], arrival.body)
        assert arrival.headers["Idempotency-Key"] == arrival.headers["Podium-Event-Id"] == body["id"]
        assert arrival.headers["Podium-Event-Type"] == body["type"]
        assert arrival.headers["Podium-Webhook-Id"] == webhook_id
        assert set(body) == {"id", "type", "space_id", "occurred_at", "actor_user_id", "data"}
    tampered = endpoint.arrivals[-1]
    assert not verify(secret, tampered.headers["Podium-Signature"], tampered.body + b" ")
    assert not verify("whsec_another", tampered.headers["Podium-Signature"], tampered.body)
    scheduled = next(b for b in bodies if b["type"] == "space.scheduled")
    assert scheduled["data"]["host_user_id"] == host and scheduled["data"]["scheduled_start"]


async def test_dead_letters_are_listed_retried_once_and_delivered_in_order(room, webhooks, receiver):
    run = uuid.uuid4().hex[:6]
    host = RoomClient(room.channel, f"wh-dl-{run}")
    space_id = (await host.CreateSpace(title="dead letters")).space.space_id
    gateway = WebhookClient(webhooks.channel, f"gw-{run}", token=gateway_token(f"gw-{run}"))
    url, endpoint = receiver.endpoint("down", down=True)
    webhook = (
        await gateway.RegisterWebhook(
            url=url,
            event_types=[wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED, wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED],
            space_ids=[space_id],
        )
    ).webhook
    assert webhook.owner_is_gateway
    await host.StartSpace(space_id=space_id)
    await host.EndSpace(space_id=space_id)

    async with asyncio.timeout(30):
        while len(dead := (await gateway.ListWebhookDeliveries(
            webhook_id=webhook.webhook_id, state=wt.DELIVERY_STATE_DEAD_LETTERED
        )).deliveries) < 2:  # fmt: skip
            await asyncio.sleep(0.1)
    assert [d.event_type for d in dead] == [
        wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED,
        wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED,
    ]
    assert all(d.attempts == 4 and d.last_status_code == 500 and "HTTP 500" in d.last_error for d in dead)
    assert len(endpoint.arrivals) == 8 and not endpoint.accepted

    endpoint.down = False
    first = await gateway.RetryWebhookDeliveries(webhook_id=webhook.webhook_id, request_id=f"retry-{run}")
    again = await gateway.RetryWebhookDeliveries(webhook_id=webhook.webhook_id, request_id=f"retry-{run}")
    assert first.retried_count == again.retried_count == 2
    async with asyncio.timeout(15):
        while len(endpoint.accepted) < 2:
            await asyncio.sleep(0.05)
    assert [json.loads(a.body)["type"] for a in endpoint.accepted] == ["space.started", "space.ended"]
    assert all(a.headers["Podium-Delivery-Attempt"] == "1" for a in endpoint.accepted)
    async with asyncio.timeout(15):  # the outcome is recorded just after the answer
        while len(delivered := (await gateway.ListWebhookDeliveries(
            webhook_id=webhook.webhook_id, state=wt.DELIVERY_STATE_DELIVERED
        )).deliveries) < 2:  # fmt: skip
            await asyncio.sleep(0.05)
    assert [d.delivery_id for d in delivered] == [d.delivery_id for d in dead]
    assert (await gateway.RetryWebhookDeliveries(webhook_id=webhook.webhook_id)).retried_count == 0

    await gateway.DeleteWebhook(webhook_id=webhook.webhook_id)
    await gateway.DeleteWebhook(webhook_id=webhook.webhook_id)  # again: nothing left to do
    assert webhook.webhook_id not in [w.webhook_id for w in (await gateway.ListWebhooks()).webhooks]
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await gateway.ListWebhookDeliveries(webhook_id=webhook.webhook_id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND and error_reason(gone.value) == "WEBHOOK_NOT_FOUND"
