"""Builds, in an empty database, every schema as the release before versioned migrations made it.

    git worktree add /tmp/previous <the previous release's commit>
    PYTHONPATH=/tmp/previous/gen:/tmp/previous python tests/integration/migrations/build_previous_release.py URL
    pg_dump --schema-only --no-owner --no-privileges \
        --schema=room --schema=presence ... URL | grep -v '^\\\\' > previous_release_schema.sql
    pg_dump --data-only --inserts --table=room.schema_migrations ... URL | grep -v '^\\\\' >> ...

It runs, with that release's code, exactly the DDL each service ran at start-up: the event store's
`migrate`, the tracking tables and each durable view's versioned steps (as its runner's `start`
did), the webhooks tables, and replay's jobs and recording spool. The dump it leads to is
`previous_release_schema.sql`, which the upgrade test loads (the "previous release's schema").
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from libs.eventstore.migrations import apply_migrations
from libs.eventstore.schema import migrate
from libs.projection.tracking import STEPS as TRACKING_STEPS
from services.media_relay.projections.space_media_rows import SpaceMediaRows
from services.moderation.projections.report_index import ReportIndex
from services.moderation.projections.room_roles import RoomRoles
from services.presence.projections.space_board_rows import SpaceBoardRows
from services.replay.infrastructure import jobs, recording_spool
from services.replay.projections.replay_catalog import ReplayCatalog
from services.replay.projections.space_history import SpaceHistory
from services.room.projections.moderation_reactions import ModerationReactions
from services.room.projections.presence_reactions import PresenceReactions
from services.room.projections.space_directory import SpaceDirectory
from services.webhooks.infrastructure import tables as webhook_tables
from services.webhooks.projections.delivery_queue import DeliveryQueue

VIEWS = {
    "room": (SpaceDirectory, ModerationReactions, PresenceReactions),
    "presence": (SpaceBoardRows,),
    "moderation": (RoomRoles, ReportIndex),
    "media_relay": (SpaceMediaRows,),
    "replay": (ReplayCatalog, SpaceHistory),
    "webhooks": (DeliveryQueue,),
}


async def build(url: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        for schema, views in VIEWS.items():
            if schema != "presence":  # presence keeps no event store (ServiceShell's migrate)
                await migrate(pool, schema)
            if schema == "webhooks":
                await apply_migrations(pool, schema, "webhooks", webhook_tables.STEPS)
            if schema == "replay":
                await pool.execute(jobs.DDL.format(s=schema))
                await pool.execute(recording_spool.DDL.format(s=schema))
            for view in views:
                await apply_migrations(pool, schema, "tracking", TRACKING_STEPS)
                await apply_migrations(pool, schema, f"view:{view.name}:v{view.version}", view.steps)
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(build(sys.argv[1]))
