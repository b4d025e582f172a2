"""The delivery queue in PostgreSQL, as the workers and the API use it.

Workers on every replica share it: `candidates` reads the first pending
deliveries of the queues whose head is due and free, the pure ordering rule
picks runs, `hold` takes them (an UPDATE that only succeeds for deliveries
nobody holds, so two workers never send the same run), and `record` writes
what each attempt gave and lets go. A worker that dies lets go when its hold
expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.webhooks.infrastructure.tables import wake_channel

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class QueuedDelivery:
    """A pending delivery near the head of its queue, with what sending it needs."""

    delivery_id: int
    webhook_id: str
    space_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    body: str
    attempts: int
    url: str
    secret: str
    due: bool
    held: bool


@dataclass(frozen=True)
class Attempted:
    """What an attempt gave: `state` and, when it stays pending, when to try next."""

    delivery_id: int
    state: str
    attempted_at: datetime | None
    status: int
    error: str
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: int
    webhook_id: str
    event_id: str
    event_type: str
    space_id: str
    state: str
    attempts: int
    last_status: int
    last_error: str
    occurred_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class Deliveries:
    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.s = schema
        self.channel = wake_channel(schema)

    async def candidates(self, queues: int, per_queue: int) -> list[QueuedDelivery]:
        """For up to `queues` queues whose head is due and free (the longest waiting first), their
        first `per_queue` pending deliveries, in order."""
        rows = await self.pool.fetch(
            f"""
            WITH heads AS (
                SELECT webhook_id, space_id, next_attempt_at FROM (
                    SELECT DISTINCT ON (webhook_id, space_id) webhook_id, space_id, next_attempt_at, held_until
                    FROM {self.s}.deliveries WHERE state = 'pending'
                    ORDER BY webhook_id, space_id, delivery_id
                ) h
                WHERE next_attempt_at <= now() AND (held_until IS NULL OR held_until < now())
                ORDER BY next_attempt_at LIMIT $1
            )
            SELECT d.delivery_id, d.webhook_id, d.space_id, d.event_id, d.event_type, d.occurred_at, d.body,
                   d.attempts, w.url, w.secret, d.next_attempt_at <= now() AS due,
                   coalesce(d.held_until >= now(), false) AS held
            FROM heads
            JOIN {self.s}.webhooks w USING (webhook_id)
            CROSS JOIN LATERAL (
                SELECT * FROM {self.s}.deliveries q
                WHERE q.webhook_id = heads.webhook_id AND q.space_id = heads.space_id AND q.state = 'pending'
                ORDER BY q.delivery_id LIMIT $2
            ) d
            """,
            queues,
            per_queue,
        )
        return [QueuedDelivery(**dict(r)) for r in rows]

    async def hold(self, delivery_ids: Sequence[int], seconds: float) -> set[int]:
        """Holds those of the deliveries that are still pending and free; returns their ids."""
        rows = await self.pool.fetch(
            f"UPDATE {self.s}.deliveries SET held_until = now() + make_interval(secs => $2) "
            "WHERE delivery_id = ANY($1::bigint[]) AND state = 'pending' "
            "AND (held_until IS NULL OR held_until < now()) RETURNING delivery_id",
            list(delivery_ids),
            seconds,
        )
        return {r["delivery_id"] for r in rows}

    async def record(self, attempted: Sequence[Attempted], released: Sequence[int] = ()) -> None:
        """Writes each attempt's outcome and lets go of the attempted and the `released` (held,
        not attempted), in one statement: a queue's next head is free only once its previous one
        is recorded."""
        if not attempted and not released:
            return
        rows = [*attempted, *(Attempted(i, "", None, 0, "") for i in released)]  # type: ignore[arg-type]
        await self.pool.execute(
            f"""
            UPDATE {self.s}.deliveries d SET
                state = CASE WHEN a.state = '' THEN d.state ELSE a.state END,
                attempts = d.attempts + CASE WHEN a.state = '' THEN 0 ELSE 1 END,
                last_attempt_at = coalesce(a.at, d.last_attempt_at),
                last_status = CASE WHEN a.state = '' THEN d.last_status ELSE a.status END,
                last_error = CASE WHEN a.state = '' THEN d.last_error ELSE a.error END,
                next_attempt_at = coalesce(a.next_at, d.next_attempt_at),
                delivered_at = CASE WHEN a.state = 'delivered' THEN a.at ELSE d.delivered_at END,
                finished_at = CASE WHEN a.state IN ('delivered', 'dead') THEN a.at ELSE d.finished_at END,
                held_until = NULL
            FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::int[], $5::text[], $6::timestamptz[])
                 AS a(id, state, at, status, error, next_at)
            WHERE d.delivery_id = a.id AND d.state = 'pending'
            """,
            [a.delivery_id for a in rows],
            [a.state for a in rows],
            [a.attempted_at for a in rows],
            [a.status for a in rows],
            [a.error[:500] for a in rows],
            [a.next_attempt_at for a in rows],
        )

    async def listed(self, webhook_id: str, state: str, after: int, limit: int) -> list[DeliveryRecord]:
        """The webhook's deliveries after `after` (0: from the first), in `state` ('' any), in order."""
        rows = await self.pool.fetch(
            f"SELECT delivery_id, webhook_id, event_id, event_type, space_id, state, attempts, last_status, "
            "last_error, occurred_at, last_attempt_at, "
            "CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, delivered_at "
            f"FROM {self.s}.deliveries WHERE webhook_id = $1 AND delivery_id > $2 "
            "AND ($3 = '' OR state = $3) ORDER BY delivery_id LIMIT $4",
            webhook_id,
            after,
            state,
            limit,
        )
        return [DeliveryRecord(**dict(r)) for r in rows]

    async def retry(self, conn: asyncpg.Connection, webhook_id: str, delivery_ids: Sequence[int]) -> int:
        """Puts the webhook's dead-lettered deliveries (these, or all when none are named) back in
        its queues with a fresh set of attempts, due now; returns how many."""
        status = await conn.execute(
            f"UPDATE {self.s}.deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(), "
            "held_until = NULL, finished_at = NULL "
            "WHERE webhook_id = $1 AND state = 'dead' "
            "AND (cardinality($2::bigint[]) = 0 OR delivery_id = ANY($2::bigint[]))",
            webhook_id,
            list(delivery_ids),
        )
        count = int(status.split()[-1])
        if count:
            await conn.execute("SELECT pg_notify($1, '')", self.channel)
        return count

    async def purge(self, before: datetime, limit: int) -> int:
        """Deletes up to `limit` deliveries that were delivered or dead-lettered before `before`."""
        status = await self.pool.execute(
            f"DELETE FROM {self.s}.deliveries WHERE delivery_id IN (SELECT delivery_id FROM {self.s}.deliveries "
            "WHERE state <> 'pending' AND finished_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            before,
            limit,
        )
        return int(status.split()[-1])
