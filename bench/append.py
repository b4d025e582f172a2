"""Event append: the write path against raw asyncpg and the `eventsourcing` library. `python -m bench.append`.

Three writers append the same events to the same PostgreSQL (a fresh database,
one schema each), in the same run, under the same schedule:

- **podium**: `libs.eventstore.EventStore.append`, the write path every
  service uses: wrap each payload in its envelope, then one statement writes
  the events, their outbox rows (whose trigger NOTIFYs the relay) and commits.
- **raw asyncpg**: the same rows (envelopes encoded before the clock starts)
  written by hand into an identical schema: BEGIN; INSERT the events
  (unnest, RETURNING global_position); INSERT the outbox rows; COMMIT.
- **eventsourcing** (pyeventsourcing, `PostgresApplicationRecorder` over
  psycopg 3 with the C extension): `insert_events` of `StoredEvent`s whose
  state is the same envelope bytes and whose topic is the event type. That is
  the library's storage layer: its application layer would add its own
  transcoding on top (JSON), so this is the library's fastest append. Its
  recorder has no outbox (consumers read its notification log), and it takes
  an EXCLUSIVE lock on the table per insert so that notification ids commit
  in order: that is the library's design, measured as it ships.

Fair by construction: the same event count, the same payloads (a real
`ParticipantJoined` envelope, ~250 bytes), the same PostgreSQL and settings,
the same concurrency (a pool of `--concurrency` connections each; for the
synchronous library, as many threads), and the same open-loop schedule:
appends are started at a fixed rate (`--rate` appends/s, above what any of
them sustains on this machine, so each runs at its capacity and a slow one
shows as latency) without waiting for earlier ones. Every append starts its
own stream (expected version 0), so no writer waits for another's version.
Two shapes: one event per append, and `--batch` events per append.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import asyncpg

from bench.commands import percentile
from libs.devstack.database import create_database, drop_database, resolve_database
from libs.events.envelope import Causation, wrap
from libs.eventstore.store import EventStore, NewEvent
from libs.migrations.tool import upgrade_async
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types

TOPIC = "podium.room.events.v1"
CAUSE = Causation("bench-user", "bench-correlation-" + "0" * 20, "bench-causation-" + "0" * 20)


def payload(i: int) -> ev.ParticipantJoined:
    return ev.ParticipantJoined(
        space_id=str(uuid.UUID(int=i)), user_id=f"bench-listener-{i:08d}", role=types.ROLE_LISTENER
    )


def appends(events: int, batch: int) -> list[tuple[str, str, list]]:
    """(stream id, space id, payloads) per append: `events` in all, `batch` per append."""
    out = []
    for a in range(events // batch):
        space_id = str(uuid.uuid4())
        out.append((f"space-{space_id}", space_id, [payload(a * batch + j) for j in range(batch)]))
    return out


async def open_loop(
    work: list, rate: float, one: Callable[[object], Awaitable[None]], per_append: int
) -> dict:
    """Starts `one(item)` for every item on a fixed schedule; never waits before sending the next."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def timed(item, due: float) -> None:
        await one(item)
        latencies.append(loop.time() - due)

    start = loop.time()
    tasks = []
    max_lag = 0.0
    for i, item in enumerate(work):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        tasks.append(asyncio.create_task(timed(item, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    events = len(work) * per_append
    return {
        "appends": len(work),
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "appends_per_s": round(len(work) / elapsed),
        "latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


async def run_podium(pool: asyncpg.Pool, work: list, rate: float, batch: int) -> dict:
    store = EventStore(pool, "bench_podium", "room")
    now = datetime.now(UTC)

    async def one(item) -> None:
        stream_id, space_id, payloads = item
        await store.append(
            stream_id=stream_id,
            space_id=space_id,
            topic=TOPIC,
            expected_version=0,
            events=[NewEvent(p, now, CAUSE) for p in payloads],
        )

    return await open_loop(work, rate, one, batch)


def encoded(work: list) -> list[tuple[str, str, list]]:
    """The same appends with their envelopes built and encoded (for the raw writers)."""
    now = datetime.now(UTC)
    out = []
    for stream_id, space_id, payloads in work:
        envelopes = [
            wrap(
                p,
                producer="room",
                stream_id=stream_id,
                version=v,
                space_id=space_id,
                occurred_at=now,
                causation=CAUSE,
            )
            for v, p in enumerate(payloads, start=1)
        ]
        out.append((stream_id, space_id, envelopes))
    return out


RAW_EVENTS = """
    INSERT INTO bench_raw.events
        (event_id, stream_id, version, space_id, event_type, occurred_at, topic, record_key, envelope)
    SELECT e.id, $2, e.version, $3, e.type, e.at, $4, $3, e.envelope
    FROM unnest($1::uuid[], $5::bigint[], $6::text[], $7::timestamptz[], $8::bytea[])
        AS e(id, version, type, at, envelope)
    RETURNING global_position
"""
RAW_OUTBOX = """
    INSERT INTO bench_raw.outbox (global_position, topic, key, envelope)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[])
"""


async def run_raw(pool: asyncpg.Pool, work: list, rate: float, batch: int) -> dict:
    now = datetime.now(UTC)
    rows = [
        (
            stream_id,
            space_id,
            [e.event_id for e in envs],
            [e.stream_version for e in envs],
            [e.event_type for e in envs],
            [now] * len(envs),
            [e.SerializeToString() for e in envs],
        )
        for stream_id, space_id, envs in encoded(work)
    ]

    async def one(item) -> None:
        stream_id, space_id, ids, versions, kinds, ats, blobs = item
        async with pool.acquire() as conn, conn.transaction():
            positions = await conn.fetch(
                RAW_EVENTS, ids, stream_id, space_id, TOPIC, versions, kinds, ats, blobs
            )
            n = len(blobs)
            await conn.execute(RAW_OUTBOX, [r[0] for r in positions], [TOPIC] * n, [space_id] * n, blobs)

    return await open_loop(rows, rate, one, batch)


def eventsourcing_recorder(database_url: str, concurrency: int):
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    url = urlsplit(database_url)
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/"),
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password or ""),
        pool_size=concurrency,
        schema="bench_eventsourcing",
        originator_id_type="text",
    )
    with datastore.transaction(commit=True) as curs:
        curs.execute("CREATE SCHEMA IF NOT EXISTS bench_eventsourcing")
    recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
    recorder.create_table()
    return datastore, recorder


async def run_eventsourcing(recorder, work: list, rate: float, batch: int, concurrency: int) -> dict:
    from eventsourcing.persistence import StoredEvent

    stored = [
        [
            StoredEvent(
                originator_id=stream_id,
                originator_version=e.stream_version,
                topic=e.event_type,
                state=e.SerializeToString(),
            )
            for e in envs
        ]
        for stream_id, _space_id, envs in encoded(work)
    ]
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as threads:
        # Open every pooled connection before the clock starts, as asyncpg's pool has.
        await asyncio.gather(
            *(loop.run_in_executor(threads, recorder.max_notification_id) for _ in range(concurrency))
        )

        async def one(item) -> None:
            await loop.run_in_executor(threads, recorder.insert_events, item)

        return await open_loop(stored, rate, one, batch)


async def count_rows(pool: asyncpg.Pool) -> dict:
    return {
        "podium_events": await pool.fetchval("SELECT count(*) FROM bench_podium.events"),
        "podium_outbox": await pool.fetchval("SELECT count(*) FROM bench_podium.outbox"),
        "raw_events": await pool.fetchval("SELECT count(*) FROM bench_raw.events"),
        "raw_outbox": await pool.fetchval("SELECT count(*) FROM bench_raw.outbox"),
        "eventsourcing_events": await pool.fetchval("SELECT count(*) FROM bench_eventsourcing.stored_events"),
    }


async def truncate(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "TRUNCATE bench_podium.events, bench_podium.outbox, bench_raw.events, bench_raw.outbox, "
        "bench_eventsourcing.stored_events"
    )


async def run(events: int, batch: int, concurrency: int, rates: tuple[float, float]) -> dict:
    """Both shapes (single events, then batches of `batch`), each writer in turn."""
    import eventsourcing
    import psycopg

    server = await resolve_database(__import__("pathlib").Path(".podium/bench-pgdata"))
    name = f"podium_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(server.url, name)
    result: dict = {
        "events_per_shape": events,
        "concurrency": concurrency,
        "eventsourcing_version": eventsourcing.__version__ if hasattr(eventsourcing, "__version__") else "",
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "asyncpg": asyncpg.__version__,
    }
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    datastore = None
    try:
        settings = await pool.fetchrow("SELECT current_setting('synchronous_commit') AS sc, version() AS v")
        result["postgresql"] = settings["v"].split(" on ")[0]
        result["synchronous_commit"] = settings["sc"]
        await upgrade_async(url, "room", "bench_podium")  # the room's schema: its event store
        await upgrade_async(url, "room", "bench_raw")
        datastore, recorder = await asyncio.to_thread(eventsourcing_recorder, url, concurrency)
        shapes = {}
        for per_append, rate in ((1, rates[0]), (batch, rates[1])):
            # Untimed warm-up of every writer (connections, prepared statements, caches).
            warm = appends(20 * per_append, per_append)
            await run_podium(pool, warm, rate, per_append)
            await run_raw(pool, warm, rate, per_append)
            await run_eventsourcing(recorder, warm, rate, per_append, concurrency)
            await truncate(pool)
            work = appends(events, per_append)
            shape = {"events_per_append": per_append, "offered_appends_per_s": rate}
            shape["podium"] = await run_podium(pool, work, rate, per_append)
            shape["raw_asyncpg"] = await run_raw(pool, work, rate, per_append)
            shape["eventsourcing"] = await run_eventsourcing(recorder, work, rate, per_append, concurrency)
            shape["rows"] = await count_rows(pool)
            p = shape["podium"]["events_per_s"]
            shape["ratio_vs_raw"] = round(p / shape["raw_asyncpg"]["events_per_s"], 2)
            shape["ratio_vs_eventsourcing"] = round(p / shape["eventsourcing"]["events_per_s"], 2)
            shapes["single" if per_append == 1 else "batch"] = shape
            await truncate(pool)
        result.update(shapes)
    finally:
        await pool.close()
        if datastore is not None:
            await asyncio.to_thread(datastore.close)
        await drop_database(server.url, name)
        server.stop()
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per shape and writer")
    parser.add_argument("--batch", type=int, default=10, help="events per append in the batch shape")
    parser.add_argument("--concurrency", type=int, default=8, help="connections (and threads) per writer")
    parser.add_argument("--rate", type=float, default=8_000, help="single-event appends/s offered")
    parser.add_argument("--batch-rate", type=float, default=2_000, help="batched appends/s offered")
    return parser.parse_args(argv)


def cli() -> None:
    from libs.config.runtime import run as run_loop

    args = parse_args()
    result = run_loop(run(args.events, args.batch, args.concurrency, (args.rate, args.batch_rate)), "uvloop")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
