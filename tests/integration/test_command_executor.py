"""The command executor against a real PostgreSQL: group commit, limits under
concurrency, two replicas racing, and idempotent retries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest
from google.protobuf.empty_pb2 import Empty
from google.protobuf.wrappers_pb2 import Int64Value
from prometheus_client import REGISTRY

from libs.application.executor import CommandExecutor, RequestKey
from libs.domain.decider import Context, Decider
from libs.domain.errors import InvalidArgument, ResourceExhausted
from libs.domain.reasons import Reason
from libs.events.envelope import Causation
from libs.events.topics import TopicSpec
from libs.eventstore.store import EventStore, NewEvent
from podium.room.v1 import room_events_pb2
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

CAPACITY = 100
TOPIC = TopicSpec("test.executor.v1", "unused: no relay runs here")


@dataclass(frozen=True)
class Join:
    user_id: str


@dataclass(frozen=True)
class Leave:
    user_id: str


def decide(command: Join | Leave, members: frozenset, ctx: Context):
    if isinstance(command, Leave):
        in_ = command.user_id in members
        return [room_events_pb2.ParticipantLeft(space_id="s", user_id=command.user_id)] if in_ else []
    if command.user_id in members:
        return []
    if len(members) >= CAPACITY:
        raise ResourceExhausted("full", reason=Reason.SPEAKER_LIMIT_REACHED)
    return [room_events_pb2.ParticipantJoined(space_id="s", user_id=command.user_id)]


def evolve(members: frozenset, event, _at) -> frozenset:
    if isinstance(event, room_events_pb2.ParticipantLeft):
        return members - {event.user_id}
    return members | {event.user_id}


DECIDER = Decider(decide, evolve, frozenset())
DECIDER_UNBOUNDED = Decider(
    lambda command, members, ctx: decide(command, frozenset(), ctx), evolve, frozenset()
)


@pytest.fixture
async def store(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    schema = await migrated_schema(database_url, "room", "x")  # a schema with an event store
    yield EventStore(pool, schema, producer="test")
    await pool.close()


def _join(executor: CommandExecutor, user: str, request_id: str = "", stream: str = "space-s", command=Join):
    request = Int64Value(value=hash(user) % 1000)
    return executor.execute(
        stream_id=stream,
        space_id="s",
        command=command(user),
        context=Context(user, datetime.now(UTC)),
        causation=Causation(user, "corr", "cause"),
        respond=lambda members, _events: Int64Value(value=len(members)),
        response_type=Int64Value,
        request_key=RequestKey.of(user, "Join", request_id, request),
    )


def _conflicts() -> float:
    return REGISTRY.get_sample_value("podium_command_conflicts_total", {"topic": TOPIC.name}) or 0.0


async def _versions(store: EventStore, stream: str = "space-s") -> list[int]:
    return [r.version for r in await store.load(stream)]


async def test_concurrent_commands_on_one_stream_are_batched_and_applied_once(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    results = await asyncio.gather(*(_join(executor, f"u{i}") for i in range(CAPACITY)))
    assert sorted(r.value for r in results) == list(range(1, CAPACITY + 1))
    assert await _versions(store) == list(range(1, CAPACITY + 1))
    assert executor.stats["appends"] < CAPACITY / 2, executor.stats


async def test_a_limit_holds_under_concurrency_and_rejections_are_individual(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    results = await asyncio.gather(
        *(_join(executor, f"u{i}") for i in range(CAPACITY + 30)), return_exceptions=True
    )
    rejected = [r for r in results if isinstance(r, ResourceExhausted)]
    assert len(rejected) == 30
    assert len(await _versions(store)) == CAPACITY


async def test_two_replicas_racing_on_one_stream_lose_nothing_and_duplicate_nothing(store):
    replicas = [CommandExecutor(store, DECIDER, TOPIC, max_attempts=50) for _ in range(2)]
    await asyncio.gather(*(_join(replicas[i % 2], f"u{i}") for i in range(80)))
    loaded = await store.load("space-s")
    assert [r.version for r in loaded] == list(range(1, 81))
    assert sorted(r.payload.user_id for r in loaded) == sorted(f"u{i}" for i in range(80))


async def test_a_stale_cache_never_causes_a_wrong_rejection(store):
    a, b = CommandExecutor(store, DECIDER, TOPIC), CommandExecutor(store, DECIDER, TOPIC)
    await asyncio.gather(*(_join(a, f"u{i}") for i in range(CAPACITY - 1)))
    await _join(b, "late")  # b fills the last seat; a's cache still shows one free
    with pytest.raises(ResourceExhausted):
        await _join(a, "one-too-many")
    await _join(a, "late")  # a no-op on fresh state, not a rejection


async def test_a_stale_cache_never_answers_already_done(store):
    """A command that changes nothing on a replica's cached state appends nothing, so no version
    check would catch a stale cache: it is decided again on fresh state. Otherwise a user another
    replica took out, rejoining through this one, would be told "already in"."""
    a, b = CommandExecutor(store, DECIDER, TOPIC), CommandExecutor(store, DECIDER, TOPIC)
    await _join(a, "alice")  # a caches alice in
    await _join(b, "alice", command=Leave)  # b takes her out
    rejoined = await _join(a, "alice")
    assert rejoined.value == 1
    assert [r.payload.DESCRIPTOR.name for r in await store.load("space-s")] == [
        "ParticipantJoined",
        "ParticipantLeft",
        "ParticipantJoined",
    ]


async def test_an_append_that_lost_the_race_is_counted_for_operators(store):
    """`podium_command_conflicts_total{topic}`: what a second replica writing one stream costs."""
    a, b = CommandExecutor(store, DECIDER, TOPIC), CommandExecutor(store, DECIDER, TOPIC)
    await _join(a, "first")  # a caches the stream at version 1
    await _join(b, "second")  # b moves it to 2
    before = _conflicts()
    await _join(a, "third")  # a appends at 1 on its cache, loses, decides again and appends at 3
    assert _conflicts() == before + 1
    assert a.stats["conflicts"] == 1
    assert await _versions(store) == [1, 2, 3]


async def test_a_writer_holding_the_streams_lock_is_never_overtaken(store):
    """Every append takes the stream's lock first, so a decision made under `exclusive` cannot
    lose its version to another replica's append: that one waits, then loses and goes again."""
    a, b = CommandExecutor(store, DECIDER, TOPIC), CommandExecutor(store, DECIDER, TOPIC)
    await _join(a, "first")
    await _join(b, "second")  # b's cache: version 2
    async with store.exclusive("space-s") as conn:
        (recorded,) = [r.version for r in await store.load("space-s", after_version=2, conn=conn)] or [None]
        assert recorded is None
        waiting = asyncio.create_task(_join(b, "waits"))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # its append waits for the lock
        await store.append(
            stream_id="space-s",
            space_id="s",
            topic=TOPIC.name,
            expected_version=2,
            events=[
                NewEvent(
                    room_events_pb2.ParticipantJoined(space_id="s", user_id="held"),
                    datetime.now(UTC),
                    Causation("t", "c", "c"),
                )
            ],
            conn=conn,
        )
    assert (await waiting).value == 4
    assert b.stats["conflicts"] == 1
    assert [r.payload.user_id for r in await store.load("space-s")] == ["first", "second", "held", "waits"]


