"""The webhooks service's own tables, in its `webhooks` schema (made by its migrations).

- `webhooks`: the registered endpoints, with their signing secrets. A deleted
  webhook keeps its row (`deleted_at`) until the retention purge, so a
  repeated DeleteWebhook finds it and changes nothing.
- `deliveries`: one row per (webhook, event), written by the delivery-queue
  view in the transaction that stores its log position, so an event is
  enqueued once per webhook (the unique key makes it so even when the view is
  rebuilt, for as long as the rows are kept). `delivery_id` is the order of
  enqueueing, which is the order of delivery per webhook and Space. `state` is
  `pending` (with `attempts`, `next_attempt_at`, and `held_until` while a
  worker holds it), then `delivered` or `dead` (dead-lettered).
"""

from __future__ import annotations


def wake_channel(schema: str) -> str:
    """The NOTIFY channel that tells delivery workers there is something new to send."""
    return f"{schema}_deliveries"
