"""presence: Alembic's version table is the record from now on; the home-grown ledger goes.

Revision ID: presence_0002
Revises: presence_0001
"""

from __future__ import annotations

from alembic import op

from libs.migrations import baseline

revision = "presence_0002"
down_revision = "presence_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    baseline.drop_ledger(op.get_bind(), schema)


def downgrade(schema: str) -> None:
    # The previous release reads the ledger at start: full, it runs nothing.
    baseline.restore_ledger(op.get_bind(), "presence", schema)