async def test_two_replicas_on_one_hot_stream_take_turns_instead_of_giving_up(store):
    """After its first lost append a replica writes the contended stream under its lock, so two
    replicas under steady load conflict a few times, not on every batch, and nobody gets ABORTED
    (each has only the default five attempts)."""
    a, b = (CommandExecutor(store, DECIDER_UNBOUNDED, TOPIC) for _ in range(2))
    for wave in range(25):
        await asyncio.gather(*(_join((a, b)[i % 2], f"w{wave}-{i}") for i in range(16)))
    loaded = await store.load("space-s")
    assert [r.version for r in loaded] == list(range(1, 401))
    assert len({r.payload.user_id for r in loaded}) == 400
    assert a.stats["conflicts"] + b.stats["conflicts"] <= 4, (a.stats, b.stats)
    assert a.stats["exclusive"] + b.stats["exclusive"] > 0


async def test_retries_with_the_same_request_id_return_the_first_answer_and_write_nothing(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    first = await _join(executor, "alice", request_id="r-1")
    await _join(executor, "bob")
    again = await asyncio.gather(*(_join(executor, "alice", request_id="r-1") for _ in range(5)))
    fresh_replica = CommandExecutor(store, DECIDER, TOPIC)
    later = await _join(fresh_replica, "alice", request_id="r-1")
    assert first.value == 1 and all(r.value == 1 for r in again) and later.value == 1
    assert await _versions(store) == [1, 2]


async def test_a_reused_request_id_with_a_different_request_is_rejected(store):
    executor = CommandExecutor(store, DECIDER, TOPIC)
    await _join(executor, "alice", request_id="r-1")
    call = executor.execute(
        stream_id="space-s",
        space_id="s",
        command=Join("alice"),
        context=Context("alice", datetime.now(UTC)),
        causation=Causation("alice", "c", "c"),
        respond=lambda members, _e: Empty(),
        response_type=Empty,
        request_key=RequestKey.of("alice", "Join", "r-1", Int64Value(value=-5)),
    )
    with pytest.raises(InvalidArgument, match="request_id"):
        await call


async def test_a_reaction_reports_only_what_it_appended_itself(store):
    """A cause already answered (its record stored by another replica, or an earlier read of the
    same event) returns no events, so a reaction never counts what it did not do; one cause may
    run on several streams when each run has a key of its own."""
    from libs.application.issuer import CommandIssuer

    replicas = [CommandIssuer(CommandExecutor(store, DECIDER, TOPIC), "system:test") for _ in range(2)]
    first = await replicas[0].as_system(
        stream_id="space-s", space_id="s", command=Join("ann"), causation_id="event-1", once_per_cause=True
    )
    assert [e.user_id for e in first] == ["ann"]
    # Decided afresh (bob is not in), refused at the append by the stored record, answered from it.
    again = await replicas[1].as_system(
        stream_id="space-s", space_id="s", command=Join("bob"), causation_id="event-1", once_per_cause=True
    )
    assert again == []
    elsewhere = await replicas[1].as_system(
        stream_id="space-t",
        space_id="s",
        command=Join("ann"),
        causation_id="event-1",
        once_per_cause=True,
        once_key="event-1@space-t",
    )
    assert [e.user_id for e in elsewhere] == ["ann"]
    assert await _versions(store) == [1] and await _versions(store, "space-t") == [1]


def _abandoned() -> float:
    return REGISTRY.get_sample_value("podium_commands_abandoned_total", {"topic": TOPIC.name}) or 0.0


async def test_a_call_whose_caller_gave_up_before_its_batch_is_not_carried_out(store):
    """A gRPC call cancelled while its command waits in the stream's queue (its deadline passed)
    is dropped, not decided: under overload the service's time goes to calls still awaited. Its
    retry, with the same request_id, is decided then, once."""
    executor = CommandExecutor(store, DECIDER, TOPIC)
    before = _abandoned()
    async with store.exclusive("space-s"):  # the first batch's append waits for this lock
        first = asyncio.create_task(_join(executor, "first", request_id="r-first"))
        await asyncio.sleep(0.2)
        queued = {user: asyncio.create_task(_join(executor, user, request_id=f"r-{user}")) for user in "abc"}
        await asyncio.sleep(0.05)
        queued["b"].cancel()  # the client went away; its command is still queued behind `first`
        await asyncio.sleep(0.05)
        assert not first.done()
    assert (await first).value == 1
    assert [(await queued[u]).value for u in "ac"] == [2, 3]
    assert queued["b"].cancelled()
    assert [r.payload.user_id for r in await store.load("space-s")] == ["first", "a", "c"]
    assert executor.stats["abandoned"] == 1
    assert _abandoned() == before + 1

    retried = await _join(executor, "b", request_id="r-b")
    assert retried.value == 4
    assert await _join(executor, "b", request_id="r-b") == retried  # answered from the first answer
    assert [r.payload.user_id for r in await store.load("space-s")] == ["first", "a", "c", "b"]
