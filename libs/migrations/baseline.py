"""The baseline: every schema as the release before versioned migrations made it, frozen.

Before Alembic, each service ran its DDL at start-up through a home-grown ledger
(`<schema>.schema_migrations`: a component, such as `eventstore`, `tracking` or
`view:<name>:v<version>`, and the numbers of its steps applied). The first
revision of every history (`<history>_0001`) runs what that ledger has not
recorded yet, in the order the services' start-up ran it, and records it there:

- on an empty schema it makes the previous release's schema, ledger included;
- on a schema the previous release made, it adopts it: the ledger says every
  step is applied, nothing runs, no row is touched;
- on one an older release made, it runs the steps that release lacked, as that
  release's successor would have at start-up.

The second revision (`<history>_0002`) drops the ledger: Alembic's
`<schema>.alembic_version` is the record from then on. Its downgrade puts the
ledger back, full, so the previous release can run on a schema downgraded one
step.

Everything below is frozen: it is the SQL the previous release ran, copied
verbatim (tests/integration/migrations/previous_release_schema.sql is that release's dump,
and tests/integration/migrations/test_upgrade.py proves they agree). A change to a table is
a new revision in its service's history, never an edit here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from sqlalchemy.engine import Connection

# A component's steps in the ledger; None: not in the ledger (replay's jobs and spool, made with
# IF NOT EXISTS at every start).
Component = tuple[str | None, Sequence[str]]

LEDGER = """
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    component text NOT NULL,
    step int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, step)
);
"""

EVENTSTORE = (
    """
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
    """,
    """
    DROP TABLE IF EXISTS {s}.relay_state;
    """,
)

TRACKING = (
    """
    CREATE TABLE IF NOT EXISTS {s}.view_positions (
        view text NOT NULL,
        version int NOT NULL,
        topic text NOT NULL,
        partition int NOT NULL,
        next_offset bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view, version, topic, partition)
    );
    CREATE TABLE IF NOT EXISTS {s}.view_streams (
        view text NOT NULL,
        version int NOT NULL,
        producer text NOT NULL,
        stream_id text NOT NULL,
        applied_version bigint NOT NULL,
        PRIMARY KEY (view, version, producer, stream_id)
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS {s}.view_rebuilds (
        view text NOT NULL,
        version int NOT NULL,
        requested_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view, version)
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS {s}.view_registry (
        view text NOT NULL,
        version int NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view, version)
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS {s}.view_writers (
        view text NOT NULL,
        version int NOT NULL,
        epoch bigint NOT NULL,
        PRIMARY KEY (view, version)
    );
    """,
)

WEBHOOKS = (
    """
    CREATE TABLE IF NOT EXISTS {s}.webhooks (
        webhook_id text PRIMARY KEY,
        owner_id text NOT NULL,
        owner_is_gateway boolean NOT NULL,
        url text NOT NULL,
        event_types text[] NOT NULL, -- the names bodies carry, such as participant.joined
        space_ids text[] NOT NULL, -- empty: every Space the owner may see
        description text NOT NULL,
        secret text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS webhooks_by_owner ON {s}.webhooks (owner_id, owner_is_gateway, webhook_id)
        WHERE deleted_at IS NULL;
    CREATE TABLE IF NOT EXISTS {s}.deliveries (
        delivery_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id text NOT NULL REFERENCES {s}.webhooks ON DELETE CASCADE,
        event_id text NOT NULL,
        space_id text NOT NULL,
        event_type text NOT NULL,
        occurred_at timestamptz NOT NULL,
        enqueued_at timestamptz NOT NULL DEFAULT now(),
        body text NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        held_until timestamptz,
        last_attempt_at timestamptz,
        last_status int NOT NULL DEFAULT 0,
        last_error text NOT NULL DEFAULT '',
        delivered_at timestamptz,
        finished_at timestamptz, -- delivered or dead-lettered: when the retention starts
        UNIQUE (webhook_id, event_id)
    );
    CREATE INDEX IF NOT EXISTS deliveries_queues ON {s}.deliveries (webhook_id, space_id, delivery_id)
        WHERE state = 'pending';
    CREATE INDEX IF NOT EXISTS deliveries_finished ON {s}.deliveries (finished_at)
        WHERE state <> 'pending';
    """,
)

REPLAY_JOBS = """
CREATE TABLE IF NOT EXISTS {s}.finalize_jobs (
    space_id text PRIMARY KEY,
    state text NOT NULL DEFAULT 'pending',
    progress double precision NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    error text NOT NULL DEFAULT '',
    ended_at timestamptz NOT NULL,
    ready_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""

REPLAY_SPOOL = """
CREATE TABLE IF NOT EXISTS {s}.recording_chunks (
    space_id text NOT NULL,
    relay_id text NOT NULL,
    speaker_id text NOT NULL,
    chunk_sequence bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    chunk bytea NOT NULL,
    PRIMARY KEY (space_id, relay_id, speaker_id, chunk_sequence)
);
CREATE TABLE IF NOT EXISTS {s}.recording_positions (
    topic_partition integer PRIMARY KEY,
    next_offset bigint NOT NULL
);
"""

# view:room-space-directory:v2, tables space_directory_v2
SPACE_DIRECTORY_V2 = (
    """
    CREATE TABLE {s}.space_directory_v2 (
        space_id text PRIMARY KEY,
        version bigint NOT NULL,
        state int NOT NULL,
        host_user_id text NOT NULL,
        created_at timestamptz NOT NULL,
        starts_at timestamptz NOT NULL,
        unattended_since timestamptz,
        hosts int NOT NULL,
        co_hosts int NOT NULL,
        speakers int NOT NULL,
        listeners int NOT NULL,
        title text NOT NULL,
        description text NOT NULL,
        topics text[] NOT NULL,
        language text NOT NULL,
        words tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', title), 'A')
            || setweight(to_tsvector('simple', description), 'B')
        ) STORED,
        space bytea NOT NULL
    );
    CREATE INDEX space_directory_v2_newest ON {s}.space_directory_v2 (created_at DESC, space_id DESC);
    CREATE INDEX space_directory_v2_host ON {s}.space_directory_v2 (host_user_id, created_at DESC);
    CREATE INDEX space_directory_v2_live ON {s}.space_directory_v2 (state)
        WHERE state = 3; -- SPACE_STATE_LIVE
    CREATE INDEX space_directory_v2_scheduled ON {s}.space_directory_v2 (starts_at)
        WHERE state = 2; -- SPACE_STATE_SCHEDULED
    CREATE INDEX space_directory_v2_words ON {s}.space_directory_v2 USING gin (words);
    CREATE INDEX space_directory_v2_topics ON {s}.space_directory_v2 USING gin (topics);
    CREATE INDEX space_directory_v2_listeners ON {s}.space_directory_v2 (listeners DESC, space_id DESC);
    CREATE INDEX space_directory_v2_starts ON {s}.space_directory_v2 (starts_at, space_id);
    """,
)

# view:room-moderation-reactions:v1, tables barred_v1, blocks_v1
MODERATION_REACTIONS_V1 = (
    """
    CREATE TABLE {s}.barred_v1 (space_id text, user_id text, PRIMARY KEY (space_id, user_id));
    CREATE TABLE {s}.blocks_v1 (user_id text, host_user_id text, PRIMARY KEY (user_id, host_user_id));
    """,
)

# view:presence-space-board:v2, tables space_boards_v2, space_board_members_v2, space_board_flags_v2
SPACE_BOARD_ROWS_V2 = (
    """
    CREATE TABLE {s}.space_boards_v2 (
        space_id text PRIMARY KEY,
        host_user_id text NOT NULL,
        state int NOT NULL,
        co_hosts text[] NOT NULL,
        speakers text[] NOT NULL,
        present int NOT NULL,
        listeners int NOT NULL,
        title text NOT NULL,
        description text NOT NULL,
        join_policy int NOT NULL,
        scheduled_start timestamptz,
        recording_enabled boolean NOT NULL,
        started_at timestamptz,
        ended_at timestamptz,
        end_reason int NOT NULL,
        stream_producers text[] NOT NULL,
        stream_ids text[] NOT NULL
    );
    CREATE INDEX space_boards_v2_open ON {s}.space_boards_v2 (space_id) WHERE state NOT IN (4, 5);

    CREATE TABLE {s}.space_board_members_v2 (
        space_id text NOT NULL,
        user_id text NOT NULL,
        role int NOT NULL,
        joined_at timestamptz,
        muted boolean NOT NULL,
        mute_kind int NOT NULL,
        hand_raised_at timestamptz,
        removed boolean NOT NULL,
        barred boolean NOT NULL,
        PRIMARY KEY (space_id, user_id)
    );

    CREATE TABLE {s}.space_board_flags_v2 (
        space_id text NOT NULL,
        user_id text NOT NULL,
        connected boolean NOT NULL,
        speaking boolean NOT NULL,
        PRIMARY KEY (space_id, user_id)
    );
    """,
)

# view:moderation-room-roles:v1, tables room_rosters_v1, room_members_v1
ROOM_ROLES_V1 = (
    """
    CREATE TABLE {s}.room_rosters_v1 (
        space_id text PRIMARY KEY,
        version bigint NOT NULL,
        host_user_id text NOT NULL,
        state int NOT NULL,
        co_hosts text[] NOT NULL,
        speakers text[] NOT NULL,
        present int NOT NULL,
        listeners int NOT NULL
    );

    CREATE TABLE {s}.room_members_v1 (
        space_id text NOT NULL,
        user_id text NOT NULL,
        role int NOT NULL,
        joined_at timestamptz,
        muted boolean NOT NULL,
        mute_kind int NOT NULL,
        hand_raised_at timestamptz,
        removed boolean NOT NULL,
        barred boolean NOT NULL,
        PRIMARY KEY (space_id, user_id)
    );
    """,
)

# view:moderation-report-index:v1, tables reports_v1
REPORT_INDEX_V1 = (
    """
    CREATE TABLE {s}.reports_v1 (
        report_id text PRIMARY KEY,
        space_id text NOT NULL,
        reporter_user_id text NOT NULL,
        target_user_id text NOT NULL,
        reason int NOT NULL,
        text text NOT NULL,
        state int NOT NULL,
        resolution int NOT NULL DEFAULT 0,
        resolved_by_user_id text NOT NULL DEFAULT '',
        reported_at timestamptz NOT NULL,
        resolved_at timestamptz
    );
    CREATE INDEX reports_v1_newest ON {s}.reports_v1 (reported_at DESC, report_id DESC);
    CREATE INDEX reports_v1_space ON {s}.reports_v1 (space_id, reported_at DESC, report_id DESC);
    CREATE INDEX reports_v1_state ON {s}.reports_v1 (state, reported_at DESC, report_id DESC);
    """,
)

# view:media-relay-spaces:v1, tables space_media_v1, space_media_members_v1
SPACE_MEDIA_ROWS_V1 = (
    """
    CREATE TABLE {s}.space_media_v1 (
        space_id text PRIMARY KEY,
        host_user_id text NOT NULL,
        state int NOT NULL,
        co_hosts text[] NOT NULL,
        speakers text[] NOT NULL,
        present int NOT NULL,
        listeners int NOT NULL,
        recording boolean NOT NULL,
        stream_producers text[] NOT NULL,
        stream_ids text[] NOT NULL
    );
    CREATE INDEX space_media_v1_open ON {s}.space_media_v1 (space_id) WHERE state NOT IN (4, 5);

    CREATE TABLE {s}.space_media_members_v1 (
        space_id text NOT NULL,
        user_id text NOT NULL,
        role int NOT NULL,
        joined_at timestamptz,
        muted boolean NOT NULL,
        mute_kind int NOT NULL,
        hand_raised_at timestamptz,
        removed boolean NOT NULL,
        barred boolean NOT NULL,
        PRIMARY KEY (space_id, user_id)
    );
    """,
)

# view:replay-catalog:v1, tables replay_catalog_v1, replay_audience_v1
REPLAY_CATALOG_V1 = (
    """
    CREATE TABLE {s}.replay_catalog_v1 (
        space_id text PRIMARY KEY,
        host_user_id text NOT NULL DEFAULT '',
        title text NOT NULL DEFAULT '',
        recording_enabled boolean NOT NULL DEFAULT false,
        started_at timestamptz,
        ended_at timestamptz,
        cancelled boolean NOT NULL DEFAULT false,
        join_policy int NOT NULL DEFAULT 0,
        invite_only boolean NOT NULL DEFAULT false,
        finalized_at timestamptz,
        recording_started_at timestamptz,
        duration interval NOT NULL DEFAULT '0',
        size_bytes bigint NOT NULL DEFAULT 0,
        speaker_ids text[] NOT NULL DEFAULT '{{}}',
        deleted int NOT NULL DEFAULT 0,
        listens bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX replay_catalog_v1_host ON {s}.replay_catalog_v1 (host_user_id, ended_at DESC, space_id DESC)
        WHERE recording_enabled AND ended_at IS NOT NULL AND deleted = 0;
    CREATE INDEX replay_catalog_v1_finalized ON {s}.replay_catalog_v1 (finalized_at)
        WHERE finalized_at IS NOT NULL AND deleted = 0;
    CREATE TABLE {s}.replay_audience_v1 (
        space_id text NOT NULL,
        user_id text NOT NULL,
        admitted boolean NOT NULL,
        co_host boolean NOT NULL,
        PRIMARY KEY (space_id, user_id)
    );
    """,
)

# view:replay-space-history:v1, tables space_history_v1
SPACE_HISTORY_V1 = (
    """
    CREATE TABLE {s}.space_history_v1 (
        space_id text NOT NULL,
        occurred_at timestamptz NOT NULL,
        topic smallint NOT NULL, -- 0 room, 1 moderation, 2 media: the order on equal times
        seq bigint GENERATED ALWAYS AS IDENTITY, -- the order applied: each topic's log order
        event_type text NOT NULL,
        payload bytea NOT NULL,
        PRIMARY KEY (space_id, occurred_at, topic, seq)
    );
    """,
)

# view:webhooks-delivery-queue:v1, tables space_hosts_v1
DELIVERY_QUEUE_V1 = (
    """
    CREATE TABLE {s}.space_hosts_v1 (
        space_id text PRIMARY KEY,
        host_user_id text NOT NULL
    );
    """,
)


def _view(name: str, version: int, steps: Sequence[str]) -> Component:
    return (f"view:{name}:v{version}", steps)


#: Each history's components, in the order the previous release's start-up ran them.
COMPONENTS: dict[str, tuple[Component, ...]] = {
    "room": (
        ("eventstore", EVENTSTORE),
        ("tracking", TRACKING),
        _view("room-space-directory", 2, SPACE_DIRECTORY_V2),
        _view("room-moderation-reactions", 1, MODERATION_REACTIONS_V1),
    ),
    "presence": (
        ("tracking", TRACKING),
        _view("presence-space-board", 2, SPACE_BOARD_ROWS_V2),
    ),
    "moderation": (
        ("eventstore", EVENTSTORE),
        ("tracking", TRACKING),
        _view("moderation-room-roles", 1, ROOM_ROLES_V1),
        _view("moderation-report-index", 1, REPORT_INDEX_V1),
    ),
    "media_relay": (
        ("eventstore", EVENTSTORE),
        ("tracking", TRACKING),
        _view("media-relay-spaces", 1, SPACE_MEDIA_ROWS_V1),
    ),
    "replay": (
        ("eventstore", EVENTSTORE),
        (None, (REPLAY_JOBS, REPLAY_SPOOL)),
        ("tracking", TRACKING),
        _view("replay-catalog", 1, REPLAY_CATALOG_V1),
        _view("replay-space-history", 1, SPACE_HISTORY_V1),
    ),
    "webhooks": (
        ("eventstore", EVENTSTORE),
        ("webhooks", WEBHOOKS),
        ("tracking", TRACKING),
        _view("webhooks-delivery-queue", 1, DELIVERY_QUEUE_V1),
    ),
}


def _run(conn: Connection, sql: str, schema: str) -> None:
    # The driver's own SQL, several statements at once, no parameters (and so no escaping); dedented,
    # since a function's body is kept as written and the previous release wrote it at column 0.
    conn.execution_options(no_parameters=True).exec_driver_sql(textwrap.dedent(sql).format(s=schema))


def _applied(conn: Connection, schema: str) -> set[tuple[str, int]]:
    rows = conn.exec_driver_sql(f"SELECT component, step FROM {schema}.schema_migrations")
    return {(component, step) for component, step in rows}


def upgrade(conn: Connection, history: str, schema: str) -> int:
    """Runs the steps of `history`'s baseline the ledger lacks; returns how many ran."""
    _run(conn, LEDGER, schema)
    done = _applied(conn, schema)
    ran = 0
    for component, steps in COMPONENTS[history]:
        for number, sql in enumerate(steps, start=1):
            if component is not None and (component, number) in done:
                continue
            _run(conn, sql, schema)
            if component is not None:
                conn.exec_driver_sql(
                    f"INSERT INTO {schema}.schema_migrations (component, step) VALUES (%s, %s)",
                    (component, number),
                )
                ran += 1
    return ran


def drop_ledger(conn: Connection, schema: str) -> None:
    _run(conn, "DROP TABLE {s}.schema_migrations;", schema)


def restore_ledger(conn: Connection, history: str, schema: str) -> None:
    """The ledger as the previous release leaves it: every step of the baseline applied."""
    _run(conn, LEDGER, schema)
    for component, steps in COMPONENTS[history]:
        if component is None:
            continue
        for number in range(1, len(steps) + 1):
            conn.exec_driver_sql(
                f"INSERT INTO {schema}.schema_migrations (component, step) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (component, number),
            )
