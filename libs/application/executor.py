"""The command executor: load a stream, decide, append, answer. Shared by every service.

    state  = fold(evolve, events of the stream)      (cached, topped up from the store)
    events = decide(command, state, context)          (pure; raises DomainError)
    append(events, expected_version)                  (one statement, with the outbox)

Group commit. Commands for one stream queue up behind each other; whoever
arrives first runs the queue in batches: it decides each command in turn on the
state the previous ones produced, then appends all their events and stored
responses in one statement. A hot Space (thousands joining at once) costs one
database round trip per batch, not per command, and each caller still gets
its own answer or its own rejection. A command whose decision fails is
rejected alone; the others in its batch go ahead.

Concurrency with other replicas. The cached state is trusted for the first
try. A concurrent writer makes the append fail on `(stream_id, version)`; the
batch is then decided again on the state reloaded from the store. A stream
that has lost an append is contended: for `contention_seconds` after, each
of its batches is decided and appended holding the stream's lock
(`EventStore.exclusive`), on the state read under it. Two replicas writing one
hot Space then take turns instead of overtaking each other, and the later one
is never refused. After `max_attempts` every caller gets ABORTED. A rejection or a no-op
(a decision with no events, which appends nothing and so meets no version
check) is never returned on the strength of the cache alone: it is confirmed
on fresh state. Otherwise a replica whose cache predates another replica's
removal of a user would answer that user's rejoin "already in".

Idempotency. With a `request_id`, the response is stored in the same
statement as the events, under a unique key. A retry's record collides with
it, so the retry's append fails whole and the caller gets the stored response;
a retry that would now be rejected also gets the stored response. The same id
with a different request is rejected. A record older than the store's retention
counts as absent: a retry after it is a new request.

A call whose caller gave up before its batch was taken (its gRPC call cancelled: the deadline
passed, or the client went away) is dropped, not decided: nobody would be told its outcome, the
client's retry with the same request_id decides it then, and under a load beyond the service's
capacity its time goes to calls that will still be answered, instead of to a queue of calls whose
callers have left (`podium_commands_abandoned_total`). One already in a batch is carried out.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg
from google.protobuf.message import Message

from libs.domain.decider import Context, Decider, fold
from libs.domain.errors import Aborted, DomainError, FieldViolation, InvalidArgument
from libs.domain.identifiers import MAX_ID_LENGTH, id_problem
from libs.domain.reasons import Reason
from libs.events.envelope import Causation
from libs.events.topics import TopicSpec
from libs.eventstore.store import (
    ConcurrencyConflict,
    DuplicateRequest,
    EventStore,
    IdempotencyRecord,
    NewEvent,
    StoredResponse,
)
from libs.telemetry.metrics import COMMAND_CONFLICTS, COMMANDS_ABANDONED

S = TypeVar("S")
C = TypeVar("C")
R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class RequestKey:
    """Identifies one logical request: who sent it, to which method, with which id.

    A client's record `expires` after the store's retention; a reaction's (keyed by
    the event it reacts to, which is read again on every start) is kept.
    """

    key: str
    fingerprint: str
    expires: bool = True

    @classmethod
    def of(cls, user_id: str, method: str, request_id: str, request: Message) -> RequestKey | None:
        if not request_id:
            return None
        if id_problem(request_id) is not None:
            raise InvalidArgument(
                f"request_id must be at most {MAX_ID_LENGTH} printable characters",
                [FieldViolation("request_id", f"at most {MAX_ID_LENGTH} printable characters")],
            )
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
        return cls(f"{user_id}:{method}:{request_id}", digest)


@dataclass
class _Call:
    command: Any
    context: Context
    causation: Causation
    respond: Callable[[Any, list[Message]], Message]
    response_type: type[Message]
    request_key: RequestKey | None
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Stream:
    space_id: str
    key: str
    queue: list[_Call] = field(default_factory=list)


class CommandExecutor(Generic[C, S]):
    def __init__(
        self,
        store: EventStore,
        decider: Decider[C, S],
        topic: TopicSpec,
        *,
        max_attempts: int = 5,
        max_batch: int = 256,
        cache_size: int = 10_000,
        contention_seconds: float = 5.0,
    ):
        self.store = store
        self.decider = decider
        self.topic = topic
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self._cache: OrderedDict[str, tuple[S, int]] = OrderedDict()
        self._cache_size = cache_size
        self._streams: dict[str, _Stream] = {}
        self.contention_seconds = contention_seconds
        self._contended: dict[str, float] = {}  # stream -> until when it is written under its lock
        self._draining: set[asyncio.Task] = set()
        self.stats = {
            "commands": 0,
            "appends": 0,
            "conflicts": 0,
            "replayed": 0,
            "exclusive": 0,
            "abandoned": 0,
        }

    async def load(
        self, stream_id: str, *, refresh: bool = True, conn: asyncpg.Connection | None = None
    ) -> tuple[S, int]:
        """The stream's state and version: the cached value, topped up from the store (on `conn`,
        when given: inside the caller's transaction).

        With `refresh=False` a cached stream is trusted as it is; the append's
        version check still catches a stale cache.
        """
        cached = self._cache.get(stream_id)
        if cached is not None and not refresh:
            return cached
        state, version = cached or (self.decider.initial_state, 0)
        recorded = await self.store.load(stream_id, after_version=version, conn=conn)
        if recorded:
            state = fold(self.decider.evolve, state, ((r.payload, r.occurred_at) for r in recorded))
            version = recorded[-1].version
        self._remember(stream_id, state, version)
        return state, version

    async def execute(
        self,
        *,
        stream_id: str,
        space_id: str,
        command: C,
        context: Context,
        causation: Causation,
        respond: Callable[[S, list[Message]], R],
        response_type: type[R],
        request_key: RequestKey | None = None,
        key: str | None = None,
    ) -> R:
        """Runs one command; returns `respond(state after, events)` or raises its rejection.

        The stream's records are keyed by `key` on the topic (default: the Space id).
        """
        call = _Call(command, context, causation, respond, response_type, request_key)
        self.stats["commands"] += 1
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._streams[stream_id] = _Stream(space_id, key if key is not None else space_id)
            stream.queue.append(call)
            # Held until done: the loop keeps only a weak reference to a task.
            task = asyncio.get_running_loop().create_task(self._drain(stream_id, stream))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        else:
            stream.queue.append(call)
        return await call.future

    async def _drain(self, stream_id: str, stream: _Stream) -> None:
        try:
            while stream.queue:
                batch, rest, abandoned = _take_batch(stream.queue, self.max_batch)
                stream.queue[:] = rest
                if abandoned:
                    self.stats["abandoned"] += abandoned
                    COMMANDS_ABANDONED.labels(self.topic.name).inc(abandoned)
                if not batch:
                    continue
                try:
                    await self._run_batch(stream_id, stream, batch)
                except BaseException as e:  # an unexpected failure answers every waiting caller
                    for call in batch:
                        if not call.future.done():
                            call.future.set_exception(e)
                    if isinstance(e, asyncio.CancelledError):
                        raise
        finally:
            for call in stream.queue:
                if not call.future.done():
                    call.future.set_exception(
                        Aborted("the service is shutting down", reason=Reason.SHUTTING_DOWN)
                    )
            self._streams.pop(stream_id, None)

    async def _run_batch(self, stream_id: str, stream: _Stream, batch: list[_Call]) -> None:
        # Retries are not looked up first: a retry's idempotency record collides with the
        # stored one, which fails the whole append (DuplicateRequest), and then it is answered
        # from the store. That saves a round trip on every batch that is not a retry.
        pending = batch
        trust_cache = True
        for _attempt in range(self.max_attempts):
            if not pending:
                return
            try:
                if self._is_contended(stream_id):
                    self.stats["exclusive"] += 1
                    async with self.store.exclusive(stream_id) as conn:
                        decided = await self._decide_and_append(stream_id, stream, pending, False, conn)
                else:
                    decided = await self._decide_and_append(stream_id, stream, pending, trust_cache, None)
                if decided is not None and decided[1] is not None:  # committed: the cache follows
                    self._remember(stream_id, *decided[1])
            except ConcurrencyConflict:
                self.stats["conflicts"] += 1
                COMMAND_CONFLICTS.labels(self.topic.name).inc()
                self._mark_contended(stream_id)
                trust_cache = False
                continue
            except DuplicateRequest:
                # Another replica answered one of these requests first: answer from its record.
                pending = await self._answer_retries(pending)
                trust_cache = False
                continue
            if decided is None:  # a rejection on cached state: decide again on fresh state
                trust_cache = False
                continue
            outcomes = decided[0]
            retried = [c for c, o in outcomes if isinstance(o, BaseException) and c.request_key]
            if retried:
                await self._answer_retries(retried)
            for call, outcome in outcomes:
                if call.future.done():  # a rejected retry, answered with its first result
                    continue
                if isinstance(outcome, BaseException):
                    call.future.set_exception(outcome)
                else:
                    call.future.set_result(outcome)
            return
        for call in pending:
            call.future.set_exception(
                Aborted(
                    f"stream {stream_id} kept changing under {self.max_attempts} attempts; retry the call",
                    reason=Reason.CONCURRENCY_CONFLICT,
                )
            )

    def _mark_contended(self, stream_id: str) -> None:
        now = time.monotonic()
        self._contended[stream_id] = now + self.contention_seconds
        if len(self._contended) > self._cache_size:  # streams that conflicted once, long ago
            for stale in [s for s, until in self._contended.items() if until <= now]:
                del self._contended[stale]

    def _is_contended(self, stream_id: str) -> bool:
        until = self._contended.get(stream_id)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._contended[stream_id]
        return False

    async def _decide_and_append(
        self,
        stream_id: str,
        stream: _Stream,
        pending: list[_Call],
        trust_cache: bool,
        conn: asyncpg.Connection | None,
    ) -> tuple[list[tuple[_Call, Message | BaseException]], tuple[S, int] | None] | None:
        """One attempt: decides `pending` on the stream's state and appends what they decided.
        The outcomes and, when it appended, the state and version after; None when a decision on
        cached state must be made again on fresh state. The caller caches the state only once it
        is committed: a cache ahead of the store would make the next append leave a gap.
        Raises ConcurrencyConflict or DuplicateRequest from the append."""
        state, version = await self.load(stream_id, refresh=not trust_cache, conn=conn)
        decided = self._decide_all(pending, state, trusted=trust_cache)
        if decided is None:
            return None
        new_state, events, records, outcomes = decided
        if not (events or records):
            return outcomes, None
        await self.store.append(
            stream_id=stream_id,
            space_id=stream.space_id,
            topic=self.topic.name,
            expected_version=version,
            events=events,
            idempotency=records,
            key=stream.key,
            conn=conn,
        )
        self.stats["appends"] += 1
        return outcomes, (new_state, version + len(events))

    def _decide_all(self, calls: list[_Call], state: S, *, trusted: bool):
        events: list[NewEvent] = []
        records: list[IdempotencyRecord] = []
        outcomes: list[tuple[_Call, Message | BaseException]] = []
        for call in calls:
            try:
                decided = self.decider.decide(call.command, state, call.context)
            except DomainError as rejection:
                if trusted:
                    return None
                outcomes.append((call, rejection))
                continue
            if not decided and trusted:
                return None
            now: datetime = call.context.now
            state = fold(self.decider.evolve, state, ((e, now) for e in decided))
            response = call.respond(state, decided)
            events.extend(NewEvent(e, now, call.causation) for e in decided)
            if call.request_key:
                records.append(
                    IdempotencyRecord(
                        call.request_key.key,
                        call.request_key.fingerprint,
                        response.SerializeToString(),
                        expires=call.request_key.expires,
                    )
                )
            outcomes.append((call, response))
        return state, events, records, outcomes

    async def _answer_retries(self, calls: list[_Call]) -> list[_Call]:
        """Answers calls whose request_id was already answered; returns the rest."""
        keys = [c.request_key.key for c in calls if c.request_key]
        stored = await self.store.stored_responses(keys) if keys else {}
        rest = []
        for call in calls:
            record = stored.get(call.request_key.key) if call.request_key else None
            if record is None:
                rest.append(call)
                continue
            self.stats["replayed"] += 1
            try:
                call.future.set_result(_replay(record, call.request_key, call.response_type()))
            except InvalidArgument as e:
                call.future.set_exception(e)
        return rest

    def _remember(self, stream_id: str, state: S, version: int) -> None:
        self._cache[stream_id] = (state, version)
        self._cache.move_to_end(stream_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _take_batch(queue: list[_Call], limit: int) -> tuple[list[_Call], list[_Call], int]:
    """Up to `limit` calls from the front, leaving a repeated request_id for the next batch, and
    how many calls were dropped: those whose caller gave up (see the module's docstring)."""
    batch, rest, keys, abandoned = [], [], set(), 0
    for call in queue:
        if call.future.done():
            abandoned += 1
            continue
        key = call.request_key.key if call.request_key else None
        if len(batch) >= limit or (key is not None and key in keys):
            rest.append(call)
            continue
        if key is not None:
            keys.add(key)
        batch.append(call)
    return batch, rest, abandoned


def _replay(stored: StoredResponse, request_key: RequestKey, parsed: Message) -> Message:
    if stored.fingerprint != request_key.fingerprint:
        raise InvalidArgument(
            "request_id was already used for a different request; use a new request_id",
            reason=Reason.REQUEST_ID_REUSED,
        )
    parsed.ParseFromString(stored.response)
    return parsed
