"""Upgrading a database the previous release made, and downgrading one step.

`previous_release_schema.sql` is every schema as the release before versioned
migrations made it at start-up (built by `build_previous_release.py` with that
release's code, dumped with pg_dump), its ledger's rows included. Loaded, given
rows, and migrated, it must keep every row and end up with the schema a fresh
install has; one step down gives back the previous release's schema exactly
(its ledger, full, included), and up again the fresh install's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from libs.migrations import tool
from libs.migrations.histories import HEADS, HISTORIES
from libs.migrations.tool import downgrade_async, upgrade_all_async
from tests.support.infrastructure import fresh_database

pytestmark = pytest.mark.integration

PREVIOUS_RELEASE = (Path(__file__).parent / "previous_release_schema.sql").read_text()

SHAPE = {
    # A column's place among the table's columns: PostgreSQL's own number keeps the gap a dropped
    # column leaves, so a column dropped by a downgrade and added again would differ by it alone.
    "columns": """
        SELECT table_schema, table_name, column_name,
               rank() OVER (PARTITION BY table_schema, table_name ORDER BY ordinal_position),
               data_type, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = ANY($1) ORDER BY 1, 2, 4""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef
        FROM pg_indexes WHERE schemaname = ANY($1) ORDER BY 1, 2, 3""",
    "constraints": """
        SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = ANY($1) ORDER BY 1, 2, 3""",
    "triggers": """
        SELECT event_object_schema, event_object_table, trigger_name, action_timing, event_manipulation,
               action_statement
        FROM information_schema.triggers WHERE trigger_schema = ANY($1) ORDER BY 1, 2, 3, 5""",
    "functions": """
        SELECT n.nspname, p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY($1) ORDER BY 1, 2""",
    "sequences": """
        SELECT sequence_schema, sequence_name, data_type FROM information_schema.sequences
        WHERE sequence_schema = ANY($1) ORDER BY 1, 2""",
}

EVENT_ID = uuid.uuid4()

ROWS = f"""
INSERT INTO room.events (event_id, stream_id, version, space_id, event_type, occurred_at, topic,
                         record_key, envelope)
VALUES ('{EVENT_ID}', 'space-s1', 1, 's1', 'podium.room.v1.SpaceCreated', now(),
        'podium.room.events.v1', 's1', '\\x0a01');
INSERT INTO room.outbox (global_position, topic, key, envelope)
SELECT global_position, topic, record_key, envelope FROM room.events;
INSERT INTO room.idempotency (key, fingerprint, response) VALUES ('alice:CreateSpace:r1', 'f', '\\x00');
INSERT INTO room.view_positions (view, version, topic, partition, next_offset)
VALUES ('room-space-directory', 2, 'podium.room.events.v1', 0, 1);
INSERT INTO presence.view_streams (view, version, producer, stream_id, applied_version)
VALUES ('presence-space-board', 2, 'room', 'space-s1', 1);
INSERT INTO replay.finalize_jobs (space_id, ended_at, ready_at) VALUES ('s1', now(), now());
INSERT INTO webhooks.webhooks (webhook_id, owner_id, owner_is_gateway, url, event_types, space_ids,
                               description, secret)
