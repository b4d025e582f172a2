"""Listeners joining a Space through its listener shard streams (ADR 0012), against real PostgreSQL.

Not yet through the API (JoinSpace still appends to the Space's own stream): the room's
`ListenerShards` on the room's event store, as two replicas would run it. Joins spread over the
shards, each user is in once whatever the retries and the replica that took them, a growth
leaves everyone in where they joined, and what the store holds, folded as the room's directory
folds it, counts every listener.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from google.protobuf.message import Message

from libs.auth.tokens import Identity
from libs.domain.errors import PermissionDenied
from libs.domain.streams import is_space_stream, listener_shard_stream, shard_of
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Caller
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Tracking
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_service_pb2 as pb
from podium.room.v1 import room_types_pb2 as types
from services.room.application.listener_shards import OTHER_LANES_SECONDS, ListenerShards, on_shards
from services.room.application.space_commands import SpaceCommands
from services.room.domain import commands as c
from services.room.domain.limits import RoomLimits
from services.room.domain.listener_shard import shard_in_lane, streams_of
from services.room.projections.space_directory import SpaceDirectory
from tests.support.schemas import migrated_schema

pytestmark = pytest.mark.integration

SPACE, HOST = "hot", "host"
LISTENERS = [f"user-{n}" for n in range(300)]


@pytest.fixture
async def pool(private_database_url):
    pool = await asyncpg.create_pool(private_database_url, min_size=2, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def schema(private_database_url):
    return await migrated_schema(private_database_url, "room", prefix="listener_shards")


def caller(user: str) -> Caller:
    return Caller(Identity(user, frozenset(), {}), "", "", "", {})


async def _as(commands: SpaceCommands, user: str, command, request_id: str = "") -> None:
    def respond(_state, _events) -> Message:
        return pb.EndSpaceResponse()

    await commands.run(
        SPACE,
        command,
        caller(user),
        method=type(command).__name__,
        request=pb.EndSpaceRequest(space_id=SPACE),
        request_id=request_id,
        respond=respond,
        response_type=pb.EndSpaceResponse,
    )


def _answer(user: str):
    def respond(state, _events) -> pb.JoinSpaceResponse:
        return pb.JoinSpaceResponse(role=state.role_of(user))

    return respond


async def _join(replica: tuple[SpaceCommands, ListenerShards], user: str, request_id: str = ""):
    """JoinSpace as the API runs it: routed by the Space's own stream to the user's shard."""
    commands, _ = replica
    assert on_shards(await commands.current(SPACE), user)
    return await commands.run(
        SPACE,
        c.JoinSpace(SPACE),
        caller(user),
        method="JoinSpace",
        request=pb.JoinSpaceRequest(space_id=SPACE, request_id=request_id),
        request_id=request_id,
        respond=_answer(user),
        response_type=pb.JoinSpaceResponse,
    )


async def _everything(pool, schema: str) -> list[tuple[str, int, str, str]]:
    """(stream, version, event type, user) of every event in the store, in the store's order."""
    recorded = await EventStore(pool, schema, producer="room").read_all(limit=100_000)
    return [
        (
            r.envelope.stream_id,
            r.envelope.stream_version,
            r.envelope.event_type,
            getattr(r.payload, "user_id", ""),
        )
        for r in recorded
    ]


async def _directory_row(pool, store: EventStore, schema: str) -> types.Space:
    """The store's events applied, in the store's order, by the room's directory."""
    directory = SpaceDirectory(pool, store, schema)
    recorded = await store.read_all(limit=100_000)
    batch = [ConsumedEvent(r.envelope, r.payload, "room", 0, n) for n, r in enumerate(recorded)]
    tracking = Tracking(schema, directory.name, directory.version)
    async with pool.acquire() as conn, conn.transaction():
        await directory.apply(conn, batch)
        await tracking.record(
            conn, {}, {("room", e.envelope.stream_id): e.envelope.stream_version for e in batch}
        )
    row = await pool.fetchval(f"SELECT space FROM {schema}.space_directory_v2 WHERE space_id = $1", SPACE)
    return types.Space.FromString(row)


