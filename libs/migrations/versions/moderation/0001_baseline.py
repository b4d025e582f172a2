"""moderation: the schema as the release before versioned migrations made it (adopts one it made).

Revision ID: moderation_0001
Revises:
"""

from __future__ import annotations

from alembic import op

from libs.migrations import baseline

revision = "moderation_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    baseline.upgrade(op.get_bind(), "moderation", schema)


def downgrade(schema: str) -> None:
    raise RuntimeError(
        f"the baseline of {schema} is not undone by a migration: drop the schema if you mean it"
    )
