"""presence: the board's row of a Space says how many parts its presence is split into (ADR 0015).

Revision ID: presence_0003
Revises: presence_0002

Every Space already on the board is whole (no split was ever recorded before this release), so the
column's default is each row's true value: no row is rewritten by hand, and no view is rebuilt.
"""

from __future__ import annotations

from libs.migrations.sql import run

revision = "presence_0003"
down_revision = "presence_0002"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    run(schema, "ALTER TABLE {s}.space_boards_v2 ADD COLUMN presence_parts int NOT NULL DEFAULT 1")


def downgrade(schema: str) -> None:
    # The previous release's presence does not split Spaces: its parts' values wait out the timeout.
    run(schema, "ALTER TABLE {s}.space_boards_v2 DROP COLUMN presence_parts")
