"""The webhooks service's own tables, in its `webhooks` schema (versioned steps).

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

STEPS = (
    """
    CREATE TABLE IF NOT EXISTS {s}.webhooks (
        webhook_id text PRIMARY KEY,
        owner_id text NOT NULL,
        owner_is_gateway boolean NOT NULL,
        url text NOT NULL,
        event_types text[] NOT NULL, -- the names bodies carry, such as participant.joined
        space_ids text[] NOT NULL, -- empty: every Space the owner may see
        description text NOT NULL,
        secret text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS webhooks_by_owner ON {s}.webhooks (owner_id, owner_is_gateway, webhook_id)
        WHERE deleted_at IS NULL;
    CREATE TABLE IF NOT EXISTS {s}.deliveries (
        delivery_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id text NOT NULL REFERENCES {s}.webhooks ON DELETE CASCADE,
        event_id text NOT NULL,
        space_id text NOT NULL,
        event_type text NOT NULL,
        occurred_at timestamptz NOT NULL,
        enqueued_at timestamptz NOT NULL DEFAULT now(),
        body text NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        held_until timestamptz,
        last_attempt_at timestamptz,
        last_status int NOT NULL DEFAULT 0,
        last_error text NOT NULL DEFAULT '',
        delivered_at timestamptz,
        finished_at timestamptz, -- delivered or dead-lettered: when the retention starts
        UNIQUE (webhook_id, event_id)
    );
    CREATE INDEX IF NOT EXISTS deliveries_queues ON {s}.deliveries (webhook_id, space_id, delivery_id)
        WHERE state = 'pending';
    CREATE INDEX IF NOT EXISTS deliveries_finished ON {s}.deliveries (finished_at)
        WHERE state <> 'pending';
    """,
)


def wake_channel(schema: str) -> str:
    """The NOTIFY channel that tells delivery workers there is something new to send."""
    return f"{schema}_deliveries"
