"""room: Alembic's version table is the record from now on; the home-grown ledger goes.

Revision ID: room_0002
Revises: room_0001
"""

from __future__ import annotations

from alembic import op

from libs.migrations import baseline

revision = "room_0002"
down_revision = "room_0001"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    baseline.drop_ledger(op.get_bind(), schema)


def downgrade(schema: str) -> None:
    # The previous release reads the ledger at start: full, it runs nothing.
    baseline.restore_ledger(op.get_bind(), "room", schema)
