"""Appending events to streams and reading them back, through asyncpg.

One `append` is one SQL statement, hence one transaction: the events, their
outbox rows and (when the command carried a `request_id`) the stored response
all commit together, or none of them do. A command is acknowledged only after that commit.

Writers of one stream exclude each other while they append: every append
takes the stream's transaction-scoped advisory lock first, in the same
statement. A writer that keeps losing its stream to another replica takes the
same lock for a whole decision instead (`exclusive`): it reads what is new,
decides and appends while no one else can, so its append cannot lose.

Stored responses expire: a record older than `idempotency_retention` is treated
as absent by every lookup and by `append` (which replaces it), whether or not
`purge_expired_responses` has deleted it yet. Records with `expires=False` (the
reactions to other services' events) are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from google.protobuf.message import Message

from libs.events.envelope import Causation, EventEnvelope, occurred_at, unwrap, wrap
from libs.eventstore.schema import quoted


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream first; reload and decide again."""


class DuplicateRequest(Exception):
    """The idempotency key was stored by a concurrent call; its response wins."""


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    response: bytes


@dataclass(frozen=True)
class IdempotencyRecord:
    key: str
    fingerprint: str
    response: bytes
    expires: bool = True


@dataclass(frozen=True)
class NewEvent:
    """An event to append: its payload, when it happened and what caused it."""

    payload: Message
    occurred_at: datetime
    causation: Causation


@dataclass(frozen=True)
class RecordedEvent:
    envelope: EventEnvelope
    payload: Message
    global_position: int

    @property
    def version(self) -> int:
        return self.envelope.stream_version

    @property
    def occurred_at(self) -> datetime:
        return occurred_at(self.envelope)


class EventStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        producer: str,
        *,
        idempotency_retention: timedelta = timedelta(days=1),
    ):
        self.pool = pool
        self.schema = quoted(schema)
        self.producer = producer
        self.idempotency_retention = idempotency_retention
        # A stored response still stands: kept for ever, or younger than the retention ($2).
        self._live = _live("$2")

    async def load(
        self, stream_id: str, after_version: int = 0, *, conn: asyncpg.Connection | None = None
    ) -> list[RecordedEvent]:
        rows = await (conn or self.pool).fetch(
            f"SELECT envelope, global_position FROM {self.schema}.events "
            "WHERE stream_id = $1 AND version > $2 ORDER BY version",
            stream_id,
            after_version,
        )
        return [_recorded(r) for r in rows]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's latest version (0 when it has no events)."""
        return await self.pool.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {self.schema}.events WHERE stream_id = $1", stream_id
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        rows = await self.pool.fetch(
            f"SELECT envelope, global_position FROM {self.schema}.events "
            "WHERE global_position > $1 ORDER BY global_position LIMIT $2",
            after_position,
            limit,
        )
        return [_recorded(r) for r in rows]

    async def stored_response(self, key: str) -> StoredResponse | None:
        return (await self.stored_responses([key])).get(key)

    async def stored_responses(self, keys: Sequence[str]) -> dict[str, StoredResponse]:
        """The responses stored under `keys`, leaving out those older than the retention."""
        if not keys:
            return {}
        rows = await self.pool.fetch(
            f"SELECT key, fingerprint, response FROM {self.schema}.idempotency "
            f"WHERE key = ANY($1::text[]) AND {self._live}",
            list(keys),
            self.idempotency_retention,
        )
        return {r["key"]: StoredResponse(r["fingerprint"], bytes(r["response"])) for r in rows}

    async def purge_expired_responses(self, limit: int = 1000) -> int:
        """Deletes up to `limit` of the oldest expired records; returns how many.

        Safe on every replica at once: rows another purge holds are skipped, not waited for.
        """
        return await self.pool.fetchval(
            f"""
            WITH doomed AS (
                SELECT key FROM {self.schema}.idempotency
                WHERE expires AND created_at <= now() - $1::interval
                ORDER BY created_at LIMIT $2
                FOR UPDATE SKIP LOCKED
            ), purged AS (
                DELETE FROM {self.schema}.idempotency i USING doomed WHERE i.key = doomed.key RETURNING 1
            )
            SELECT count(*) FROM purged
            """,
            self.idempotency_retention,
            limit,
        )

    async def remember(self, conn: asyncpg.Connection, record: IdempotencyRecord) -> None:
        """Stores a response without events, inside the caller's transaction on `conn`, for a
        change kept outside the event log (say, a table the service owns) that must be made once
        per `request_id`. Raises DuplicateRequest when a live record holds the key (a concurrent
        retry won: roll back and answer with its response); an expired one is replaced."""
        await conn.execute(
            f"DELETE FROM {self.schema}.idempotency WHERE key = $1 AND NOT {self._live}",
            record.key,
            self.idempotency_retention,
        )
        try:
            await conn.execute(
                f"INSERT INTO {self.schema}.idempotency (key, fingerprint, response, expires) "
                "VALUES ($1, $2, $3, $4)",
                record.key,
                record.fingerprint,
                record.response,
                record.expires,
            )
        except asyncpg.UniqueViolationError as e:
            raise DuplicateRequest(e.detail or "") from e

    def lock_key(self, stream_id: str) -> int:
        """The stream's advisory lock: a stable 64-bit hash of schema and stream (a collision only
        makes two streams wait for each other)."""
        digest = hashlib.blake2b(f"{self.schema}:{stream_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @contextlib.asynccontextmanager
    async def exclusive(self, stream_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that holds the stream's lock: `load` and `append` on the connection it
        gives see and write the stream with no other writer in between. Committed on exit;
        rolled back on an exception.

        It is what a contended stream pays for every batch, so BEGIN and the lock go in one round
        trip: one simple-protocol query of two statements (that protocol takes no parameters; the
        key is an integer made here). asyncpg's `conn.transaction()` refuses to nest inside a
        transaction it did not begin, so a body cannot open a savepoint that way."""
        async with self.pool.acquire() as conn:
            try:
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(self.lock_key(stream_id))})")
                yield conn
            except BaseException:
                # As asyncpg's own transactions do, on any way out; should the rollback fail too,
                # the pool rolls back (or closes) the connection on release.
                if not conn.is_closed() and conn.is_in_transaction():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def append(
        self,
        *,
        stream_id: str,
        space_id: str,
        topic: str,
        expected_version: int,
        events: Sequence[NewEvent],
        idempotency: Sequence[IdempotencyRecord] = (),
        key: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> list[EventEnvelope]:
        """Appends `events` after `expected_version`, atomically with the outbox.

        The records are keyed by `key`, by default the Space id. With `conn` (from `exclusive`),
        inside that transaction.
        Raises ConcurrencyConflict if the stream moved on, and DuplicateRequest
        if a concurrent call stored one of the idempotency keys first.
        """
        envelopes = [
            wrap(
                event.payload,
                producer=self.producer,
                stream_id=stream_id,
                version=expected_version + i + 1,
                space_id=space_id,
                occurred_at=event.occurred_at,
                causation=event.causation,
            )
            for i, event in enumerate(events)
        ]
        s = self.schema
        # One statement, so one round trip and atomic without an explicit transaction:
        # the events, their outbox rows (which wake the relay) and the stored responses.
        # The stream's lock is taken before any row is made (the insert reads `locked` first), so
        # an `exclusive` writer's decision is never overtaken. Expired records under the request's
        # keys are deleted before the new ones are inserted (`remembered` reads `forgotten` first),
        # so a request retried after the retention is a new request, purged or not; the insert
        # then fails only on a live record. Nothing in it is expected to fail but a conflict, so it
        # needs no savepoint inside an `exclusive` transaction: a failure ends that transaction.
        sql = f"""
            WITH locked AS MATERIALIZED (
                SELECT pg_advisory_xact_lock($14::bigint)
            ), forgotten AS MATERIALIZED (
                DELETE FROM {s}.idempotency
                WHERE key = ANY($9::text[]) AND NOT {_live("$15")}
                RETURNING 1
            ), appended AS (
                INSERT INTO {s}.events
                    (event_id, stream_id, version, space_id, event_type, occurred_at, topic, record_key, envelope)
                SELECT e.id, $2, e.version, $3, e.type, e.at, $4, $12, e.envelope
                FROM locked, unnest($1::uuid[], $5::bigint[], $6::text[], $7::timestamptz[], $8::bytea[])
                    AS e(id, version, type, at, envelope)
                RETURNING global_position, envelope
            ), queued AS (
                INSERT INTO {s}.outbox (global_position, topic, key, envelope)
                SELECT global_position, $4, $12, envelope FROM appended ORDER BY global_position
            ), remembered AS (
                INSERT INTO {s}.idempotency (key, fingerprint, response, expires)
                SELECT r.* FROM unnest($9::text[], $10::text[], $11::bytea[], $13::boolean[]) AS r
                WHERE (SELECT count(*) FROM forgotten) >= 0
            )
            SELECT count(*) FROM appended
        """
        args = (
            [e.event_id for e in envelopes],
            stream_id,
            space_id,
            topic,
            [e.stream_version for e in envelopes],
            [e.event_type for e in envelopes],
            [e.occurred_at for e in events],
            [e.SerializeToString() for e in envelopes],
            [r.key for r in idempotency],
            [r.fingerprint for r in idempotency],
            [r.response for r in idempotency],
            key if key is not None else space_id,
            [r.expires for r in idempotency],
            self.lock_key(stream_id),
            self.idempotency_retention,
        )
        try:
            await (conn or self.pool).fetchval(sql, *args)
        except asyncpg.UniqueViolationError as e:
            if "idempotency" not in (e.constraint_name or "") and e.table_name != "idempotency":
                raise ConcurrencyConflict(f"stream {stream_id} moved past version {expected_version}") from e
            raise DuplicateRequest(e.detail or "") from e  # a live record: a retry, or a race
        return envelopes


def _live(retention: str) -> str:
    """Whether a stored response still stands: kept for ever, or younger than the retention (the
    query's parameter `retention`)."""
    return f"(NOT expires OR created_at > now() - {retention}::interval)"


def _recorded(row) -> RecordedEvent:
    envelope = EventEnvelope.FromString(bytes(row["envelope"]))
    return RecordedEvent(envelope, unwrap(envelope), row["global_position"])