async def test_a_join_storm_spreads_over_the_shards_and_everyone_is_in_once(pool, schema):
    limits = RoomLimits()
    replicas = []
    for _ in range(2):  # two room replicas on one store
        store = EventStore(pool, schema, producer="room")
        commands = SpaceCommands(store, limits)
        replicas.append((commands, commands.shards))
    first = replicas[0][0]
    await _as(first, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(first, HOST, c.StartSpace(SPACE))
    await first.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test: a rush")

    answers = await asyncio.gather(
        *(_join(replicas[n % 2], user, request_id=f"r-{user}") for n, user in enumerate(LISTENERS))
    )
    assert {a.role for a in answers} == {types.ROLE_LISTENER}
    # Retries, to the other replica: answered from the first answer, nothing appended again.
    again = await asyncio.gather(
        *(_join(replicas[(n + 1) % 2], user, request_id=f"r-{user}") for n, user in enumerate(LISTENERS[:50]))
    )
    assert {a.role for a in again} == {types.ROLE_LISTENER}

    log = await _everything(pool, schema)
    joins = [(stream, user) for stream, _, kind, user in log if kind.endswith("ParticipantJoined")]
    per_stream = Counter(stream for stream, _ in joins)
    assert per_stream[f"space-{SPACE}"] == 1  # the host's, on the Space's own stream
    assert sorted(per_stream) == sorted([f"space-{SPACE}", *(f"space-{SPACE}/l{k}" for k in range(4))])
    assert len(joins) == len(LISTENERS) + 1
    for stream in per_stream:  # each stream numbered 1.. without gaps
        versions = sorted(v for s, v, _, _ in log if s == stream)
        assert versions == list(range(1, len(versions) + 1)), stream
    assert all(stream == f"space-{SPACE}/l{shard_of(user, 4)}" for stream, user in joins if user != HOST)

    # The Space grows again: those whose shard moved are still in where they joined.
    await first.run_as_system(SPACE, c.GrowListenerShards(SPACE, 8), "test: more")
    moved = [u for u in LISTENERS if shard_of(u, 8) != shard_of(u, 4)]
    assert moved
    before = len(await _everything(pool, schema))
    await asyncio.gather(*(_join(replicas[0], user) for user in moved[:30]))
    assert len(await _everything(pool, schema)) == before  # already in: nothing appended

    # Leaves go through the stream that holds the user, once.
    space = await first.current(SPACE)
    leaving = moved[:10] + [u for u in LISTENERS if u not in moved][:10]
    left = await asyncio.gather(
        *(replicas[1][1].leave(space, u, ev.LEAVE_REASON_LEFT, cause=f"leave-{u}") for u in leaving)
    )
    assert [len(events) for events in left] == [1] * len(leaving)
    leaves = {
        user: stream for stream, _, kind, user in await _everything(pool, schema) if kind.endswith("Left")
    }
    assert leaves == {user: f"space-{SPACE}/l{shard_of(user, 4)}" for user in leaving}  # where they joined
    again_left = await replicas[0][1].leave(space, leaving[0], ev.LEAVE_REASON_LEFT, cause="again")
    assert again_left == []

    row = await _directory_row(pool, replicas[0][0].executor.store, schema)
    assert row.listener_count == len(LISTENERS) - len(leaving)
    assert row.state == types.SPACE_STATE_LIVE
    assert row.version == space.version  # the Space's own stream's


async def test_replicas_sharing_a_rush_grow_the_space_as_one_replica_taking_it_all_would(pool, schema):
    """Growth counts a stream's appends from its versions, so they are every replica's: two replicas
    that each take fewer joins a second than the setting, but more together, grow the Space."""
    store = EventStore(pool, schema, producer="room")
    replicas = [SpaceCommands(store, RoomLimits(), shard_joins_per_second=30) for _ in range(2)]
    await _as(replicas[0], HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(replicas[0], HOST, c.StartSpace(SPACE))

    async def join(commands: SpaceCommands, user: str):
        return await commands.run(
            SPACE, c.JoinSpace(SPACE), caller(user), method="JoinSpace",
            request=pb.JoinSpaceRequest(space_id=SPACE), request_id=f"j-{user}",
            respond=_answer(user), response_type=pb.JoinSpaceResponse,
        )  # fmt: skip

    rush = LISTENERS[:40]  # 20 for each replica, 40 on the Space's one stream within a second
    await asyncio.gather(*(join(replicas[n % 2], user) for n, user in enumerate(rush)))
    async with asyncio.timeout(5):
        while (await replicas[0].current(SPACE)).listener_shards < 2:
            await asyncio.sleep(0.05)
    assert (await replicas[1].read(SPACE)).listener_count == len(rush)


async def test_a_join_through_a_shard_keeps_the_spaces_rules(pool, schema):
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, limits)
    shards = commands.shards
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_INVITED_ONLY))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await _as(commands, HOST, c.InviteUsers(SPACE, ("guest",)))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 2), "test")
    with pytest.raises(PermissionDenied) as refused:
        await _join((commands, shards), "stranger")
    assert refused.value.reason == "NOT_INVITED"
    answer = await _join((commands, shards), "guest")
    assert answer.role == types.ROLE_LISTENER
    log = await _everything(pool, schema)
    assert [(s, k.rsplit(".", 1)[-1]) for s, _, k, _ in log if not is_space_stream(s, SPACE)] == [
        (f"space-{SPACE}/l{shard_of('guest', 2)}", "ParticipantJoined")
    ]


