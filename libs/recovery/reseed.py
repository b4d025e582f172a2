"""Publishing every stored event again, from the services' PostgreSQL event stores.

Each service that appends events keeps them all in its schema's `events` table
(`libs.eventstore.schema`), with the topic and record key each was published
with. After a lost log, that table is the log: `reseed` publishes each event to
its topic again, in `global_position` order (so each Space's events arrive in
stream order on their partition), waits for the broker to acknowledge every
one (`acks=all`, `make_producer`), and then deletes the outbox rows it covered:
the relay need not publish them a second time.

First it empties those topics (deleted and made again): whatever they hold is
in the store too, and a relay that published to a topic made again after the
loss left newer events ahead of the older ones. Afterwards each topic holds
every stored event once, in order, and nothing else. (Each event topic has one
publishing service, so one store's reseed empties no other store's events.)

It holds `LOCK TABLE <schema>.outbox IN EXCLUSIVE MODE` for the whole time, in
one transaction: an append (which writes `events` and `outbox` in one
statement) waits until the reseed is done, so no event is published ahead of an
older one, and none is left out. Run with the services stopped anyway, since
the lock holds back every command of that service while it lasts.

Run it only as part of the recovery (`podium log recover`), with the services
stopped: readers' positions into the emptied topics mean nothing afterwards.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import asyncpg

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_producer
from libs.eventstore.schema import quoted
from libs.recovery.topics import empty_topics, spec_of

#: Events fetched and sent per round trip; every batch is acknowledged before the next is read.
BATCH = 1000


async def event_stores(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """The schemas that hold an event store (an `events` and an `outbox` table): room, moderation,
    media_relay, replay in a full deployment."""
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'events' "
        "AND table_schema IN (SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox') "
        "ORDER BY 1"
    )
    return [r["table_schema"] for r in rows]


def schema_of(service: str) -> str:
    """A service's schema, as `podium` commands name it (`media-relay` -> `media_relay`)."""
    return quoted(service.replace("-", "_"))


async def reseed(
    pool: asyncpg.Pool,
    settings: PodiumSettings,
    schema: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Empties the topics of `schema`'s events, publishes every event to its topic, in order, and
    deletes the outbox rows that covered. Returns how many events went to each topic. Raises if the broker did not acknowledge
    every one; then nothing is deleted, and running it again is safe."""
    s = quoted(schema)
    published: Counter[str] = Counter()
    producer = make_producer(settings, client_id=f"podium-reseed-{schema}")
    await producer.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {s}.outbox IN EXCLUSIVE MODE")
            topics = [r["topic"] for r in await conn.fetch(f"SELECT DISTINCT topic FROM {s}.events")]
            if topics:
                await empty_topics(settings, tuple(spec_of(t) for t in sorted(topics)))
            last = 0
            while True:
                rows = await conn.fetch(
                    f"SELECT global_position, topic, record_key, envelope FROM {s}.events"
                    " WHERE global_position > $1 ORDER BY global_position LIMIT $2",
                    last,
                    BATCH,
                )
                if not rows:
                    break
                # The producer keeps one request in flight per partition, so records stay in order.
                acks = [
                    await producer.send(r["topic"], value=bytes(r["envelope"]), key=r["record_key"].encode())
                    for r in rows
                ]
                await asyncio.gather(*acks)
                published.update(r["topic"] for r in rows)
                last = rows[-1]["global_position"]
                if progress:
                    progress(sum(published.values()))
            await conn.execute(f"DELETE FROM {s}.outbox WHERE global_position <= $1", last)
    finally:
        await producer.stop()
    return published
