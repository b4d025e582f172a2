"""Listeners' joins and leaves on a Space's listener shard streams (ADR 0012).

A Space with one shard (every Space until the room grows it) takes joins and leaves on its own
stream, as before. Once it has N >= 2, a listener's join is decided against the Space's own
state, read fresh for the call, and appended to the user's shard stream through an executor of
its own: joins into one Space then group-commit per shard, and replicas append to different
streams instead of taking turns on one. Records stay keyed by the Space id.

`SpaceCommands` routes here: the Space's own stream refuses to answer for a listener
(`OnListenerShards`), and this says who is in through the shards, joins, leaves and counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message

from libs.application.executor import CommandExecutor
from libs.application.issuer import CommandIssuer
from libs.application.recent_reads import RecentReads
from libs.domain.streams import is_space_stream, listener_shard_stream, shard_number
from libs.events.topics import ROOM_EVENTS
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Caller
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.evolve import with_counts
from services.room.domain.limits import RoomLimits
from services.room.domain.listener_shard import (
    JoinOnShard,
    LeaveOnShard,
    LeavesOnShard,
    ShardState,
    make_shard_decider,
    streams_of,
)
from services.room.domain.state import Space

COUNTS_SECONDS = 0.1  # how old the shard counts in a join's answer may be
# How old a join's read of the user's shards in other lanes may be (ADR 0018): a user who joined
# through another replica less than this before joining again through this one is in through two
# streams, which every consumer folds as one membership; reading them for every join would cost a
# round trip each.
OTHER_LANES_SECONDS = 0.1


def on_shards(space: Space, user_id: str) -> bool:
    """Whether `user_id`'s join goes to a listener shard: the Space has shards, and they are not its
    host (whose join is a voice's, on the Space's own stream) nor in through the own stream."""
    return space.listener_shards >= 2 and user_id != space.host_user_id and not space.is_in(user_id)


class ListenerShards:
    def __init__(
        self,
        store: EventStore,
        limits: RoomLimits,
        actor: str,
        clock: Callable[[], datetime],
        lane: Callable[[], int | None] = lambda: None,
    ):
        self.lane = lane  # the writer lane this replica holds now (ADR 0018), if any
        self.executor: CommandExecutor = CommandExecutor(store, make_shard_decider(limits), ROOM_EVENTS)
        self._other_lanes: RecentReads[str, tuple[ShardState, int]] = RecentReads(
            self.executor.load, OTHER_LANES_SECONDS
        )
        self.issuer = CommandIssuer(self.executor, actor, clock)
        self._counts: dict[
            str, tuple[float, int, int, int]
        ] = {}  # Space -> (when, shards, present, listeners)

    async def join(
        self,
        space: Space,
        join: c.JoinSpace,
        caller: Caller,
        *,
        method: str,
        request: Message,
        request_id: str,
        respond: Callable[[ShardState, list[Message], int], Message],
        response_type: type[Message],
    ) -> Message:
        """Joins the caller on their shard of `space` (the own stream's state, fresh), unless they
        are in through the shard of a smaller count already (answered with no events). `respond`
        is given the shard's state after, the events, and the shard's number."""
        user = caller.user_id
        shards, lanes = space.listener_shards, space.listener_lanes
        here, *earlier, _own = streams_of(space.space_id, user, shards, lanes, self.lane())
        # Their shards now in the other lanes, which other replicas write: as read a moment ago.
        lanes_now = earlier[: min(lanes, shards) - 1]
        for stream in earlier:  # in through another? (as last read, then the store to confirm)
            if stream in lanes_now:
                state, _ = await self._other_lanes.get(stream)
            else:  # under a smaller count: written no more but for a growth's race
                state, _ = await self.executor.load(stream, refresh=False)
            if state.is_in(user) and (state := (await self.executor.load(stream))[0]).is_in(user):
                return respond(state, [], shard_number(stream))
        return await self.issuer.for_caller(
            caller,
            stream_id=here,
            space_id=space.space_id,
            command=JoinOnShard(join, space),
            method=method,
            request=request,
            request_id=request_id,
            respond=lambda state, events: respond(state, events, shard_number(here)),
            response_type=response_type,
        )

    async def where(
        self, space: Space, users, *, fresh: bool = True
    ) -> dict[str, list[tuple[str, datetime]]]:
        """For each of `users` in through the Space's shards: the streams that hold them, each with
        when they joined there (each stream read once, whatever the number of users)."""
        users = list(users)
        streams = list(dict.fromkeys(s for user in users for s in self._shards_of(space, user)))
        states = await asyncio.gather(*(self.executor.load(stream, refresh=fresh) for stream in streams))
        loaded = {stream: state for stream, (state, _) in zip(streams, states, strict=True)}
        found = {}
        for user in users:
            held = [
                (s, loaded[s].members[user]) for s in self._shards_of(space, user) if loaded[s].is_in(user)
            ]
            if held:
                found[user] = held
        return found

    async def joined_at(self, space: Space, user_id: str) -> datetime | None:
        """When `user_id` joined, if they are in through one of the Space's shards (read fresh)."""
        held = (await self.where(space, [user_id])).get(user_id)
        return held[0][1] if held else None

    async def leave(
        self,
        space: Space,
        user_id: str,
        reason: int,
        *,
        cause: str,
        mass_time_out: bool = False,
        once_per_cause: bool = False,
        caller: Caller | None = None,
        landed: list[tuple[int, int]] | None = None,
    ) -> list[Message]:
        """`user_id` leaves through every shard stream of `space` that holds them (at most one, but
        for a join two replicas decided under different counts at a growth). With `once_per_cause`,
        a cause read again (a reaction's event) changes nothing the second time. With `caller`
        (their own LeaveSpace), the leave is theirs: their id and trace in its envelope, `cause`
        (the request id) as its causation, and each (shard, version) it was recorded at goes to
        `landed` (for the answer's read-your-writes token)."""
        command = LeaveOnShard(space.space_id, user_id, reason, role_listed(space, user_id), mass_time_out)
        left = await asyncio.gather(
            *(self._leave_one(stream, space.space_id, command, cause, once_per_cause, caller, landed)
              for stream in self._shards_of(space, user_id))
        )  # fmt: skip
        return [event for events in left for event in events]

    async def leave_many(
        self,
        space: Space,
        leaves: list[LeaveOnShard],
        where: dict[str, list],
        *,
        cause: str,
        once_per_cause: bool,
        per_append: int = 1000,
    ) -> list[Message]:
        """Leaves of many users (an eviction, say): `where` is `ListenerShards.where` for them. Each
        shard stream that holds some of them takes its share in appends of at most `per_append`,
        in turn; the shards all at once. However many users, a shard is appended to as few times
        as its share allows, not once per batch of users across every shard.

        With `once_per_cause`, a shard's share is one append whatever its size: the cause and the
        stream are its idempotency key, and a share cut in pieces and decided again after a crash
        (smaller, its first users gone) would find its first piece's key answered and skip the
        rest. Without it (evictions), a run again decides again on what each shard holds then."""
        by_stream: dict[str, list[LeaveOnShard]] = {}
        for leave in leaves:
            for stream, _ in where.get(leave.user_id, ()):
                by_stream.setdefault(stream, []).append(leave)

        async def on(stream: str, share: list[LeaveOnShard]) -> list[Message]:
            size = len(share) if once_per_cause else per_append
            events: list[Message] = []
            for start in range(0, len(share), size):
                events += await self.issuer.as_system(
                    stream_id=stream,
                    space_id=space.space_id,
                    command=LeavesOnShard(tuple(share[start : start + size])),
                    causation_id=cause,
                    once_per_cause=once_per_cause,
                    once_key=f"{cause}@{stream}",
                )
            return events

        left = await asyncio.gather(*(on(stream, share) for stream, share in by_stream.items()))
        return [event for events in left for event in events]

    async def bar(
        self,
        space: Space,
        user_id: str,
        previous_role: int,
        *,
        cause: str,
        once_per_cause: bool,
        besides: Space | None = None,
    ) -> list[Message]:
        """A removal's share on the shards (ADR 0014): on every shard stream `user_id`'s membership
        of `space` can be on (their shard under each count it has had), out if they are in through
        it, else barred on it, decided on that shard's own state. A join appended to one of them
        before its bar is taken out, and one decided there after it is refused, whichever count the
        joiner's replica had read. With `besides` (the Space as read earlier), only the shards it
        did not list: the ones a growth since then added."""
        command = LeaveOnShard(space.space_id, user_id, ev.LEAVE_REASON_REMOVED, previous_role, bar=True)
        done = set(self._shards_of(besides, user_id)) if besides is not None else set()
        barred = await asyncio.gather(
            *(self._leave_one(stream, space.space_id, command, cause, once_per_cause, None, None)
              for stream in self._shards_of(space, user_id) if stream not in done)
        )  # fmt: skip
        return [event for events in barred for event in events]

    async def _leave_one(
        self,
        stream: str,
        space_id: str,
        command: LeaveOnShard,
        cause: str,
        once: bool,
        caller: Caller | None,
        landed: list[tuple[int, int]] | None,
    ) -> list[Message]:
        if caller is None:
            return await self.issuer.as_system(
                stream_id=stream,
                space_id=space_id,
                command=command,
                causation_id=cause,
                once_per_cause=once,
                once_key=f"{cause}@{stream}",  # one cause, a leave on each stream
            )
        emitted: list[Message] = []

        def respond(state: ShardState, events: list[Message]) -> Empty:
            emitted[:] = events
            at[:] = [(shard_number(stream), state.version)]
            return Empty()

        at: list[tuple[int, int]] = []

        # Not remembered: a leave changes nothing twice, and one request may leave two streams.
        await self.issuer.for_caller(
            caller,
            stream_id=stream,
            space_id=space_id,
            command=command,
            method="LeaveSpace",
            request=Empty(),
            request_id=cause,
            respond=respond,
            response_type=Empty,
            remember=False,
        )
        if emitted and landed is not None:
            landed += at
        return emitted

    async def members(self, space: Space) -> list[tuple[str, datetime]]:
        """Everyone in through the Space's shards, with when they joined (one fresh load per shard)."""
        return [(user, held[0][1]) for user, held in (await self.everyone(space)).items()]

    async def everyone(self, space: Space) -> dict[str, list[tuple[str, datetime]]]:
        """`where` for everyone in through the Space's shards (one fresh load per shard)."""
        streams = [listener_shard_stream(space.space_id, k) for k in range(space.listener_shards)]
        loaded = await asyncio.gather(*(self.executor.load(s) for s in streams))
        found: dict[str, list[tuple[str, datetime]]] = {}
        for stream, (state, _) in zip(streams, loaded, strict=True):
            for user, at in state.members.items():
                found.setdefault(user, []).append((stream, at))
        return found

    async def counted(self, space: Space, *, fresh: bool = True) -> Space:
        """`space` (the own stream's state) counting everyone in through its shards: O(shards), for
        views and answers that show counts but not the people. Not `fresh`: as counted at most
        `COUNTS_SECONDS` ago (a join's answer, which must not cost a read of every shard)."""
        now = time.monotonic()
        cached = self._counts.get(space.space_id)
        if fresh or cached is None or now - cached[0] > COUNTS_SECONDS or cached[1] != space.listener_shards:
            streams = [listener_shard_stream(space.space_id, k) for k in range(space.listener_shards)]
            if fresh:  # one round trip per shard, all at once
                loaded = [st for st, _ in await asyncio.gather(*(self.executor.load(s) for s in streams))]
            else:  # the cache: no round trip, and no task per shard
                loaded = [(await self.executor.load(s, refresh=False))[0] for s in streams]
            present = sum(len(state.members) for state in loaded)
            in_shards = {
                v for v in (*space.co_hosts, *space.speakers) if any(state.is_in(v) for state in loaded)
            }
            if len(self._counts) > 10_000:
                self._counts = {s: c for s, c in self._counts.items() if now - c[0] <= COUNTS_SECONDS}
            cached = self._counts[space.space_id] = (
                now,
                space.listener_shards,
                present,
                present - len(in_shards),
            )
        return with_counts(space, cached[2], cached[3])

    def _shards_of(self, space: Space, user_id: str) -> list[str]:
        return [
            s
            for s in streams_of(space.space_id, user_id, space.listener_shards, space.listener_lanes)
            if not is_space_stream(s, space.space_id)
        ]


def role_listed(space: Space, user_id: str) -> int:
    """A shard member's role: the voice the Space's own stream lists them as, else a listener."""
    if user_id in space.co_hosts:
        return types.ROLE_CO_HOST
    if user_id in space.speakers:
        return types.ROLE_SPEAKER
    return types.ROLE_LISTENER
