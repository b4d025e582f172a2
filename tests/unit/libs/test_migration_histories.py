"""The migration histories: one per service schema, linear, and the heads the services check."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from libs.migrations import baseline, tool
from libs.migrations.histories import HEADS, HISTORIES, versions_dir

SERVICES = Path(__file__).parents[3] / "services"


@pytest.mark.parametrize("history", HISTORIES)
def test_each_history_is_one_line_ending_at_the_head_the_services_check(history):
    script = ScriptDirectory.from_config(tool.config(history))
    assert tool.head(history) == HEADS[history], (
        f"libs/migrations/histories.py: HEADS[{history!r}] must be {tool.head(history)!r}"
    )
    revisions = list(script.walk_revisions())
    assert all(r.revision.startswith(f"{history}_") for r in revisions)  # never another history's
    assert len(script.get_bases()) == 1


def test_every_service_with_a_schema_has_a_history_and_a_baseline():
    schemas = set()
    for main in SERVICES.glob("*/main.py"):
        text = main.read_text()
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "schema"
                and isinstance(node.value, ast.Constant)
            ):
                schemas.add(node.value.value)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "require_at_head":
                schemas.add(node.args[1].value)
            if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["SCHEMA"]:
                schemas.add(node.value.value)  # schema=SCHEMA
    assert schemas == set(HISTORIES) == set(baseline.COMPONENTS)
    assert all(versions_dir(h).is_dir() for h in HISTORIES)


def test_no_shipped_code_outside_the_migrations_runs_ddl():
    root = SERVICES.parent
    offenders = []
    for path in [*root.glob("libs/**/*.py"), *root.glob("services/**/*.py"), *root.glob("cli/**/*.py")]:
        if "migrations" in path.parts:
            continue
        text = path.read_text().upper()
        for ddl in ("CREATE TABLE", "ALTER TABLE", "CREATE INDEX", "DROP TABLE", "CREATE SCHEMA"):
            if ddl in text:
                offenders.append(f"{path.relative_to(root)}: {ddl}")
    assert offenders == []
