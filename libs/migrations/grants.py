"""What the services' runtime role may do in each schema: read and write rows, never change tables.

    podium migrate grant podium_runtime      # as the owner, once per role (and again is harmless)

DML on every table (TRUNCATE too: `podium views rebuild` empties a view's
tables with it), the sequences behind `bigserial` and identity columns, and
USAGE on the schema, without CREATE. The default privileges make the tables and
sequences a later revision creates (as the same owner) granted as well, so a
new view version needs no new grant. docs/operations.md prints the same SQL.
"""

from __future__ import annotations

import re

from libs.eventstore.schema import quoted
from libs.migrations.histories import HISTORIES

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

GRANTS = """
GRANT USAGE ON SCHEMA {s} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {role};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role};
"""


def runtime_grants(role: str, schemas: tuple[str, ...] = HISTORIES) -> str:
    """The SQL that lets `role` run the services on `schemas` (run it as the schemas' owner)."""
    if not _ROLE.match(role):
        raise ValueError(f"role name {role!r} must be a lower-case SQL identifier")
    return "".join(GRANTS.format(s=quoted(schema), role=role) for schema in schemas)