async def test_a_join_decided_under_a_stale_count_is_in_once_and_leaves_from_both_streams(pool, schema):
    """A replica that has not yet seen a growth appends a join to the user's shard under the old
    count while another put them in under the new one: the user is in through two streams, counted
    once, and their leave goes to both."""
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, limits)
    shards = commands.shards
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test")
    stale = await commands.current(SPACE)
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 8), "test")
    fresh = await commands.current(SPACE)
    user = next(u for u in LISTENERS if shard_of(u, 8) != shard_of(u, 4))
    for space in (fresh, stale):
        request = pb.JoinSpaceRequest(space_id=SPACE)
        await shards.join(
            space,
            c.JoinSpace(SPACE),
            caller(user),
            method="JoinSpace",
            request=request,
            request_id="",
            respond=lambda _shard, _events, _number: pb.JoinSpaceResponse(),
            response_type=pb.JoinSpaceResponse,
        )
    joined_on = [
        s for s, _, kind, u in await _everything(pool, schema) if u == user and kind.endswith("Joined")
    ]
    assert sorted(joined_on) == sorted(f"space-{SPACE}/l{shard_of(user, n)}" for n in (8, 4))
    assert (await _directory_row(pool, store, schema)).listener_count == 1

    left = await shards.leave(fresh, user, ev.LEAVE_REASON_LEFT, cause="bye")
    assert len(left) == 2
    left_on = [s for s, _, kind, u in await _everything(pool, schema) if u == user and kind.endswith("Left")]
    assert sorted(left_on) == sorted(joined_on)
    assert (await _directory_row(pool, store, schema)).listener_count == 0


