"""The delivery queue, filled from the log: one row per (webhook, event) the webhook wants.

A durable view (`libs/projection/durable.py`) over the room, moderation and
replay topics. For each batch, in the runner's transaction that also stores
the batch's log position, it:

1. remembers each new Space's host (`space_hosts_v1`): a user's webhook hears
   only of the Spaces that user hosts, and moderation and replay events do not
   name the host;
2. turns each event a webhook may want into its JSON body (`payloads.py`);
3. inserts a delivery for every live webhook that wants it: its type is
   subscribed, its Space is in the webhook's filter (if any), the owner may see
   it (a gateway, or the Space's host), it happened after the webhook was
   registered, and within the retention (older events are not delivered:
   their deliveries could already have been purged, so a rebuilt view would
   send them again).

The position and the rows commit together, and `(webhook, event)` is unique,
so every event is enqueued exactly once per webhook, across restarts, replays
of the log and rebuilds. Rows are inserted in the order of delivery: each
stream (a Space's room events, its moderation events, its replay events) in
log order, and the streams of one batch interleaved by the time their events
occurred (across batches, in the order read). A
rebuild empties the Space hosts only: deliveries are what was promised to
receivers, not part of the view.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS, REPLAY_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from libs.telemetry.metrics import WEBHOOK_EVENTS_TOO_OLD
from podium.room.v1 import room_events_pb2 as room
from services.webhooks.domain.event_types import name
from services.webhooks.domain.payloads import webhook_body
from services.webhooks.infrastructure.tables import wake_channel


class DeliveryQueue:
    name = "webhooks-delivery-queue"
    version = 1
    topics = (ROOM_EVENTS, MODERATION_EVENTS, REPLAY_EVENTS)
    tables = ("space_hosts_v1",)

    def __init__(self, schema: str, retention: timedelta):
        self.s = schema
        self.retention = retention
        self.channel = wake_channel(schema)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[ConsumedEvent]) -> None:
        hosts: dict[str, str] = {}
        streams: dict[tuple[str, str], list[tuple]] = {}
        for e in events:
            if isinstance(e.payload, room.SpaceCreated):
                hosts[e.envelope.space_id] = e.payload.host_user_id
            if not e.envelope.space_id or e.payload is None:
                continue
            body = webhook_body(e.envelope, e.payload)
            if body is not None:
                streams.setdefault((e.envelope.producer, e.envelope.stream_id), []).append(
                    (
                        e.envelope.event_id,
                        e.envelope.space_id,
                        name(body.event_type),
                        occurred_at(e.envelope),
                        body.json,
                    )
                )
        # The batch holds several topics' partitions one after the other; a Space's room, moderation
        # and replay events are interleaved by time, each stream keeping its own order exactly.
        rows = list(heapq.merge(*streams.values(), key=lambda row: row[3]))
        if hosts:
            await conn.execute(
                f"INSERT INTO {self.s}.space_hosts_v1 (space_id, host_user_id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (space_id) DO NOTHING",
                list(hosts),
                list(hosts.values()),
            )
        if not rows:
            return
        horizon = datetime.now(UTC) - self.retention
        recent = [r for r in rows if r[3] >= horizon]
        if len(recent) < len(rows):
            WEBHOOK_EVENTS_TOO_OLD.inc(len(rows) - len(recent))
        if not recent:
            return
        await conn.execute(
            f"""
            WITH enqueued AS (
                INSERT INTO {self.s}.deliveries (webhook_id, event_id, space_id, event_type, occurred_at, body)
                SELECT w.webhook_id, e.event_id, e.space_id, e.event_type, e.at, e.body
                FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                     WITH ORDINALITY AS e(event_id, space_id, event_type, at, body, n)
                LEFT JOIN {self.s}.space_hosts_v1 h ON h.space_id = e.space_id
                JOIN {self.s}.webhooks w
                  ON w.deleted_at IS NULL
                 AND e.event_type = ANY(w.event_types)
                 AND w.created_at <= e.at
                 AND (cardinality(w.space_ids) = 0 OR e.space_id = ANY(w.space_ids))
                 AND (w.owner_is_gateway OR w.owner_id = h.host_user_id)
                ORDER BY e.n, w.webhook_id
                ON CONFLICT (webhook_id, event_id) DO NOTHING
                RETURNING 1
            )
            -- Wakes the delivery workers, at commit (PostgreSQL delivers a NOTIFY then).
            SELECT pg_notify($6, '') WHERE EXISTS (SELECT 1 FROM enqueued)
            """,
            *(list(column) for column in zip(*recent, strict=True)),
            self.channel,
        )
