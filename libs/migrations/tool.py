"""Running the histories with Alembic's public API: upgrade, downgrade, where each schema stands.

    upgrade_all(url)                              # every history to its head
    upgrade(url, "room")                          # one; `schema=` migrates another schema with it
    downgrade(url, "room")                        # one step back ("-1"), or `revision=`
    status(url)                                   # [Standing(history, schema, current, head)]

Alembic runs synchronously on psycopg; `tool.py` hands it one connection per
history, in one transaction (`env.py`), so a run is all or nothing per schema.
Async callers (`podium up`, the tests) use the `*_async` forms, which run it in
a thread. The URL is the owner's (PODIUM_MIGRATE_DATABASE_URL): the runtime
role has no right to make or change tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from libs.eventstore.schema import quoted
from libs.migrations.histories import HERE, HISTORIES, versions_dir

log = logging.getLogger(__name__)

# Alembic's command API keeps the running migration in module globals (`alembic.op`,
# `alembic.context`), so one process runs one at a time; other processes wait on the
# database's lock instead (`lock_schema`).
_one_run_per_process = threading.Lock()


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (postgresql://...) for SQLAlchemy's psycopg (3) dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")


def config(history: str, schema: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions_dir(history)))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["schema"] = quoted(schema or history)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head(history: str) -> str:
    heads = ScriptDirectory.from_config(config(history)).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"history {history} has {len(heads)} heads ({heads}): merge them")
    return heads[0]


def lock_schema(conn: Connection, schema: str) -> None:
    """Waits for, then holds until the transaction ends, the one lock every migration run of `schema` takes."""
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"podium-migrate-{schema}",))


@contextlib.contextmanager
def _connection(url: str) -> Iterator[Connection]:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def new_revision(history: str, message: str) -> Path:
    """Writes the next revision of `history` (after its head, from script.py.mako) and makes it the head
    the services expect (histories.HEADS). Returns the new file."""
    current = head(history)
    number = int(current.rsplit("_", 1)[1]) + 1
    rev_id = f"{history}_{number:04d}"
    script = command.revision(config(history), message=message, rev_id=rev_id, head=current)
    heads_file = HERE / "histories.py"
    text = heads_file.read_text()
    old = f'"{history}": "{current}"'
    if old not in text:
        raise RuntimeError(
            f"{heads_file}: HEADS[{history!r}] is not {current!r}: set it to {rev_id!r} by hand"
        )
    heads_file.write_text(text.replace(old, f'"{history}": "{rev_id}"'))
    return Path(script.path)


def upgrade(url: str, history: str, schema: str | None = None, revision: str = "head") -> None:
    schema = quoted(schema or history)
    with _one_run_per_process, _connection(url) as conn:
        # The lock env.py takes, taken before the schema is made: CREATE SCHEMA IF NOT EXISTS is
        # not safe against a concurrent one (two Job pods, or podium up beside a test's stack).
        lock_schema(conn, schema)
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        command.upgrade(config(history, schema, conn), revision)


def downgrade(url: str, history: str, schema: str | None = None, revision: str = "-1") -> None:
    with _one_run_per_process, _connection(url) as conn:
        command.downgrade(config(history, schema, conn), revision)


def execute(url: str, sql: str) -> None:
    """Runs `sql` (several statements, no parameters) in one transaction, as the migrating role."""
    with _connection(url) as conn:
        conn.execution_options(no_parameters=True).exec_driver_sql(sql)


def upgrade_all(url: str, histories: Iterable[str] = HISTORIES) -> None:
    for history in histories:
        upgrade(url, history)


@dataclass(frozen=True)
class Standing:
    history: str
    schema: str
    current: str | None  # None: never migrated
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def current(url: str, history: str, schema: str | None = None) -> str | None:
    schema = quoted(schema or history)
    with _connection(url) as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return context.get_current_revision()


def status(url: str, histories: Iterable[str] = HISTORIES) -> list[Standing]:
    return [Standing(h, h, current(url, h), head(h)) for h in histories]


async def upgrade_all_async(url: str, histories: Iterable[str] = HISTORIES) -> None:
    await asyncio.to_thread(upgrade_all, url, tuple(histories))


async def upgrade_async(url: str, history: str, schema: str | None = None, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, history, schema, revision)


async def downgrade_async(url: str, history: str, schema: str | None = None, revision: str = "-1") -> None:
    await asyncio.to_thread(downgrade, url, history, schema, revision)
