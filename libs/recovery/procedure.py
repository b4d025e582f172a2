"""`podium log recover`: the lost-log procedure's steps, in order, saying what each did.

1. topics: every topic of `EVERY_TOPIC` exists with its partition count (a
   topic some client made with the broker's default count is made again);
2. reseed: every event store empties its topics and publishes its events again
   (`reseed`);
3. readers: consumer groups to the earliest offsets, faust changelogs emptied,
   every position stored in PostgreSQL forgotten (`readers`);
4. views: a rebuild of every durable view of every service is requested; each
   view's writer carries it out when its service starts.

Run with the services stopped (scaled to 0), then start them: they come up
NOT_SERVING and report SERVING once their views have caught up with the new log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from libs.config.settings import PodiumSettings
from libs.events.topics import EVERY_TOPIC, FaustTable, TopicSpec
from libs.projection.operations import request_rebuild, schemas_with_views
from libs.recovery.readers import ReaderReset, reset_readers
from libs.recovery.reseed import event_stores, reseed
from libs.recovery.topics import make_topics


async def rebuild_every_view(pool: asyncpg.Pool) -> dict[str, list[tuple[str, int]]]:
    """Requests a rebuild of every durable view of every service: {schema: [(view, version)]}."""
    async with pool.acquire() as conn:
        schemas = await schemas_with_views(conn)
    return {schema: await request_rebuild(pool, schema) for schema in schemas}


@dataclass
class Recovery:
    topics: list[str] = field(default_factory=list)  # made (again)
    reseeded: dict[str, Counter[str]] = field(default_factory=dict)  # schema -> topic -> events
    readers: ReaderReset = field(default_factory=ReaderReset)
    views: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


async def recover(
    settings: PodiumSettings,
    pool: asyncpg.Pool,
    *,
    apps: dict[str, tuple[FaustTable, ...]] | None = None,
    say: Callable[[str], None] = print,
    topics: tuple[TopicSpec, ...] = EVERY_TOPIC,
) -> Recovery:
    """The whole procedure; `say` gets one line per thing done. `apps`: the faust apps whose groups
    and changelogs to reset (default: `readers.FAUST_APPS`); `topics`: what step 1 makes."""
    done = Recovery()
    done.topics = await make_topics(settings, topics)
    say(f"topics: made {len(done.topics)} ({', '.join(done.topics) or 'all were in place'})")
    for schema in await event_stores(pool):
        done.reseeded[schema] = await reseed(pool, settings, schema)
        for topic, count in sorted(done.reseeded[schema].items()):
            say(f"reseed: {schema}: {count} events published to {topic}")
        if not done.reseeded[schema]:
            say(f"reseed: {schema}: no events stored")
    done.readers = await reset_readers(settings, pool, apps)
    for line in done.readers.lines():
        say(f"readers: {line}")
    done.views = await rebuild_every_view(pool)
    for schema, views in done.views.items():
        say(f"views: {schema}: rebuild requested of {', '.join(f'{v} v{n}' for v, n in views) or 'none'}")
    return done
