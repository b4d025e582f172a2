"""Finalizing jobs in PostgreSQL (the replay service's own schema), so a restart resumes them.

One row per recorded Space that ended: `pending` until a worker takes it,
`running` with its progress while one works on it, then `done` (the
ReplayFinalized event is in the store) or `failed` (with the reason, e.g. no
audio was recorded). The catalog queues a job in the transaction in which it
applies the Space's end, so it does so once; enqueueing is idempotent anyway
(a rebuilt catalog queues every ended Space again, and that changes nothing).

A worker owns a job while it holds a session advisory lock on it, on a
connection of its own. If the process dies, PostgreSQL drops the connection
and the lock with it, and the next worker (or the restarted process) takes the
job over at once: a `running` row without a lock is a job to resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from libs.eventstore.schema import quoted

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True)
class Job:
    space_id: str
    state: str
    progress: float
    attempts: int
    error: str
    ended_at: datetime


class JobStore:
    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.s = quoted(schema)

    async def enqueue(
        self, space_id: str, ended_at: datetime, ready_at: datetime, conn: asyncpg.Connection | None = None
    ) -> None:
        """Queues the Space's job, once (on `conn`, inside its transaction, when given)."""
        await (conn or self.pool).execute(
            f"INSERT INTO {self.s}.finalize_jobs (space_id, ended_at, ready_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (space_id) DO NOTHING",
            space_id,
            ended_at,
            ready_at,
        )

    async def get(self, space_id: str) -> Job | None:
        row = await self.pool.fetchrow(
            f"SELECT space_id, state, progress, attempts, error, ended_at FROM {self.s}.finalize_jobs "
            "WHERE space_id = $1",
            space_id,
        )
        return Job(**dict(row)) if row else None

    async def failed(self, space_ids: list[str]) -> set[str]:
        """Those of `space_ids` whose job ended as failed (nothing to finalize)."""
        if not space_ids:
            return set()
        rows = await self.pool.fetch(
            f"SELECT space_id FROM {self.s}.finalize_jobs WHERE state = 'failed' AND space_id = ANY($1::text[])",
            space_ids,
        )
        return {r["space_id"] for r in rows}

    async def runnable(self, now: datetime, limit: int = 20) -> list[str]:
        rows = await self.pool.fetch(
            f"SELECT space_id FROM {self.s}.finalize_jobs WHERE state IN ('pending', 'running') "
            "AND ready_at <= $1 ORDER BY ready_at LIMIT $2",
            now,
            limit,
        )
        return [r["space_id"] for r in rows]

    async def progress(self, space_id: str, fraction: float) -> None:
        await self.pool.execute(
            f"UPDATE {self.s}.finalize_jobs SET progress = $2, updated_at = now() "
            "WHERE space_id = $1 AND state = 'running'",
            space_id,
            fraction,
        )

    async def retry_later(self, space_id: str, ready_at: datetime, error: str) -> None:
        """Puts a job that failed back in the queue, to run again at `ready_at`."""
        await self.pool.execute(
            f"UPDATE {self.s}.finalize_jobs SET state = 'pending', error = $2, ready_at = $3, "
            "updated_at = now() WHERE space_id = $1",
            space_id,
            error,
            ready_at,
        )

    async def finish(self, space_id: str, state: str, error: str = "") -> None:
        await self.pool.execute(
            f"UPDATE {self.s}.finalize_jobs SET state = $2, error = $3, "
            "progress = CASE WHEN $2 = 'done' THEN 1 ELSE progress END, updated_at = now() "
            "WHERE space_id = $1",
            space_id,
            state,
            error,
        )

    @contextlib.asynccontextmanager
    async def claim(self, conn: asyncpg.Connection, space_id: str) -> AsyncIterator[Job | None]:
        """The job, locked for this worker (None if another holds it or it is finished)."""
        key = f"podium-replay-finalize-{space_id}"
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
            yield None
            return
        try:
            row = await conn.fetchrow(
                f"UPDATE {self.s}.finalize_jobs SET state = 'running', attempts = attempts + 1, "
                "progress = 0, updated_at = now() WHERE space_id = $1 AND state IN ('pending', 'running') "
                "RETURNING space_id, state, progress, attempts, error, ended_at",
                space_id,
            )
            yield Job(**dict(row)) if row else None
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
