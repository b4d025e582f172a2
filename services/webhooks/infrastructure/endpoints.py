"""The registered webhooks in PostgreSQL: stored, listed per owner, deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.webhooks.domain.registration import Owner


@dataclass(frozen=True)
class StoredWebhook:
    webhook_id: str
    owner: Owner
    url: str
    event_types: tuple[str, ...]  # the names bodies carry
    space_ids: tuple[str, ...]
    description: str
    created_at: datetime
    deleted_at: datetime | None


_COLUMNS = (
    "webhook_id, owner_id, owner_is_gateway, url, event_types, space_ids, description, created_at, deleted_at"
)


def _webhook(row) -> StoredWebhook:
    return StoredWebhook(
        webhook_id=row["webhook_id"],
        owner=Owner(row["owner_id"], row["owner_is_gateway"]),
        url=row["url"],
        event_types=tuple(row["event_types"]),
        space_ids=tuple(row["space_ids"]),
        description=row["description"],
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
    )


class Endpoints:
    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.s = schema

    async def insert(
        self,
        conn: asyncpg.Connection,
        webhook_id: str,
        owner: Owner,
        url: str,
        event_types: tuple[str, ...],
        space_ids: tuple[str, ...],
        description: str,
        secret: str,
    ) -> StoredWebhook:
        row = await conn.fetchrow(
            f"INSERT INTO {self.s}.webhooks (webhook_id, owner_id, owner_is_gateway, url, event_types, "
            f"space_ids, description, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}",
            webhook_id,
            owner.id,
            owner.is_gateway,
            url,
            list(event_types),
            list(space_ids),
            description,
            secret,
        )
        return _webhook(row)

    async def lock_owner(self, conn: asyncpg.Connection, owner: Owner) -> None:
        """Serialises one owner's registrations (inside a transaction), so the limit holds."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"podium-webhooks-owner:{owner.key}")

    async def count(self, conn: asyncpg.Connection, owner: Owner) -> int:
        return await conn.fetchval(
            f"SELECT count(*) FROM {self.s}.webhooks "
            "WHERE owner_id = $1 AND owner_is_gateway = $2 AND deleted_at IS NULL",
            owner.id,
            owner.is_gateway,
        )

    async def get(self, webhook_id: str) -> StoredWebhook | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM {self.s}.webhooks WHERE webhook_id = $1", webhook_id
        )
        return _webhook(row) if row else None

    async def owned(self, owner: Owner, after: str, limit: int) -> list[StoredWebhook]:
        """The owner's webhooks after id `after` ('' from the first), oldest first (ids sort by time)."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self.s}.webhooks "
            "WHERE owner_id = $1 AND owner_is_gateway = $2 AND deleted_at IS NULL AND webhook_id > $3 "
            "ORDER BY webhook_id LIMIT $4",
            owner.id,
            owner.is_gateway,
            after,
            limit,
        )
        return [_webhook(r) for r in rows]

    async def delete(self, conn: asyncpg.Connection, webhook_id: str) -> None:
        """Marks it deleted, which stops enqueueing for it, and drops its deliveries not yet made
        (inside the caller's transaction)."""
        await conn.execute(
            f"UPDATE {self.s}.webhooks SET deleted_at = now() WHERE webhook_id = $1 AND deleted_at IS NULL",
            webhook_id,
        )
        await conn.execute(
            f"DELETE FROM {self.s}.deliveries WHERE webhook_id = $1 AND state = 'pending'", webhook_id
        )

    async def purge_deleted(self, before: datetime) -> int:
        """Forgets webhooks deleted before `before`, and what deliveries they had left."""
        status = await self.pool.execute(f"DELETE FROM {self.s}.webhooks WHERE deleted_at < $1", before)
        return int(status.split()[-1])
