"""The HTTP request of one delivery attempt: the stored body, and the headers that say what it is.

POST <webhook url>
Content-Type: application/json
User-Agent: Podium-Webhooks/1
Idempotency-Key: <event id>            the same on every attempt: dedupe by it
Podium-Event-Id: <event id>
Podium-Event-Type: participant.joined
Podium-Webhook-Id: <webhook id>
Podium-Delivery-Attempt: 1             1 on the first attempt, counted again after a manual retry
Podium-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">
"""

from __future__ import annotations

from dataclasses import dataclass

from services.webhooks.domain.signature import SIGNATURE_HEADER, signature_header

USER_AGENT = "Podium-Webhooks/1"


@dataclass(frozen=True)
class DeliveryRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def delivery_request(
    *,
    url: str,
    secret: str,
    webhook_id: str,
    event_id: str,
    event_type: str,
    attempt: int,
    body: str,
    timestamp: int,
) -> DeliveryRequest:
    raw = body.encode()
    return DeliveryRequest(
        url=url,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": event_id,
            "Podium-Event-Id": event_id,
            "Podium-Event-Type": event_type,
            "Podium-Webhook-Id": webhook_id,
            "Podium-Delivery-Attempt": str(attempt),
            SIGNATURE_HEADER: signature_header(secret, timestamp, raw),
        },
        body=raw,
    )
