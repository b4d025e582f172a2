"""Versioned schema migrations: each step runs once per schema, in order, and is recorded.

    await apply_migrations(pool, "room", "eventstore", EVENTSTORE_STEPS)

A component (the event store, a view) owns a numbered list of SQL steps. The
applied step numbers are kept in `<schema>.schema_migrations`, so a start with
nothing new to apply costs one indexed read and never scans a table; a new
step is a new number, appended, never an edit of an old one. Replicas that
start together take a per-schema advisory lock and apply each step once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

log = logging.getLogger(__name__)

LEDGER = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    component text NOT NULL,
    step int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, step)
);
"""


async def apply_migrations(pool: asyncpg.Pool, schema: str, component: str, steps: Sequence[str]) -> int:
    """Applies `component`'s steps not yet applied in `schema` (step n is `steps[n - 1]`, formatted
    with `s` = the schema). Returns how many it applied."""
    async with pool.acquire() as conn:
        done = await _applied(conn, schema, component)
        if len(done) >= len(steps) and done >= set(range(1, len(steps) + 1)):
            return 0  # the common start: one read, no lock, no DDL
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"podium-migrate-{schema}")
            await conn.execute(LEDGER.format(s=schema))
            done = await _applied(conn, schema, component)
            applied = 0
            for number, sql in enumerate(steps, start=1):
                if number in done:
                    continue
                await conn.execute(sql.format(s=schema))
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (component, step) VALUES ($1, $2)",
                    component,
                    number,
                )
                log.info("migrated %s: %s step %d", schema, component, number)
                applied += 1
            return applied


async def _applied(conn: asyncpg.Connection, schema: str, component: str) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations")
    if not exists:
        return set()
    rows = await conn.fetch(f"SELECT step FROM {schema}.schema_migrations WHERE component = $1", component)
    return {r["step"] for r in rows}