async def test_time_outs_and_removals_of_shard_listeners_go_through_their_shards_once_per_cause(pool, schema):
    """Presence's time-outs and moderation's removals reach listeners in through shards: the room's
    rules decide (the host is never removed), the leave is on the listener's shard, a speaker's
    slot is released, and the same cause read again does not take out someone who came back."""
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, limits)
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test")
    for user in ("ann", "bob", "cy"):
        await _join((commands, commands.shards), user)
    await _as(commands, HOST, c.InviteToSpeak(SPACE, "bob"))  # decided with bob put in from his shard
    assert (await commands.read(SPACE)).role_of("bob") == types.ROLE_SPEAKER

    left = await commands.react(SPACE, c.TimeOutParticipant(SPACE, "ann"), "timed-out-1")
    assert [(e.user_id, e.reason) for e in left] == [("ann", ev.LEAVE_REASON_TIMED_OUT)]
    removed = await commands.react(SPACE, c.RemoveParticipant(SPACE, "bob"), "removed-1")
    assert [(e.user_id, e.reason, e.previous_role) for e in removed if isinstance(e, ev.ParticipantLeft)] == [
        ("bob", ev.LEAVE_REASON_REMOVED, types.ROLE_SPEAKER)
    ]
    space = await commands.read(SPACE)
    assert (space.speakers, sorted(space.participants)) == ((), sorted([HOST, "cy"]))
    assert (await commands.counted(SPACE)).listener_count == 1

    await _join((commands, commands.shards), "ann")  # ann is back
    assert await commands.react(SPACE, c.TimeOutParticipant(SPACE, "ann"), "timed-out-1") == []
    assert (await commands.read(SPACE)).is_in("ann")
    with pytest.raises(PermissionDenied) as refused:
        await commands.react(SPACE, c.RemoveParticipant(SPACE, HOST), "removed-2")
    assert refused.value.reason == "CANNOT_REMOVE_HOST"
    with pytest.raises(PermissionDenied) as refused:
        await _join((commands, commands.shards), "bob")  # removed through his shard
    assert refused.value.reason == "REMOVED_FROM_SPACE"
    shard_leaves = [s for s, _, kind, _ in await _everything(pool, schema) if kind.endswith("Left")]
    assert shard_leaves and not any(is_space_stream(s, SPACE) for s in shard_leaves)


async def test_a_removal_of_someone_not_in_bars_them_on_their_shard_and_the_spaces_stream(pool, schema):
    """ADR 0014: moderation's removal of a user who is not in is recorded where joins are decided,
    their shard first, then the Space's own stream. A join decided on the Space's state from before
    the bar (a replica's policy read, up to POLICY_SECONDS old) is refused by the shard, and one
    through another replica's fresh read by the own stream's state; a removal read again adds
    nothing."""
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, limits)
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test")
    before_the_bar = await commands.current(SPACE)

    barred = await commands.react(SPACE, c.RemoveParticipant(SPACE, "eve"), "removed-eve")
    *shards, own = streams_of(SPACE, "eve", 4)  # her shard under 4, and under 2 if that differs
    assert [type(e).__name__ for e in barred] == ["ParticipantBarred"] * (len(shards) + 1)
    recorded = [(s, kind) for s, _, kind, user in await _everything(pool, schema) if user == "eve"]
    assert sorted((s, kind.rsplit(".", 1)[-1]) for s, kind in recorded[:-1]) == sorted(
        (shard, "ParticipantBarred") for shard in shards
    )
    assert (recorded[-1][0], recorded[-1][1].rsplit(".", 1)[-1]) == (own, "ParticipantBarred")
    assert await commands.react(SPACE, c.RemoveParticipant(SPACE, "eve"), "removed-eve") == []
    assert await commands.react(SPACE, c.RemoveParticipant(SPACE, "eve"), "removed-again") == []

    with pytest.raises(PermissionDenied) as refused:  # decided on the Space as it was before the bar
        await commands.shards.join(
            before_the_bar, c.JoinSpace(SPACE), caller("eve"), method="JoinSpace",
            request=pb.JoinSpaceRequest(space_id=SPACE), request_id="", respond=lambda *_: pb.JoinSpaceResponse(),
            response_type=pb.JoinSpaceResponse,
        )  # fmt: skip
    assert refused.value.reason == "REMOVED_FROM_SPACE"
    with pytest.raises(PermissionDenied) as refused:  # the API's path: a fresh read of the Space
        await _join((SpaceCommands(store, limits), None), "eve")
    assert refused.value.reason == "REMOVED_FROM_SPACE"
    assert not (await commands.read(SPACE)).is_in("eve")


