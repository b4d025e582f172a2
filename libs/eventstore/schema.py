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

The tables are made by versioned steps (`libs/eventstore/migrations.py`): step
1 is everything up to the introduction of the ledger, written so that it also
brings a store made before the ledger existed up to date (once). A change to
these tables is a new step appended to `STEPS`.
"""

from __future__ import annotations

import re

import asyncpg

from libs.eventstore.migrations import apply_migrations

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

STEP_1 = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    global_position bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    stream_id text NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    space_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    topic text NOT NULL,
    record_key text NOT NULL,
    envelope bytea NOT NULL,
    UNIQUE (stream_id, version)
);
-- Stores created before record keys were kept: their records were keyed by Space id.
ALTER TABLE {s}.events ADD COLUMN IF NOT EXISTS record_key text;
UPDATE {s}.events SET record_key = space_id WHERE record_key IS NULL;
ALTER TABLE {s}.events ALTER COLUMN record_key SET NOT NULL;
CREATE INDEX IF NOT EXISTS events_topic_position ON {s}.events (topic, global_position);
CREATE TABLE IF NOT EXISTS {s}.outbox (
    position bigserial PRIMARY KEY,
    global_position bigint NOT NULL,
    topic text NOT NULL,
    key text NOT NULL,
    envelope bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.idempotency (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires boolean NOT NULL DEFAULT true
);
-- Stores created before records expired. Adding a column with a non-volatile default is a
-- catalogue change (PostgreSQL 11+), not a table rewrite; both statements are no-ops once done.
ALTER TABLE {s}.idempotency ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = '{s}' AND table_name = 'idempotency' AND column_name = 'expires'
    ) THEN
        ALTER TABLE {s}.idempotency ADD COLUMN expires boolean NOT NULL DEFAULT true;
        -- Once: the records of reactions to other services' events (fingerprint 'system') are kept.
        UPDATE {s}.idempotency SET expires = false WHERE fingerprint = 'system';
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS idempotency_expiring ON {s}.idempotency (created_at) WHERE expires;
CREATE TABLE IF NOT EXISTS {s}.relay_state (
    topic text PRIMARY KEY,
    published_count bigint NOT NULL DEFAULT 0
);
CREATE OR REPLACE FUNCTION {s}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{s}_outbox', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON {s}.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON {s}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.notify_outbox();
"""


# The relay no longer checks the broker's log (a lost log is an operator's recovery).
STEP_2_DROP_RELAY_STATE = "DROP TABLE IF EXISTS {s}.relay_state;"

STEPS = (STEP_1, STEP_2_DROP_RELAY_STATE)


def quoted(schema: str) -> str:
    if not _IDENT.match(schema):
        raise ValueError(f"schema name {schema!r} must be a lower-case SQL identifier")
    return schema


async def migrate(pool: asyncpg.Pool, schema: str) -> None:
    """Applies the event store's migration steps not yet applied; safe when replicas start at once."""
    await apply_migrations(pool, quoted(schema), "eventstore", STEPS)


def notify_channel(schema: str) -> str:
    return f"{quoted(schema)}_outbox"
