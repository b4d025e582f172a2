"""Appending events to streams and reading them back, through asyncpg.

One `append` is one SQL statement, hence one transaction: the events, their
outbox rows and (when the command carried a `request_id`) the stored response
all commit together, or none of them do. A command is acknowledged only after that commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
    def __init__(self, pool: asyncpg.Pool, schema: str, producer: str):
        self.pool = pool
        self.schema = quoted(schema)
        self.producer = producer

    async def load(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        rows = await self.pool.fetch(
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
        row = await self.pool.fetchrow(
            f"SELECT fingerprint, response FROM {self.schema}.idempotency WHERE key = $1", key
        )
        return StoredResponse(row["fingerprint"], bytes(row["response"])) if row else None

    async def stored_responses(self, keys: Sequence[str]) -> dict[str, StoredResponse]:
        if not keys:
            return {}
        rows = await self.pool.fetch(
            f"SELECT key, fingerprint, response FROM {self.schema}.idempotency WHERE key = ANY($1::text[])",
            list(keys),
        )
        return {r["key"]: StoredResponse(r["fingerprint"], bytes(r["response"])) for r in rows}

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
    ) -> list[EventEnvelope]:
        """Appends `events` after `expected_version`, atomically with the outbox.

        The records are keyed by `key`, by default the Space id.
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
        sql = f"""
            WITH appended AS (
                INSERT INTO {s}.events
                    (event_id, stream_id, version, space_id, event_type, occurred_at, topic, record_key, envelope)
                SELECT e.id, $2, e.version, $3, e.type, e.at, $4, $12, e.envelope
                FROM unnest($1::uuid[], $5::bigint[], $6::text[], $7::timestamptz[], $8::bytea[])
                    AS e(id, version, type, at, envelope)
                RETURNING global_position, envelope
            ), queued AS (
                INSERT INTO {s}.outbox (global_position, topic, key, envelope)
                SELECT global_position, $4, $12, envelope FROM appended ORDER BY global_position
            ), remembered AS (
                INSERT INTO {s}.idempotency (key, fingerprint, response)
                SELECT * FROM unnest($9::text[], $10::text[], $11::bytea[])
            )
            SELECT count(*) FROM appended
        """
        try:
            await self.pool.fetchval(
                sql,
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
            )
        except asyncpg.UniqueViolationError as e:
            if "idempotency" in (e.constraint_name or "") or e.table_name == "idempotency":
                raise DuplicateRequest(e.detail or "") from e
            raise ConcurrencyConflict(f"stream {stream_id} moved past version {expected_version}") from e
        return envelopes


def _recorded(row) -> RecordedEvent:
    envelope = EventEnvelope.FromString(bytes(row["envelope"]))
    return RecordedEvent(envelope, unwrap(envelope), row["global_position"])
