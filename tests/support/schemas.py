"""Schemas for tests below the service level, made as production makes them: by the migrations.

    schema = await migrated_schema(database_url, "room")      # the room's history, in a new schema
    await emptied(pool, "moderation", RoomRoles.tables)       # a view's tables, empty again

A test that folds many generated histories (hypothesis) empties the view's
tables of a migrated database of its own between examples, rather than
migrating a schema for each one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from libs.migrations.tool import upgrade_async


async def migrated_schema(database_url: str, history: str, prefix: str = "t") -> str:
    """A new schema named `<prefix>_<random>`, migrated to the head of `history`."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await upgrade_async(database_url, history, schema)
    return schema


async def emptied(pool: asyncpg.Pool, schema: str, tables: Iterable[str]) -> str:
    """Empties `tables` of `schema` (a view's, at the start of an example) and returns the schema."""
    await pool.execute(f"TRUNCATE {', '.join(f'{schema}.{table}' for table in tables)}")
    return schema