async def test_a_removal_racing_a_growth_bars_every_shard_a_join_can_be_decided_for(pool, schema):
    """ADR 0014 at a growth: a join is decided on the Space as its replica read it (up to
    POLICY_SECONDS old) and goes to the user's shard under the count it read. A removal bars the
    user's shard under every count, including one a growth added after the removal read the Space:
    joins decided on the Space before the growth and after it, both from before the bar, are
    refused, and one appended to the new shard before the bar is taken out."""
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, limits)
    moved = [u for u in LISTENERS if shard_of(u, 4) != shard_of(u, 2)]  # another shard under 4
    stale, fresh, joined = moved[:3]
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 2), "test")
    at_two = await commands.current(SPACE)
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test")
    at_four = await commands.current(SPACE)
    await _join((commands, commands.shards), joined)  # on its shard under 4
    assert (await commands.shards.where(at_four, [joined]))[joined][0][0] == listener_shard_stream(
        SPACE, shard_of(joined, 4)
    )

    # Removals decided on the Space as read before the growth (the race), and after it.
    for user in (stale, joined):
        removed = await commands._remove(
            at_two, c.RemoveParticipant(SPACE, user), f"rm-{user}", once_per_cause=True
        )
        assert listener_shard_stream(SPACE, shard_of(user, 4)) in {
            s for s, _, _, u in await _everything(pool, schema) if u == user
        }, removed
    await commands.react(SPACE, c.RemoveParticipant(SPACE, fresh), f"rm-{fresh}")

    for user in (stale, fresh, joined):
        for read in (at_two, at_four):  # each decided on a Space without the bar
            with pytest.raises(PermissionDenied) as refused:
                await commands.shards.join(
                    read, c.JoinSpace(SPACE), caller(user), method="JoinSpace",
                    request=pb.JoinSpaceRequest(space_id=SPACE), request_id="",
                    respond=lambda *_: pb.JoinSpaceResponse(), response_type=pb.JoinSpaceResponse,
                )  # fmt: skip
            assert refused.value.reason == "REMOVED_FROM_SPACE", (user, read.listener_shards)
        assert not (await commands.read(SPACE)).is_in(user)
    left = [
        k for _, _, k, u in await _everything(pool, schema) if u == joined and k.endswith("ParticipantLeft")
    ]
    assert len(left) == 1


async def _a_voice_and_a_raised_hand(pool, schema: str) -> tuple[EventStore, SpaceCommands]:
    """A live Space of two shards: ann, in through one, a speaker; bob, in through one, asking to speak."""
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, RoomLimits())
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 2), "test")
    for user in ("ann", "bob"):
        await _join((commands, commands.shards), user)
    await _as(commands, HOST, c.InviteToSpeak(SPACE, "ann"))
    await _as(commands, "bob", c.RequestToSpeak(SPACE))
    return store, commands


async def test_the_release_view_tidies_up_after_a_leave_whose_release_never_ran(pool, schema):
    """A replica died between a speaker's shard leave and the release on the Space's stream: the
    room's release view, reading the leave from the topic, frees the slot and lowers the hand, once
    however often it reads the event."""
    from services.room.projections.leaver_release import LeaverRelease

    store, commands = await _a_voice_and_a_raised_hand(pool, schema)
    space = await commands.current(SPACE)
    for user in ("ann", "bob"):  # the shard leaves alone, as a replica that died right after them
        assert await commands.shards.leave(space, user, ev.LEAVE_REASON_LEFT, cause=f"gone-{user}")
    held = await commands.current(SPACE)
    assert (held.speakers, [u for u, _ in held.speak_requests]) == (("ann",), ["bob"])

    recorded = await store.read_all(limit=1000)
    consumed = [ConsumedEvent(r.envelope, r.payload, "room", 0, n) for n, r in enumerate(recorded)]
    view = LeaverRelease(commands)
    async with pool.acquire() as conn:
        await view.apply(conn, consumed)
        await view.apply(conn, consumed)  # read again after a crash: nothing twice
    released = await commands.current(SPACE)
    assert (released.speakers, released.speak_requests) == ((), ())
    assert view.released == 2
    kinds = [
        k.rsplit(".", 1)[-1] for s, _, k, _ in await _everything(pool, schema) if is_space_stream(s, SPACE)
    ]
    assert (kinds.count("SpeakerRemoved"), kinds.count("SpeakRequestWithdrawn")) == (1, 1)


