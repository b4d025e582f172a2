"""Tables of one service's event store, in that service's own schema.

- `events`: append-only; `(stream_id, version)` is unique, which is the
  optimistic-concurrency check. `global_position` orders the whole store.
- `outbox`: what the relay still has to publish, written in the same
  transaction as `events`.
- `idempotency`: the first response to each `request_id`, written in the same
  transaction as the events it produced. A client's record `expires` after the
  retention (`created_at`, purged by IdempotencyPurge); the record of a reaction
  to another service's event does not, because that event is read again on
  every start.

A statement trigger on `outbox` wakes the relay (NOTIFY `<schema>_outbox`),
so every writer of the outbox wakes it without having to remember to.

The tables are made by each service's migration history (`libs/migrations`,
`podium migrate`), never by the service: a change to them is a new revision in
the history of every service that keeps an event store.
"""

from __future__ import annotations

import re

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quoted(schema: str) -> str:
    if not _IDENT.match(schema):
        raise ValueError(f"schema name {schema!r} must be a lower-case SQL identifier")
    return schema


def notify_channel(schema: str) -> str:
    return f"{quoted(schema)}_outbox"
