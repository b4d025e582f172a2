"""What an operator asks of durable views: where each stands, and rebuilding one on purpose.

Both read and write only the tracking tables (`tracking.py`) of the services'
schemas, so they work against a running deployment. A rebuild is a request:
the view's writer carries it out when it next starts (it empties the view's
tables and reads the log from the beginning), and the service reports
NOT_SERVING until the view has caught up again.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import TopicPartition

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_reader


@dataclass(frozen=True)
class ViewStatus:
    schema: str
    view: str
    version: int
    applied: int  # records read, over all its partitions
    lag: int  # records in the log it has not read yet
    partitions: int
    rebuild_requested: bool


async def schemas_with_views(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'view_registry' "
        "AND table_schema IN (SELECT table_schema FROM information_schema.tables WHERE table_name = 'view_positions') "
        "ORDER BY 1"
    )
    return [r["table_schema"] for r in rows]


async def status(pool: asyncpg.Pool, settings: PodiumSettings) -> list[ViewStatus]:
    async with pool.acquire() as conn:
        positions: dict[tuple[str, str, int], dict[TopicPartition, int]] = {}
        requested: set[tuple[str, str, int]] = set()
        for schema in await schemas_with_views(conn):
            for r in await conn.fetch(f"SELECT view, version FROM {schema}.view_registry"):
                positions.setdefault((schema, r["view"], r["version"]), {})  # even before it applied anything
            for r in await conn.fetch(
                f"SELECT view, version, topic, partition, next_offset FROM {schema}.view_positions"
            ):
                key = (schema, r["view"], r["version"])
                positions.setdefault(key, {})[TopicPartition(r["topic"], r["partition"])] = r["next_offset"]
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.view_rebuilds"):
                for r in await conn.fetch(f"SELECT view, version FROM {schema}.view_rebuilds"):
                    requested.add((schema, r["view"], r["version"]))
    ends = await _log_ends(settings, {tp for reached in positions.values() for tp in reached})
    return [
        ViewStatus(
            schema,
            view,
            version,
            applied=sum(reached.values()),
            lag=sum(max(0, ends.get(tp, 0) - offset) for tp, offset in reached.items()),
            partitions=len(reached),
            rebuild_requested=(schema, view, version) in requested,
        )
        for (schema, view, version), reached in sorted(positions.items())
    ]


async def request_rebuild(pool: asyncpg.Pool, schema: str, view: str | None = None) -> list[tuple[str, int]]:
    """Asks for a rebuild of `view` (every view of the schema when None), in its newest version."""
    async with pool.acquire() as conn:
        if schema not in await schemas_with_views(conn):
            return []
        rows = await conn.fetch(
            f"SELECT view, max(version) AS version FROM {schema}.view_registry "
            "WHERE $1::text IS NULL OR view = $1 GROUP BY view ORDER BY view",
            view,
        )
        await conn.executemany(
            f"INSERT INTO {schema}.view_rebuilds (view, version) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(r["view"], r["version"]) for r in rows],
        )
        return [(r["view"], r["version"]) for r in rows]


async def _log_ends(settings: PodiumSettings, parts: set[TopicPartition]) -> dict[TopicPartition, int]:
    if not parts:
        return {}
    reader = make_reader(settings, "podium-views-status")
    await reader.start()
    try:
        return await reader.end_offsets(list(parts))
    finally:
        await reader.stop()
