"""Mutations of a service's own tables, made once per `request_id` (as the command executor does
for events).

    response = await once(store, key, ResponseType, work)      # work(conn) -> response

Without a key, `work` runs in a transaction. With one, a live stored response
answers a retry (the same id with a different request is INVALID_ARGUMENT
`REQUEST_ID_REUSED`); otherwise `work` runs and its response is stored in the
same transaction (`EventStore.remember`), so the change and the record of it
commit together. Of two concurrent calls with the same id, one commits and the
other gets its response. Records expire after the store's retention, as for
commands.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message

from libs.application.executor import RequestKey
from libs.domain.errors import Aborted, InvalidArgument
from libs.domain.reasons import Reason
from libs.eventstore.store import DuplicateRequest, EventStore, IdempotencyRecord, StoredResponse

R = TypeVar("R", bound=Message)


async def once(
    store: EventStore,
    key: RequestKey | None,
    response_type: type[R],
    work: Callable[[asyncpg.Connection], Awaitable[R]],
) -> R:
    if key is not None and (stored := await store.stored_response(key.key)) is not None:
        return _replayed(stored, key, response_type)
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            response = await work(conn)
            if key is not None:
                await store.remember(
                    conn, IdempotencyRecord(key.key, key.fingerprint, response.SerializeToString())
                )
            return response
    except DuplicateRequest:
        assert key is not None
        stored = await store.stored_response(key.key)
        if stored is None:  # expired in between: vanishingly rare
            raise Aborted(
                "a concurrent call with this request_id interfered; retry", reason=Reason.CONCURRENCY_CONFLICT
            ) from None
        return _replayed(stored, key, response_type)


def _replayed(stored: StoredResponse, key: RequestKey, response_type: type[R]) -> R:
    if stored.fingerprint != key.fingerprint:
        raise InvalidArgument(
            "request_id was already used for a different request; use a new request_id",
            reason=Reason.REQUEST_ID_REUSED,
        )
    return response_type.FromString(stored.response)