VALUES ('w1', 'alice', false, 'https://example.test/hook', '{{}}', '{{}}', 'mine', 'secret');
"""

SURVIVORS = {
    "SELECT event_id FROM room.events": [EVENT_ID],
    "SELECT key FROM room.outbox": ["s1"],
    "SELECT key FROM room.idempotency": ["alice:CreateSpace:r1"],
    "SELECT next_offset FROM room.view_positions": [1],
    "SELECT stream_id FROM presence.view_streams": ["space-s1"],
    "SELECT space_id FROM replay.finalize_jobs": ["s1"],
    "SELECT url FROM webhooks.webhooks": ["https://example.test/hook"],
}


async def _shape(url: str, *, without: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(url)
    try:
        shape = {
            name: [tuple(r) for r in await conn.fetch(sql, list(HISTORIES))] for name, sql in SHAPE.items()
        }
    finally:
        await conn.close()
    # A table's name (schema-qualified in constraints) is the second field of every row above.
    return {name: [r for r in rows if r[1].split(".")[-1] not in without] for name, rows in shape.items()}


async def _fetch(url: str, sql: str) -> list:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _ledgers(url: str) -> set[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return {
            (schema, r["component"], r["step"])
            for schema in HISTORIES
            for r in await conn.fetch(f"SELECT component, step FROM {schema}.schema_migrations")
        }
    finally:
        await conn.close()


async def _load_previous_release(url: str, rows: str = "") -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PREVIOUS_RELEASE)
        await conn.execute(f"SET search_path TO public; {rows}")
    finally:
        await conn.close()


async def test_a_database_the_previous_release_made_is_upgraded_keeping_every_row_and_downgraded_one_step(
    database_server,
):
    async with (
        fresh_database(database_server.url, "podium_old", migrated=False) as old,
        fresh_database(database_server.url, "podium_new", migrated=False) as new,
        fresh_database(database_server.url, "podium_prev", migrated=False) as previous,
    ):
        await _load_previous_release(old, ROWS)
        await _load_previous_release(previous)
        previous_shape, previous_ledgers = await _shape(previous), await _ledgers(previous)

        await upgrade_all_async(old)
        await upgrade_all_async(new)

        for sql, expected in SURVIVORS.items():
            assert await _fetch(old, sql) == expected, sql
        assert await _shape(old) == await _shape(new)  # as if installed fresh
        assert {h: tool.current(old, h) for h in HISTORIES} == HEADS
        ledgers = [await _fetch(old, f"SELECT to_regclass('{h}.schema_migrations')::text") for h in HISTORIES]
        assert ledgers == [[None]] * len(HISTORIES)  # the home-grown ledger is gone

        for history in HISTORIES:  # down to the previous release's schema and ledger
            await downgrade_async(old, history, revision=f"{history}_0001")
        assert await _shape(old, without=("alembic_version",)) == previous_shape
        assert await _ledgers(old) == previous_ledgers

        await upgrade_all_async(old)  # and up again
        assert await _shape(old) == await _shape(new)
        for sql, expected in SURVIVORS.items():
            assert await _fetch(old, sql) == expected, sql


async def test_a_fresh_install_is_the_previous_release_schema_one_step_below_the_head(database_server):
    """The baseline made on an empty database is what the previous release's start-up made."""
    async with (
        fresh_database(database_server.url, "podium_base", migrated=False) as base,
        fresh_database(database_server.url, "podium_prev", migrated=False) as previous,
    ):
        await _load_previous_release(previous)
        for history in HISTORIES:
            await tool.upgrade_async(base, history, revision=f"{history}_0001")
        assert await _shape(base, without=("alembic_version",)) == await _shape(previous)
        assert await _ledgers(base) == await _ledgers(previous)


async def test_an_upgrade_at_the_head_changes_nothing_and_the_baseline_is_never_undone(database_server):
    async with fresh_database(database_server.url) as url:  # a copy of the migrated template
        before = await _shape(url)
        await upgrade_all_async(url)
        assert await _shape(url) == before
        await downgrade_async(url, "room")
        with pytest.raises(RuntimeError, match="not undone by a migration"):
            await downgrade_async(url, "room")
        assert tool.current(url, "room") == "room_0001"


async def test_migration_runs_started_together_on_an_empty_database_wait_for_each_other(database_server):
    """Two Job pods, or `podium up` beside a test's stack: each run waits for the schema's lock,
    including before it makes the schema (CREATE SCHEMA IF NOT EXISTS is not safe against another).
    Three processes of their own, and two runs in this one (Alembic's globals allow one at a time)."""
    async with (
        fresh_database(database_server.url, "podium_together", migrated=False) as url,
        fresh_database(database_server.url, "podium_alone") as alone,
    ):
        env = {**os.environ, "PODIUM_MIGRATE_DATABASE_URL": url}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cli.main",
                "migrate",
                "upgrade",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        in_process = [upgrade_all_async(url) for _ in range(2)]
        outputs, _ = await asyncio.gather(
            asyncio.gather(*(p.communicate() for p in processes)), asyncio.gather(*in_process)
        )
        for process, (output, _) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, output.decode()[-2000:]
        assert {h: tool.current(url, h) for h in HISTORIES} == HEADS
        assert await _shape(url) == await _shape(alone)
