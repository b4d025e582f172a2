"""Alembic's environment for every history: online only, on the connection `tool.py` hands over.

The revisions of the history in `version_locations` run in one transaction
(PostgreSQL's DDL is transactional: a failed upgrade changes nothing), under a
per-schema advisory lock so two migration runs never interleave. The version
table is `<schema>.alembic_version`, and every revision's `upgrade(schema)` and
`downgrade(schema)` get the schema's name.
"""

from __future__ import annotations

from alembic import context

from libs.migrations.tool import lock_schema

config = context.config
schema = config.attributes["schema"]
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `podium migrate` (libs/migrations/tool.py), not bare alembic")

context.configure(connection=connection, version_table_schema=schema, transactional_ddl=True)
with context.begin_transaction():
    lock_schema(connection, schema)
    context.run_migrations(schema=schema)
