"""What a service does instead of migrating: it checks its schema is at the head it expects.

    await require_at_head(pool, "room")   # at start, before anything reads or writes

A schema that is behind (the migration Job has not run), ahead (a later
release's migrations ran; roll back with `podium migrate downgrade` first), or
was never migrated stops the start with `SchemaNotMigrated`, logged with what
to do. It reads `<schema>.alembic_version` with the service's own pool: no
Alembic import, no DDL, one indexed read.
"""

from __future__ import annotations

import logging

import asyncpg

from libs.migrations.histories import HEADS

log = logging.getLogger(__name__)


class SchemaNotMigrated(RuntimeError):
    """The schema is not at the revision this code needs: run `podium migrate upgrade` first."""


async def revision_of(conn: asyncpg.Connection | asyncpg.Pool, schema: str) -> str | None:
    """The schema's Alembic revision; None when it was never migrated."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.alembic_version"):
        return None
    return await conn.fetchval(f"SELECT version_num FROM {schema}.alembic_version LIMIT 1")


async def require_at_head(pool: asyncpg.Pool, schema: str, history: str | None = None) -> str:
    """Returns the revision when it is `history`'s head (the history is named as the schema unless
    given); raises SchemaNotMigrated otherwise, after logging what to do."""
    history = history or schema
    head = HEADS[history]
    found = await revision_of(pool, schema)
    if found == head:
        return found
    state = "was never migrated" if found is None else f"is at revision {found}"
    message = (
        f"schema {schema!r} {state}, but this release needs {head}: run `podium migrate upgrade` "
        "(the migration Job, with the owner's credentials) before starting the service; "
        'services do not run DDL (docs/operations.md, "Schema migrations")'
    )
    log.critical(message)
    raise SchemaNotMigrated(message)


async def require_tables(pool: asyncpg.Pool, schema: str, tables: tuple[str, ...], owner: str) -> None:
    """What a durable view's runner checks at start: its tables are there (a new view version's are
    made by a revision of its service's history, before the release that reads them starts)."""
    missing = [
        table
        for table in tables
        if not await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.{table}")
    ]
    if missing:
        message = (
            f"{owner}: schema {schema!r} lacks {', '.join(missing)}: run `podium migrate upgrade` "
            "(a new view version's tables are made by a revision of its service's history)"
        )
        log.critical(message)
        raise SchemaNotMigrated(message)
