"""`podium migrate`: status, upgrade, downgrade one step or to a revision, grants, on the owner's URL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from libs.migrations.histories import HEADS, HISTORIES
from tests.support.infrastructure import fresh_database

pytestmark = pytest.mark.integration


def _env(url: str) -> dict[str, str]:
    # The owner's URL; DATABASE_URL (the services') points nowhere, to show it is not used.
    return {"PODIUM_MIGRATE_DATABASE_URL": url, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}


async def _podium(*args: str, url: str) -> Result:
    """`podium migrate ARGS`, in this process (a new interpreter per call costs seconds here)."""
    return await asyncio.to_thread(
        CliRunner().invoke, app, ["migrate", *args], env=_env(url), terminal_width=200
    )


def _standing(result) -> dict[str, str | None]:
    return {row["history"]: row["current"] for row in map(json.loads, result.stdout.splitlines())}


async def test_the_podium_command_runs_migrate_as_a_process_of_its_own(database_server):
    async with fresh_database(database_server.url) as url:
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "cli", "migrate", "status", "--json"],
            capture_output=True, text=True, env={**os.environ, **_env(url)}, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert _standing(result) == HEADS


async def test_podium_migrate_upgrades_reports_and_downgrades_one_step_or_to_a_revision(database_server):
    async with fresh_database(database_server.url, migrated=False) as url:
        before = await _podium("status", "--json", url=url)
        assert before.exit_code == 1  # not at head: a script (or a readiness gate) can tell
        assert _standing(before) == dict.fromkeys(HISTORIES)

        upgraded = await _podium("upgrade", url=url)
        assert upgraded.exit_code == 0, upgraded.output
        assert "room: never migrated -> room_0002" in upgraded.stdout
        after = await _podium("status", "--json", url=url)
        assert after.exit_code == 0 and _standing(after) == HEADS

        down = await _podium("downgrade", "--history", "room", url=url)
        assert down.exit_code == 0, down.output
        assert "room: room_0002 -> room_0001" in down.stdout
        assert _standing(await _podium("status", "--json", url=url))["room"] == "room_0001"

        up = await _podium("upgrade", "--history", "room", "--to", "room_0002", url=url)
        assert up.exit_code == 0 and "room: room_0001 -> room_0002" in up.stdout

        again = await _podium("upgrade", url=url)
        assert again.exit_code == 0 and "room: at room_0002" in again.stdout

        everyone = await _podium("downgrade", url=url)  # every history one step: before a rollback
        assert everyone.exit_code == 0, everyone.output
        assert _standing(await _podium("status", "--json", url=url)) == {
            h: _one_before(head) for h, head in HEADS.items()
        }


async def test_podium_migrate_grant_prints_rows_but_no_ddl_for_the_role():
    result = await _podium("grant", "podium_runtime", "--print", url="postgresql://unused@127.0.0.1:1/x")
    assert result.exit_code == 0, result.output
    for schema in HISTORIES:
        assert (
            f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {schema} TO podium_runtime;"
            in result.stdout
        )
    assert "GRANT CREATE" not in result.stdout and "ALL PRIVILEGES" not in result.stdout


def _one_before(revision: str) -> str:
    """`presence_0003` -> `presence_0002`: each history's revisions are numbered in order."""
    history, _, number = revision.rpartition("_")
    return f"{history}_{int(number) - 1:04d}"