async def test_a_leave_retried_after_a_crash_before_its_release_releases_before_it_is_answered(pool, schema):
    """A replica died between a caller's shard leave and the release on the Space's stream; the
    caller retries the leave with the same request id. The retry finds them on no shard, and still
    lowers their hand and ends their voice before answering (caused by their request), so a quick
    return finds nothing of theirs held and their next request to speak is a new one."""
    store, commands = await _a_voice_and_a_raised_hand(pool, schema)
    space = await commands.current(SPACE)
    for user in ("ann", "bob"):  # the shard leave alone, as a replica that died right after it
        left = await commands.shards.leave(
            space, user, ev.LEAVE_REASON_LEFT, cause=f"leave-{user}", caller=caller(user), landed=[]
        )
        assert [type(e).__name__ for e in left] == ["ParticipantLeft"]

    for user in ("ann", "bob"):
        await _as(commands, user, c.LeaveSpace(SPACE), request_id=f"leave-{user}")
    after = await commands.current(SPACE)
    assert (after.speakers, after.speak_requests) == ((), ())
    released = [
        (r.envelope.event_type.rsplit(".", 1)[-1], r.envelope.causation_id)
        for r in await store.read_all(limit=1000)
        if is_space_stream(r.envelope.stream_id, SPACE) and r.envelope.causation_id.startswith("leave-")
    ]
    assert sorted(released) == [("SpeakRequestWithdrawn", "leave-bob"), ("SpeakerRemoved", "leave-ann")]
    await _join((commands, commands.shards), "bob")
    await _as(commands, "bob", c.RequestToSpeak(SPACE), request_id="ask-again")
    asked = [r for r in await store.read_all(limit=1000) if r.envelope.causation_id == "ask-again"]
    assert [r.envelope.event_type.rsplit(".", 1)[-1] for r in asked] == ["SpeakRequested"]


async def test_a_leave_of_someone_on_no_shard_asks_each_of_their_shards_once(pool, schema):
    """A LeaveSpace of a caller in through no stream (a gateway's second leave, a retry) asks each
    shard stream they could be on once: the own stream sends it to the shards again only when the
    Space grew since they were asked."""
    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, RoomLimits())
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4), "test: a rush")
    await _join((commands, commands.shards), "cat")
    await _as(commands, "cat", c.LeaveSpace(SPACE), request_id="leave-1")
    shard_streams = len(streams_of(SPACE, "cat", 4)) - 1  # their shard under each count, but the own stream
    asked = commands.shards.executor.stats["commands"]
    await _as(commands, "cat", c.LeaveSpace(SPACE), request_id="leave-2")
    assert commands.shards.executor.stats["commands"] - asked == shard_streams
    assert [
        r.envelope.causation_id
        for r in await store.read_all(limit=1000)
        if r.envelope.causation_id == "leave-2"
    ] == []


