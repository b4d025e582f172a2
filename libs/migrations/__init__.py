"""Versioned schema migrations (Alembic): one history per service schema, run before services start.

    podium migrate upgrade              # every history to its head (the migration Job, `podium up`)
    podium migrate status

Services never run DDL. Each checks at start that its schema is at the head its
code expects (`check.require_at_head`) and refuses to start otherwise. The
histories are in `versions/<history>/`; the Alembic machinery (env.py, the
revision template) beside this file; `tool.py` runs them; `baseline.py` is the
schema as the release before Alembic made it (docs/decisions/0009).
"""
