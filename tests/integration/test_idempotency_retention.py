"""Stored responses to request_ids expire, against a real PostgreSQL: a retry inside the retention
gets the first answer, one after it is a new request (purged or not), the purge deletes expired
records in batches, and an old store gains the expiry columns without a table rewrite."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from google.protobuf.wrappers_pb2 import Int64Value
from prometheus_client import REGISTRY

from libs.application.executor import CommandExecutor, RequestKey
from libs.application.idempotency_purge import IdempotencyPurge
from libs.domain.decider import Context, Decider
from libs.events.envelope import Causation
from libs.events.topics import TopicSpec
from libs.eventstore.store import EventStore
from libs.migrations.tool import upgrade_async
from podium.room.v1 import room_events_pb2
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

RETENTION = timedelta(hours=1)
TOPIC = TopicSpec("test.idempotency.v1", "unused: no relay runs here")


@dataclass(frozen=True)
class Join:
    user_id: str


def decide(command: Join, members: frozenset, ctx: Context):
    return [] if command.user_id in members else [room_events_pb2.ParticipantJoined(user_id=command.user_id)]


def evolve(members: frozenset, event, _at) -> frozenset:
    return members | {event.user_id}


DECIDER = Decider(decide, evolve, frozenset())


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool, database_url):
    schema = await migrated_schema(database_url, "room", "i")
    return EventStore(pool, schema, producer="test", idempotency_retention=RETENTION)


async def _join(executor: CommandExecutor, user: str, request_id: str = "") -> int:
    """Joins `user`; the answer is the number of members at the time."""
    answer = await executor.execute(
        stream_id="space-s",
        space_id="s",
        command=Join(user),
        context=Context(user, datetime.now(UTC)),
        causation=Causation(user, "corr", request_id or "cause"),
        respond=lambda members, _events: Int64Value(value=len(members)),
        response_type=Int64Value,
        request_key=RequestKey.of(user, "Join", request_id, Int64Value(value=1)),
    )
    return answer.value


async def _age(store: EventStore, *keys: str, by: timedelta = RETENTION + timedelta(minutes=1)) -> None:
    await store.pool.execute(
        f"UPDATE {store.schema}.idempotency SET created_at = created_at - $2::interval WHERE key = ANY($1)",
        list(keys),
        by,
    )


async def _keys(store: EventStore) -> set[str]:
    return {r["key"] for r in await store.pool.fetch(f"SELECT key FROM {store.schema}.idempotency")}


def _purged(store: EventStore) -> float:
    return REGISTRY.get_sample_value("podium_idempotency_purged_total", {"schema": store.schema}) or 0.0


async def test_a_retry_inside_the_retention_gets_the_stored_answer(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    assert await _join(executor, "alice", "r-1") == 1
    assert await _join(executor, "bob") == 2
    await _age(store, "alice:Join:r-1", by=RETENTION - timedelta(minutes=1))

    assert await _join(executor, "alice", "r-1") == 1  # the first answer, not today's 2
    assert await IdempotencyPurge(store, interval_seconds=60).sweep() == 0
    assert await _join(executor, "alice", "r-1") == 1


async def test_a_retry_after_the_retention_is_a_new_request_before_and_after_the_purge(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    assert await _join(executor, "alice", "r-1") == 1
    assert await _join(executor, "alice", "r-2") == 1
    assert await _join(executor, "bob") == 2
    await _age(store, "alice:Join:r-1", "alice:Join:r-2")
    assert await store.stored_responses(["alice:Join:r-1"]) == {}

    # Not purged yet: the expired record is replaced by the new answer.
    assert await _join(executor, "alice", "r-1") == 2
    assert (await store.stored_responses(["alice:Join:r-1"]))["alice:Join:r-1"].response == (
        Int64Value(value=2).SerializeToString()
    )

    # Purged: gone from the table, and a retry is again a new request.
    assert await IdempotencyPurge(store, interval_seconds=60).sweep() == 1
    assert await _keys(store) == {"alice:Join:r-1"}
    assert await _join(executor, "alice", "r-2") == 2


async def test_the_purge_deletes_expired_records_in_batches_and_keeps_the_rest(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    for i in range(5):
        await _join(executor, f"u{i}", "old")
    await _join(executor, "fresh", "new")
    await executor.execute(  # a reaction to another service's event: kept however old
        stream_id="space-s",
        space_id="s",
        command=Join("reacted"),
        context=Context("room", datetime.now(UTC)),
        causation=Causation("room", "corr", "event-1"),
        respond=lambda members, _events: Int64Value(value=len(members)),
        response_type=Int64Value,
        request_key=RequestKey("room:event-1", "system", expires=False),
    )
    await _age(store, *(f"u{i}:Join:old" for i in range(5)), "room:event-1", by=timedelta(days=30))
    before = _purged(store)

    assert await IdempotencyPurge(store, interval_seconds=60, batch_size=2).sweep() == 5

    assert await _keys(store) == {"fresh:Join:new", "room:event-1"}
    assert _purged(store) - before == 5
    assert "room:event-1" in await store.stored_responses(["room:event-1"])


async def test_an_old_store_gains_expiry_without_a_table_rewrite(pool, database_url):
    schema = f"o_{uuid.uuid4().hex[:10]}"
    await pool.execute(
        f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.idempotency "
        "(key text PRIMARY KEY, fingerprint text NOT NULL, response bytea NOT NULL)"
    )
    await pool.execute(
        f"INSERT INTO {schema}.idempotency VALUES ('u:Join:r', 'f', ''), ('room:event-1', 'system', '')"
    )
    table = f"{schema}.idempotency"
    file_before = await pool.fetchval("SELECT relfilenode FROM pg_class WHERE oid = $1::regclass", table)

    await upgrade_async(database_url, "room", schema)  # the baseline brings an old store up to date
    await upgrade_async(database_url, "room", schema)  # at its head: a second run changes nothing

    assert (
        await pool.fetchval("SELECT relfilenode FROM pg_class WHERE oid = $1::regclass", table) == file_before
    )
    rows = await pool.fetch(f"SELECT key, expires, created_at FROM {table} ORDER BY key")
    assert [(r["key"], r["expires"]) for r in rows] == [("room:event-1", False), ("u:Join:r", True)]
    assert all(r["created_at"] is not None for r in rows)
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'idempotency_expiring'", schema
    )


async def test_a_writer_holding_the_streams_lock_answers_a_taken_request_id_on_its_own_connection(
    database_url,
):
    """Under `exclusive` (the stream's lock, one connection held), a stored response met at the
    append is looked at on that same connection: a pool of one connection does not wait on itself.
    An expired record is replaced in the same transaction; a live one is a DuplicateRequest."""
    from libs.eventstore.store import DuplicateRequest, IdempotencyRecord, NewEvent

    schema = await migrated_schema(database_url, "room", "i")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        store = EventStore(pool, schema, producer="test", idempotency_retention=RETENTION)
        cause = Causation("u", "c", "c")

        def joined(user: str) -> list[NewEvent]:
            return [NewEvent(room_events_pb2.ParticipantJoined(user_id=user), datetime.now(UTC), cause)]

        record = IdempotencyRecord("u:Join:r1", "f", b"", expires=True)
        await store.append(
            stream_id="space-s", space_id="s", topic=TOPIC.name, expected_version=0,
            events=joined("a"), idempotency=[record],
        )  # fmt: skip
        async with asyncio.timeout(10), store.exclusive("space-s") as conn:  # waiting on itself: a hang
            with pytest.raises(DuplicateRequest):
                await store.append(
                    stream_id="space-s", space_id="s", topic=TOPIC.name, expected_version=1,
                    events=joined("b"), idempotency=[record], conn=conn,
                )  # fmt: skip
        await _age(store, "u:Join:r1")
        async with asyncio.timeout(10), store.exclusive("space-s") as conn:
            await store.append(
                stream_id="space-s", space_id="s", topic=TOPIC.name, expected_version=1,
                events=joined("b"), idempotency=[record], conn=conn,
            )  # fmt: skip
        assert [r.payload.user_id for r in await store.load("space-s")] == ["a", "b"]
    finally:
        await pool.close()
