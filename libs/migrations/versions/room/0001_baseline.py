"""room: the schema as the release before versioned migrations made it (adopts one it made).

Revision ID: room_0001
Revises:
"""

from __future__ import annotations

from alembic import op

from libs.migrations import baseline

revision = "room_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    baseline.upgrade(op.get_bind(), "room", schema)


def downgrade(schema: str) -> None:
    raise RuntimeError(
        f"the baseline of {schema} is not undone by a migration: drop the schema if you mean it"
    )