async def test_a_lagging_release_view_does_not_undo_a_voice_given_after_the_leave(pool, schema):
    """A speaker leaves through their shard (the release runs with the leave), comes back and is
    invited to speak again before the room's release view reads the old leave: the view, reading it
    now, leaves the new voice alone (the view's first test has it take a voice nobody released)."""
    from services.room.projections.leaver_release import LeaverRelease

    store = EventStore(pool, schema, producer="room")
    commands = SpaceCommands(store, RoomLimits())
    await _as(commands, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(commands, HOST, c.StartSpace(SPACE))
    await commands.run_as_system(SPACE, c.GrowListenerShards(SPACE, 2), "test")
    for user in ("ann", "bob"):
        await _join((commands, commands.shards), user)
        await _as(commands, HOST, c.InviteToSpeak(SPACE, user))
    for user in ("ann", "bob"):  # as LeaveSpace runs it: the shard leave, then the release
        await _as(commands, user, c.LeaveSpace(SPACE))
    assert (await commands.current(SPACE)).speakers == ()
    first_leaves = await store.read_all(limit=1000)
    await _join((commands, commands.shards), "ann")
    await _as(commands, HOST, c.InviteToSpeak(SPACE, "ann"))

    view = LeaverRelease(commands)
    consumed = [ConsumedEvent(r.envelope, r.payload, "room", 0, n) for n, r in enumerate(first_leaves)]
    async with pool.acquire() as conn:
        await view.apply(conn, consumed)
    assert (await commands.current(SPACE)).speakers == ("ann",)
    assert view.released == 0


async def test_replicas_on_writer_lanes_write_shards_of_their_own_and_find_each_others_members(pool, schema):
    """ADR 0018: a Space's shards dealt to two lanes, a replica on each. Each replica joins its
    callers on its own lane's shards, so no append of a join storm loses to the other replica;
    either replica finds, leaves and bars a member wherever they were joined."""
    limits = RoomLimits()
    store = EventStore(pool, schema, producer="room")
    replicas = [SpaceCommands(store, limits, lane=lambda lane=lane: lane) for lane in (0, 1)]
    first = replicas[0]
    await _as(first, HOST, c.CreateSpace(SPACE, "Hot", join_policy=types.JOIN_POLICY_ANYONE))
    await _as(first, HOST, c.StartSpace(SPACE))
    await first.run_as_system(SPACE, c.GrowListenerShards(SPACE, 4, lanes=2), "test: a rush")

    await asyncio.gather(
        *(_join((replicas[n % 2], None), user, request_id=f"r-{user}") for n, user in enumerate(LISTENERS))
    )
    joined = {
        user: stream for stream, _, kind, user in await _everything(pool, schema) if kind.endswith("Joined")
    }
    assert joined == {
        HOST: f"space-{SPACE}",
        **{user: f"space-{SPACE}/l{shard_in_lane(user, 4, 2, n % 2)}" for n, user in enumerate(LISTENERS)},
    }
    assert {s for u, s in joined.items() if u in LISTENERS[0::2]} == {f"space-{SPACE}/l{k}" for k in (0, 2)}
    assert {s for u, s in joined.items() if u in LISTENERS[1::2]} == {f"space-{SPACE}/l{k}" for k in (1, 3)}
    assert [r.shards.executor.stats["conflicts"] for r in replicas] == [0, 0]

    # Through the other replica: in already (nothing appended), once the other replica's read of
    # their lane's shards is younger than their join; then out from where they joined.
    await asyncio.sleep(OTHER_LANES_SECONDS)
    before = len(await _everything(pool, schema))
    await asyncio.gather(
        *(_join((replicas[(n + 1) % 2], None), user) for n, user in enumerate(LISTENERS[:20]))
    )
    assert len(await _everything(pool, schema)) == before
    space = await first.current(SPACE)
    leaving = LISTENERS[:20]
    left = await asyncio.gather(
        *(replicas[(n + 1) % 2].shards.leave(space, u, ev.LEAVE_REASON_LEFT, cause=f"leave-{u}")
          for n, u in enumerate(leaving))
    )  # fmt: skip
    assert [len(events) for events in left] == [1] * len(leaving)
    leaves = {
        user: stream for stream, _, kind, user in await _everything(pool, schema) if kind.endswith("Left")
    }
    assert leaves == {user: joined[user] for user in leaving}

    # A removal bars the user on every lane's shard: neither replica lets them in.
    await first.react(SPACE, c.RemoveParticipant(SPACE, "eve"), "removed-eve")
    for replica in replicas:
        with pytest.raises(PermissionDenied) as refused:
            await _join((replica, None), "eve")
        assert refused.value.reason == "REMOVED_FROM_SPACE"
    barred = {
        s for s, _, kind, user in await _everything(pool, schema) if user == "eve" and kind.endswith("Barred")
    }
    assert barred >= {f"space-{SPACE}/l{shard_in_lane('eve', 4, 2, lane)}" for lane in (0, 1)}

    row = await _directory_row(pool, store, schema)
    assert row.listener_count == len(LISTENERS) - len(leaving)
