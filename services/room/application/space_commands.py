"""Running room commands: the one path every Space mutation takes.

The API turns a request into a domain command; this runs it on the Space's
stream through the shared executor (decide, append with the outbox, idempotent
retries) and answers with a view of the Space after the command.

A Space with listener shards (ADR 0012) has its listeners' joins and leaves on shard streams.
Its own stream says so when a command needs them (`OnListenerShards`): a join or a leave then
goes to the user's shard (`ListenerShards`), a leave of a voice or of a raised hand releases what
the own stream held for them (`ReleaseLeaver`), and any other command is decided again with the
users it is about put in from the shards (`WithShardMembers`). A Space without shards never
takes that path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message

from libs.application.executor import CommandExecutor
from libs.application.issuer import CommandIssuer
from libs.application.recent_reads import RecentReads
from libs.domain.decider import SYSTEM_CLAIM, Context
from libs.domain.errors import Aborted, DomainError
from libs.domain.reasons import Reason
from libs.domain.streams import listener_shard_stream, space_stream
from libs.events.ids import new_id
from libs.events.topics import ROOM_EVENTS
from libs.eventstore.store import EventStore
from libs.grpckit.handlers import Caller
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.application.listener_shards import ListenerShards, on_shards
from services.room.domain import commands as c
from services.room.domain.decide import OnListenerShards, decide, make_decider
from services.room.domain.evolve import replace, with_members
from services.room.domain.limits import RoomLimits
from services.room.domain.listener_shard import LeaveOnShard
from services.room.domain.state import Space

R = TypeVar("R", bound=Message)

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:room"
# A command routed to the shards is decided again there, or here with the shards' answer; a second
# OnListenerShards would mean a growth raced it, so it is tried once more, then ABORTED.
ROUTES = 3
POLICY_SECONDS = 0.1  # how old the Space's own state a listener's join is decided on may be


def stream_of(space_id: str) -> str:
    return space_stream(space_id)


class SpaceCommands:
    def __init__(
        self,
        store: EventStore,
        limits: RoomLimits,
        clock: Callable[[], datetime] | None = None,
        *,
        shard_joins_per_second: float = 0,
        shard_lanes: int = 1,
        lane: Callable[[], int | None] = lambda: None,
    ):
        self.executor: CommandExecutor = CommandExecutor(store, make_decider(limits), ROOM_EVENTS)
        self.issuer = CommandIssuer(self.executor, SYSTEM_ACTOR, clock)
        self.limits = limits
        self.clock = self.issuer.clock
        self.shards = ListenerShards(store, limits, SYSTEM_ACTOR, self.clock, lane)
        self.growth = ShardGrowth(self, shard_joins_per_second, limits.max_listener_shards, shard_lanes)
        # Space id -> its own stream's last read for listeners' joins
        self._policy_reads: RecentReads[str, tuple[Space, int]] = RecentReads(
            lambda space_id: self.executor.load(stream_of(space_id)), POLICY_SECONDS
        )

    async def run(
        self,
        space_id: str,
        command: object,
        caller: Caller,
        *,
        method: str,
        request: Message,
        request_id: str,
        respond: Callable[[Space, list[Message]], R],
        response_type: type[R],
    ) -> R:
        if isinstance(command, c.JoinSpace):
            respond = self.growth.watching(respond, stream_of(space_id))
        left_under = 0  # the shard count whose shards a leave found the caller on none of
        if isinstance(command, c.JoinSpace | c.LeaveSpace) and await self._sharded(space_id):
            space = await self._policy(space_id)
            if on_shards(space, caller.user_id):  # straight to the shards: the own stream would send it there
                if isinstance(command, c.JoinSpace):
                    return await self._join(
                        space, command, caller, method, request, request_id, respond, response_type
                    )
                landed: list[tuple[int, int]] = []
                events = await self._leave(
                    space, caller.user_id, ev.LEAVE_REASON_LEFT, request_id, caller=caller, landed=landed
                )
                if events:
                    return respond(await self._left(space_id, landed), events)
                left_under = space.listener_shards
        for _ in range(ROUTES):
            try:
                return await self.issuer.for_caller(
                    caller,
                    stream_id=stream_of(space_id),
                    space_id=space_id,
                    command=command,
                    method=method,
                    request=request,
                    request_id=request_id,
                    respond=respond,
                    response_type=response_type,
                )
            except OnListenerShards:
                space = await self.current(space_id)
                user = caller.user_id
                if isinstance(command, c.JoinSpace):
                    return await self._join(
                        space, command, caller, method, request, request_id, respond, response_type
                    )
                if isinstance(command, c.LeaveSpace):
                    landed = []
                    # The shards are asked again only if the Space grew since they were: a join
                    # through another replica may be on a shard the first pass did not know.
                    events = (
                        await self._leave(
                            space, user, ev.LEAVE_REASON_LEFT, request_id, caller=caller, landed=landed
                        )
                        if space.listener_shards != left_under
                        else []
                    )
                    if not events:
                        # In through neither stream: maybe their retry after a replica died between
                        # the shard leave and the release. What the own stream still holds for them
                        # goes now, unless they are back, so an acknowledged leave has lowered their
                        # hand and ended their voice; left to the release view, a hand kept across
                        # a quick return would stay raised.
                        await self._release(space_id, [user], request_id, unless_back=True)
                    return respond(await self._left(space_id, landed), events)
                command = await self._consulted(space, command, user)
        raise _raced(space_id)

    async def run_as_system(self, space_id: str, command: object, reason: str) -> list[Message]:
        """Runs a command the service issues itself (ending an abandoned Space, evicting listeners)."""
        return await self._as_system(space_id, command, reason, once_per_cause=False)

    async def react(self, space_id: str, command: object, cause_event_id: str) -> list[Message]:
        """Runs a command in reaction to another service's event, once per event however often it is read."""
        return await self._as_system(space_id, command, cause_event_id, once_per_cause=True)

    async def current(self, space_id: str) -> Space:
        """The Space as its own stream says now (read-your-writes). With listener shards, only the
        people in through the own stream are in it; `read` has everyone."""
        state, _ = await self.executor.load(stream_of(space_id))
        return state

    async def counted(self, space_id: str) -> Space:
        """The Space now, counting everyone in through its listener shards (one load per shard)."""
        space = await self.current(space_id)
        return await self.shards.counted(space) if space.listener_shards >= 2 else space

    async def read(self, space_id: str) -> Space:
        """The Space now, with everyone in through its listener shards in it too (one load per
        shard, and a fold of their members: reads, not the join path)."""
        space = await self.current(space_id)
        if space.listener_shards < 2:
            return space
        return with_members(space, await self.shards.members(space))

    async def read_about(self, space_id: str, user_id: str) -> Space:
        """The Space now with `user_id` in it if they are in through one of its listener shards:
        what a question about one participant needs (their shards read, not every shard)."""
        space = await self.current(space_id)
        if space.listener_shards < 2 or space.is_in(user_id):
            return space
        joined_at = await self.shards.joined_at(space, user_id)
        return with_members(space, [(user_id, joined_at)]) if joined_at else space

    async def _left(self, space_id: str, landed: list[tuple[int, int]]) -> Space:
        """The Space after a caller's leave through its shards, counted, with the (shard, version)
        each part of the leave `landed` at for the answer's token."""
        return replace(await self.counted(space_id), shard_positions=tuple(landed))

    async def _sharded(self, space_id: str) -> bool:
        """Whether the Space has listener shards, as this replica's cache says. A growth it has not
        seen yet is found on the own stream (its append conflicts, the state is read again and the
        own stream sends the command to the shards)."""
        space, _ = await self.executor.load(stream_of(space_id), refresh=False)
        return space.listener_shards >= 2

    async def _policy(self, space_id: str) -> Space:
        """The Space's own state for a listener's join or leave: as this replica last read it when
        that was less than `POLICY_SECONDS` ago, else read again (once, for every call waiting on
        it). A join decided on a policy that changed meanwhile is within the evictor's bound (ADR
        0012); reading it for every join would cost a round trip each."""
        await self._policy_reads.get(space_id)
        space, _ = await self.executor.load(stream_of(space_id), refresh=False)
        return space

    async def _as_system(
        self, space_id: str, command: object, cause: str, *, once_per_cause: bool
    ) -> list[Message]:
        for _ in range(ROUTES):
            try:
                return await self.issuer.as_system(
                    stream_id=stream_of(space_id),
                    space_id=space_id,
                    command=command,
                    causation_id=cause,
                    once_per_cause=once_per_cause,
                )
            except OnListenerShards as routed:
                space = await self.current(space_id)
                if isinstance(command, c.RemoveParticipant):
                    return await self._remove(space, command, cause, once_per_cause=once_per_cause)
                if not isinstance(command, c.TimeOutParticipant):
                    command = await self._consulted(space, command, routed.user_id)
                    continue
                return await self._leave_decided(space, command, cause, once_per_cause=once_per_cause)
        raise _raced(space_id)

    async def evict(self, space_id: str, cause: str, *, per_append: int = 1000) -> list[Message]:
        """Every listener the Space's policy no longer admits out (EvictListeners), wherever they are
        in. The shards are read once: those in through them are decided on the Space with everyone
        in and go in appends per shard, while those in through the own stream go there, in appends
        of at most `per_append`; both at once."""
        space = await self.current(space_id)
        where = await self.shards.everyone(space) if space.listener_shards >= 2 else {}
        whole = replace(
            with_members(space, [(u, held[0][1]) for u, held in where.items()]), shards_consulted=True
        )
        outside = whole.listeners_outside_policy()
        own = [u for u in outside if space.is_in(u)]
        elsewhere = tuple(u for u in outside if not space.is_in(u))

        async def on_own_stream() -> list[Message]:
            events: list[Message] = []
            for start in range(0, len(own), per_append):
                chunk = tuple(own[start : start + per_append])
                events += await self.run_as_system(space_id, c.EvictListeners(space_id, chunk), cause)
            return events

        async def on_shards() -> list[Message]:
            if not elsewhere:
                return []
            context = Context(SYSTEM_ACTOR, self.clock(), frozenset({SYSTEM_CLAIM}))
            decided = decide(c.EvictListeners(space_id, elsewhere), whole, context, self.limits)
            return await self._leave_on_shards(space, decided, where, cause, per_append=per_append)

        own_events, shard_events = await asyncio.gather(on_own_stream(), on_shards())
        return own_events + shard_events

    async def _join(self, space, command, caller, method, request, request_id, respond, response_type):
        user = caller.user_id

        # Counts as this replica last read the shards (no read of every shard per join).
        counted = await self.shards.counted(space, fresh=False)

        def answer(shard_state, events: list[Message], shard: int):
            # The joiner in (counted again if this replica's cached shard already had them: a repeat),
            # and their shard's version in the answer's token.
            joined = with_members(counted, [(user, self.clock())])
            if events:
                self.growth.appended(space, listener_shard_stream(space.space_id, shard), shard_state.version)
            return respond(replace(joined, shard_positions=((shard, shard_state.version),)), events)

        return await self.shards.join(
            space,
            command,
            caller,
            method=method,
            request=request,
            request_id=request_id,
            respond=answer,
            response_type=response_type,
        )

    async def _consulted(self, space: Space, command: object, *users: str) -> c.WithShardMembers:
        """`command` with the users it is about, as far as the shards have them in."""
        inner = command.command if isinstance(command, c.WithShardMembers) else command
        about = dict.fromkeys(u for u in (*users, getattr(inner, "user_id", "")) if u and not space.is_in(u))
        where = await self.shards.where(space, about)
        return c.WithShardMembers(inner, tuple((user, held[0][1]) for user, held in where.items()))

    async def _decided_here(
        self, space: Space, command, users
    ) -> tuple[dict[str, list[tuple[str, datetime]]], list[Message]]:
        """Where the shards hold those of `users` not in through the own stream, and what the room's
        rules decide for `command` (a system command) on the Space with them put in."""
        where = await self.shards.where(space, [u for u in dict.fromkeys(users) if u and not space.is_in(u)])
        consulted = c.WithShardMembers(command, tuple((user, held[0][1]) for user, held in where.items()))
        context = Context(SYSTEM_ACTOR, self.clock(), frozenset({SYSTEM_CLAIM}))
        return where, decide(consulted, space, context, self.limits)

    async def _leave_decided(
        self, space: Space, command, cause: str, *, once_per_cause: bool = False
    ) -> list[Message]:
        """A time-out or removal of users in through shards: decided here on the Space with them in
        (its rules: who may be removed, who still qualifies), then carried out on their shards."""
        inner = command.command if isinstance(command, c.WithShardMembers) else command
        users = (*getattr(inner, "user_ids", ()), getattr(inner, "user_id", ""))
        where, decided = await self._decided_here(space, inner, users)
        return await self._leave_on_shards(space, decided, where, cause, once_per_cause=once_per_cause)

    async def _leave_on_shards(
        self,
        space: Space,
        decided: list[Message],
        where: dict[str, list[tuple[str, datetime]]],
        cause: str,
        *,
        once_per_cause: bool = False,
        per_append: int = 1000,
    ) -> list[Message]:
        """The ParticipantLefts `decided` for users in through shards (`where` holds them), carried
        out on their shards, all at once (each shard group-commits its share), and what they held on
        the own stream released."""
        leaves = [
            LeaveOnShard(space.space_id, e.user_id, e.reason, e.previous_role, e.mass_time_out)
            for e in decided
            if isinstance(e, ev.ParticipantLeft)
        ]
        gone = await self.shards.leave_many(
            space, leaves, where, cause=cause, once_per_cause=once_per_cause, per_append=per_append
        )
        if not gone:
            return gone
        return gone + await self._release(space.space_id, [e.user_id for e in gone], cause)

    async def _remove(
        self, space: Space, command: c.RemoveParticipant, cause: str, *, once_per_cause: bool
    ) -> list[Message]:
        """Moderation's removal in a Space with listener shards (ADR 0014). The room's rules decide,
        on the Space with the user put in from the shards (the host is never removed). Then every
        shard stream the user can be on takes them out or bars them, and the Space's own stream
        bars them: joins are decided on a shard's state and on the own stream's, and once both hold
        the bar no join decided afterwards gets in. A join decided on the Space as it was before the
        own stream's bar goes to the user's shard under the count it read; a growth since `space`
        was read adds a shard for that, which is barred last."""
        user = command.user_id
        _, decided = await self._decided_here(space, command, [user])
        role = next(
            (e.previous_role for e in decided if isinstance(e, ev.ParticipantLeft) and e.previous_role),
            types.ROLE_LISTENER,
        )
        once = {"cause": cause, "once_per_cause": once_per_cause}
        barred = await self.shards.bar(space, user, role, **once)
        own = await self.issuer.as_system(
            stream_id=stream_of(space.space_id),
            space_id=space.space_id,
            command=c.WithShardMembers(command, ()),
            causation_id=cause,
            once_per_cause=once_per_cause,
        )
        now = await self.current(space.space_id)
        if now.listener_shards != space.listener_shards:
            barred += await self.shards.bar(now, user, role, besides=space, **once)
        out = [e for e in barred if isinstance(e, ev.ParticipantLeft)]
        released = await self._release(space.space_id, [user], cause) if out else []
        return [*barred, *own, *released]

    async def _leave(self, space: Space, user_id: str, reason: int, cause: str, **how) -> list[Message]:
        """`ListenerShards.leave` (`how`: its keywords), then the release of what they held."""
        left = await self.shards.leave(space, user_id, reason, cause=cause, **how)
        return left + await self._release(space.space_id, [user_id], cause) if left else left

    async def _release(
        self, space_id: str, leavers: list[str], cause: str, *, unless_back: bool = False
    ) -> list[Message]:
        """`ReleaseLeaver` for those of `leavers` the Space's own stream still holds something for
        (a voice, a raised hand), even if they are back already (unless `unless_back`): a leave
        ends a voice and lowers a hand. The own stream is read now, once: the state a leave was
        routed on may be a moment old, and a hand raised through another replica meanwhile must go
        too. The room's release view (`projections/leaver_release.py`) does the same from the
        topic, should this not run."""
        space = await self.current(space_id)
        released: list[Message] = []
        for user_id in leavers:
            if space.holds_anything(user_id):
                command = c.ReleaseLeaver(space_id, user_id, unless_back=unless_back)
                released += await self.run_as_system(space_id, command, cause or new_id())
        return released


