"""The broker and the database the integration tests run against.

The test stack owns the topics, as `podium up` does in the dev stack: every
broker it starts (or is pointed at) gets every topic of `EVERY_TOPIC` before a
service starts, since services never create topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from libs.devstack.broker import EmbeddedBroker
from libs.devstack.database import create_database, drop_database, with_database
from libs.events.topics import EVERY_TOPIC, TopicSpec, create_topics
from libs.migrations.check import revision_of
from libs.migrations.histories import HEADS
from libs.migrations.tool import upgrade_all_async

#: Partitions of every topic in tests: the services' default (PODIUM_TOPIC_PARTITIONS).
TEST_PARTITIONS = 6


async def make_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = EVERY_TOPIC) -> list[str]:
    """What the test stack does for every broker: the missing topics of `specs`, made."""
    return await create_topics(bootstrap, specs, TEST_PARTITIONS, 1)


class ExternalBroker:
    """A broker we did not start (KAFKA_BOOTSTRAP_SERVERS); it cannot be restarted from here."""

    service_env: dict[str, str] = {}  # a real Kafka's own group settings stand

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    async def restart(self) -> None:
        pytest.skip("restarting the broker needs the embedded broker (unset KAFKA_BOOTSTRAP_SERVERS)")

    def stop(self) -> None:
        """Not ours to stop."""


@contextlib.asynccontextmanager
async def running_broker(
    log_dir: Path, *, external_ok: bool = True
) -> AsyncIterator[EmbeddedBroker | ExternalBroker]:
    """KAFKA_BOOTSTRAP_SERVERS if set (and `external_ok`), else an embedded broker on a free port;
    with every topic made. A broker's `restart()` leaves it empty, topics included: a lost log."""
    if external_ok and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        await make_topics(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        yield ExternalBroker(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        return
    embedded = EmbeddedBroker(log_path=log_dir / f"broker-{uuid.uuid4().hex[:6]}.log")
    await embedded.start()
    await make_topics(embedded.bootstrap)
    try:
        yield embedded
    finally:
        # SIGKILL: the log is in memory and thrown away. On SIGTERM the broker waits for its clients
        # to hang up, and a test's services are still connected here (they are killed after the
        # broker fixture ends), so a stop would sit out its whole 5 s before killing it anyway.
        embedded.kill()


@contextlib.asynccontextmanager
async def fresh_database(
    server_url: str, prefix: str = "podium_test", *, migrated: bool = True
) -> AsyncIterator[str]:
    """A new, uniquely named database on the server; dropped (even with open connections) afterwards.

    `migrated`: every schema at its head, as `podium migrate upgrade` leaves it (a copy of the
    session's migrated template, which costs what an empty database does); else empty."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if migrated:
        url = await _create_from(server_url, name, await MIGRATED_TEMPLATES.template(server_url))
    else:
        url = await create_database(server_url, name)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


async def _create_from(server_url: str, name: str, template: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


class MigratedTemplates:
    """One database per server per test session, migrated once to every history's head, that fresh
    databases are copied from: a test database costs no migration (the migrations of every schema
    take about a second on this machine; a copy, nothing more than an empty database)."""

    def __init__(self) -> None:
        self._templates: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def template(self, server_url: str) -> str:
        async with self._lock:
            if server_url not in self._templates:
                name = f"podium_template_{uuid.uuid4().hex[:10]}"
                await upgrade_all_async(await create_database(server_url, name))
                self._templates[server_url] = name
            return self._templates[server_url]

    async def drop(self) -> None:
        for server_url, name in self._templates.items():
            with contextlib.suppress(Exception):
                await drop_database(server_url, name)
        self._templates.clear()


MIGRATED_TEMPLATES = MigratedTemplates()


async def at_head(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return all([await revision_of(conn, history) == head for history, head in HEADS.items()])
    finally:
        await conn.close()


async def ensure_migrated(database_url: str) -> None:
    """What `podium migrate upgrade` does before services start, once per database: a database
    of `fresh_database` is at the heads already (a few reads say so, every time: a database may be
    dropped and made again under the same name); any other is migrated, once."""
    if not await at_head(database_url):
        await upgrade_all_async(database_url)
