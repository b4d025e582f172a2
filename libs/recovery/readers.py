"""Every reader of the log goes back to the beginning of it, after a lost log.

A log made again (`podium log topics`, then `podium log reseed`) starts at
offset 0, and every position a reader kept points into the old one: past the
end of the new log, or at records it never read. So, with the services
stopped:

- each faust app's consumer group (its group id is its app id) commits the
  earliest offset of every partition it had an offset for: the apps read
  their source topics again from the start;
- each faust app's table changelogs are deleted and made again, empty: the
  tables start empty and are recomputed from the source topics, instead of
  being recovered from a changelog that describes another log;
- positions that services keep in PostgreSQL are forgotten, since they are
  offsets into the old log: the durable views' (`view_positions`; their
  stream versions stay, so a reader that starts again from offset 0 applies
  nothing twice, whether it is a view's writer or a cache started from the
  view's rows) and the replay service's recording spool's (it reads its topic
  from the beginning again; a chunk stored twice is stored once).

Durable views are also rebuilt, by their own request (`podium views rebuild`). Only
public aiokafka APIs: a consumer with the group's id, manual assignment, and
`commit` (aiokafka's admin client cannot delete a consumer group).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from aiokafka import TopicPartition

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_reader
from libs.events.topics import (
    ANALYTICS_APP,
    ANALYTICS_TABLES,
    EVERY_TOPIC,
    MODERATION_REPORTS_APP,
    MODERATION_REPORTS_TABLES,
    PRESENCE_APP,
    PRESENCE_TABLES,
    FaustTable,
    changelogs,
)
from libs.projection.operations import schemas_with_views
from libs.recovery.topics import empty_topics

#: Podium's faust apps (app id = consumer group id) and their tables. Analytics' app id is a
#: setting (PODIUM_ANALYTICS_APP_ID): another id is passed as an extra app with ANALYTICS_TABLES.
FAUST_APPS: dict[str, tuple[FaustTable, ...]] = {
    PRESENCE_APP: PRESENCE_TABLES,
    ANALYTICS_APP: ANALYTICS_TABLES,
    MODERATION_REPORTS_APP: MODERATION_REPORTS_TABLES,
}

#: Tables of stored read positions (`<schema>.<table>`, one row per partition) outside the
#: durable views: no row means "from the beginning".
STORED_POSITIONS = ("replay.recording_positions",)


@dataclass
class ReaderReset:
    groups: dict[str, int] = field(default_factory=dict)  # group id -> partitions set to earliest
    changelogs: list[str] = field(default_factory=list)  # emptied
    positions: dict[str, int] = field(default_factory=dict)  # table -> positions forgotten

    def lines(self) -> list[str]:
        return [
            *(
                f"consumer group {g}: {n} partitions back to the earliest offset"
                for g, n in self.groups.items()
            ),
            *(f"changelog {name}: emptied" for name in self.changelogs),
            *(f"{table}: {n} stored positions forgotten" for table, n in self.positions.items()),
        ]


def faust_apps(extra_analytics_ids: tuple[str, ...] = ()) -> dict[str, tuple[FaustTable, ...]]:
    return FAUST_APPS | {app_id: ANALYTICS_TABLES for app_id in extra_analytics_ids}


async def reset_group(settings: PodiumSettings, group_id: str, topics: list[str]) -> int:
    """Commits, for group `group_id`, the earliest offset of every partition of `topics` it has a
    committed offset for. Returns how many. The group must have no members (services stopped)."""
    consumer = make_reader(
        settings, f"podium-recovery-{group_id}", group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            return 0
        consumer.assign(parts)
        committed = {tp: await consumer.committed(tp) for tp in parts}
        had = [tp for tp, offset in committed.items() if offset is not None]
        if not had:
            return 0
        earliest = await consumer.beginning_offsets(had)
        await consumer.commit(earliest)
        return len(had)
    finally:
        await consumer.stop()


async def forget_stored_positions(pool: asyncpg.Pool) -> dict[str, int]:
    """Deletes the stored positions (table -> how many): every durable view's, and `STORED_POSITIONS`."""
    async with pool.acquire() as conn:
        tables = [f"{schema}.view_positions" for schema in await schemas_with_views(conn)]
    forgotten = {}
    for table in (*tables, *STORED_POSITIONS):
        if await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            status = await pool.execute(f"DELETE FROM {table}")
            forgotten[table] = int(status.split()[-1])
    return forgotten


async def reset_readers(
    settings: PodiumSettings, pool: asyncpg.Pool, apps: dict[str, tuple[FaustTable, ...]] | None = None
) -> ReaderReset:
    """All of the above, for `apps` (default: `FAUST_APPS`)."""
    apps = FAUST_APPS if apps is None else apps
    done = ReaderReset()
    topics = [spec.name for spec in EVERY_TOPIC]
    for app_id, tables in apps.items():
        done.groups[app_id] = await reset_group(settings, app_id, topics)
        done.changelogs += await empty_topics(settings, changelogs(app_id, tables))
    done.positions = await forget_stored_positions(pool)
    return done