class ShardGrowth:
    """Doubles a live Space's listener shards when a stream its listeners join on takes more than
    `per_shard` appends within a second (0: never). The appends are counted from the stream's
    versions, as this replica sees them after each join it records there, so they are every
    replica's: replicas sharing a storm grow the Space when one replica taking it all would. The
    growth is a command on the Space's own stream, so two replicas that both see a rush grow it
    once.

    A stream's second is counted under one shard count: a growth, or this replica asking for one,
    starts it again. Otherwise the joins that reach a stream in the rest of the second that made
    it grow would double the Space again with each join, up to the maximum.

    A Space's first growth deals its shards to `lanes` writer lanes (ADR 0018), which it keeps."""

    def __init__(self, commands: SpaceCommands, per_shard: float, max_shards: int, lanes: int = 1):
        self.commands = commands
        self.lanes = lanes
        self.per_shard = per_shard
        self.max_shards = max_shards
        # stream -> (when its second began, its version then, the Space's shard count then)
        self._window: dict[str, tuple[float, int, int]] = {}
        self._growing: dict[str, asyncio.Task] = {}

    def watching(self, respond: Callable[[Space, list[Message]], R], stream: str) -> Callable:
        """`respond` for a join on the Space's own stream, seeing the version each join left it at."""

        def watched(space: Space, events: list[Message]) -> R:
            if events:
                self.appended(space, stream, space.version)
            return respond(space, events)

        return watched

    def appended(self, space: Space, stream: str, version: int) -> None:
        """A join of `space` recorded on `stream`, which is now at `version`."""
        if self.per_shard <= 0 or not space.is_live or space.listener_shards >= self.max_shards:
            return
        now, shards = time.monotonic(), space.listener_shards
        began, first, counted_under = self._window.get(stream, (now, version, shards))
        if now - began >= 1.0 or version < first or counted_under != shards:
            if len(self._window) > 10_000:  # streams joined once, long ago
                self._window = {s: w for s, w in self._window.items() if now - w[0] < 1.0}
            began, first = now, version
        self._window[stream] = (began, first, shards)
        space_id = space.space_id
        if version - first + 1 > self.per_shard and space_id not in self._growing:
            self._window[stream] = (now, version, shards)
            task = asyncio.get_running_loop().create_task(self._grow(space_id, shards * 2))
            self._growing[space_id] = task

    async def _grow(self, space_id: str, shards: int) -> None:
        try:
            await self.commands.run_as_system(
                space_id, c.GrowListenerShards(space_id, shards, self.lanes), "shard-growth"
            )
            log.info("space %s grew to %d listener shards", space_id, shards)
        except DomainError as refused:  # it ended meanwhile, say
            log.info("space %s did not grow listener shards: %s", space_id, refused.message)
        finally:
            self._growing.pop(space_id, None)


def _raced(space_id: str) -> Aborted:
    return Aborted(
        f"space {space_id!r} grew listener shards while the call was routed; retry the call",
        reason=Reason.CONCURRENCY_CONFLICT,
    )
