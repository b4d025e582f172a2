"""What a revision uses to run its SQL: `{s}` in each statement is the schema being migrated.

    def upgrade(schema: str) -> None:
        run(schema, "ALTER TABLE {s}.events ADD COLUMN tenant text")

A revision is written once per history and may be run on any schema name (the
tests migrate schemas of their own), so it never names a schema itself.
"""

from __future__ import annotations

from alembic import op


def run(schema: str, *statements: str) -> None:
    """Runs each statement as the driver's own SQL: several at once, no parameters, no escaping."""
    conn = op.get_bind().execution_options(no_parameters=True)
    for sql in statements:
        conn.exec_driver_sql(sql.format(s=schema))
