"""A listener shard stream of a Space (ADR 0012): the joins and leaves of some of its listeners.

A Space that has grown listener shards (`ListenerShardsGrown`, N of them) takes its listeners'
joins on `space-<id>/l<k>` instead of on its own stream, so joins into one Space spread over N
streams. The shards are dealt to writer lanes (ADR 0018), and a room replica joins users on the
shards of the lane it holds (`shard_in_lane`), so each shard has one writer however many replicas
share a storm, and replicas do not take turns on shards. Whether a user may
join is still the Space's rule: the join is decided against the Space's own state as the caller
read it (`JoinOnShard.space`), by the room's own `_join`. What the shard adds is its own
question: is this user already in through this stream?

A user who joined under a smaller N, or through another lane, may still be in on another stream
of the Space (their shard under that N or through that lane, or the Space's own stream before it
had shards). `streams_of` lists every stream a user's membership can be on; the application asks
the ones after the joining lane's shard before a join (as it last read them), and sends a leave
to each that holds the user. Two replicas that decide one user's join under different N at the
moment of a growth, or through two lanes before either has read the other's stream, can both
append it; that user is then in through two streams, which every consumer folds as one
membership (a join of someone in changes nothing), and their leave goes to both.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from google.protobuf.message import Message
from immutables import Map

from libs.domain.decider import Context, Decider
from libs.domain.streams import listener_shard_stream, space_stream
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.decide import join_decision
from services.room.domain.limits import RoomLimits
from services.room.domain.state import Space


@dataclass(frozen=True)
class ShardState:
    """Who is in through this stream (user -> when they joined), who was removed through it, and
    the stream's version (for an answer's read-your-writes token)."""

    members: Map[str, datetime] = field(default_factory=Map)
    removed: frozenset[str] = frozenset()
    version: int = 0

    def is_in(self, user_id: str) -> bool:
        return user_id in self.members


EMPTY_SHARD = ShardState()


@dataclass(frozen=True)
class JoinOnShard:
    """The caller joins, decided against `space`: the Space's own stream's state as read for it."""

    join: c.JoinSpace
    space: Space


@dataclass(frozen=True)
class LeaveOnShard:
    """`user_id` leaves through this stream, if they are in through it; `previous_role` is the role
    the Space's own stream gives them (a voice's, or LISTENER)."""

    space_id: str
    user_id: str
    reason: int
    previous_role: int = types.ROLE_LISTENER
    mass_time_out: bool = False
    # A removal's share on the user's shard now: barred there (ParticipantBarred) if not in, so a
    # join decided on this stream after it is refused whatever the Space's state it was given.
    bar: bool = False


@dataclass(frozen=True)
class LeavesOnShard:
    """Many leaves through one shard stream in one append (an eviction's share of the shard)."""

    leaves: tuple[LeaveOnShard, ...]


def evolve_shard(state: ShardState, event: Message, at: datetime) -> ShardState:
    version = state.version + 1
    if isinstance(event, ev.ParticipantJoined):
        return ShardState(state.members.set(event.user_id, at), state.removed - {event.user_id}, version)
    if isinstance(event, ev.ParticipantLeft) and event.user_id in state.members:
        removed = (
            state.removed | {event.user_id} if event.reason == ev.LEAVE_REASON_REMOVED else state.removed
        )
        return ShardState(state.members.delete(event.user_id), removed, version)
    if isinstance(event, ev.ParticipantBarred):
        return ShardState(state.members, state.removed | {event.user_id}, version)
    return replace(state, version=version)


def decide_on_shard(
    command: JoinOnShard | LeaveOnShard | LeavesOnShard, state: ShardState, ctx: Context, limits: RoomLimits
) -> list[Message]:
    if isinstance(command, LeaveOnShard | LeavesOnShard):
        leaves = command.leaves if isinstance(command, LeavesOnShard) else (command,)
        return [
            ev.ParticipantLeft(
                space_id=leave.space_id,
                user_id=leave.user_id,
                reason=leave.reason,
                previous_role=leave.previous_role,
                mass_time_out=leave.mass_time_out,
            )
            if state.is_in(leave.user_id)
            else ev.ParticipantBarred(space_id=leave.space_id, user_id=leave.user_id)
            for leave in {leave.user_id: leave for leave in leaves}.values()
            if state.is_in(leave.user_id) or (leave.bar and leave.user_id not in state.removed)
        ]
    user = ctx.actor_user_id
    if command.space.listener_shards < 2 or user == command.space.host_user_id:
        raise ValueError("the host, and everyone in a Space without shards, joins on the Space's own stream")
    if state.is_in(user):
        return []
    join = replace(command.join, barred=True) if user in state.removed else command.join
    return join_decision(join, command.space, ctx, limits)


def make_shard_decider(limits: RoomLimits = RoomLimits()) -> Decider:
    return Decider(partial(decide_on_shard, limits=limits), evolve_shard, EMPTY_SHARD)


def shard_in_lane(user_id: str, shards: int, lanes: int, lane: int | None) -> int:
    """The shard `user_id` joins on among `shards`, written through writer lane `lane` of the
    Space's `lanes` (ADR 0018): lane l of w = min(lanes, shards) holds the shards k with
    k mod w = l, and the user's is the one their hash picks among those. With no lane (a replica
    that holds none), the lane is the user's own, which makes it shard_of(user, shards): one lane's
    placement exactly."""
    return _in_lane(zlib.crc32(user_id.encode()), shards, lanes, lane)


def _in_lane(h: int, shards: int, lanes: int, lane: int | None) -> int:
    w = min(lanes, shards)
    return (h % w if lane is None else lane % w) + w * ((h // w) % (shards // w))


def streams_of(
    space_id: str, user_id: str, shards: int, lanes: int = 1, lane: int | None = None
) -> list[str]:
    """Every stream the user's membership of the Space can be on when it has `shards` shards dealt
    to `lanes` writer lanes: their shard now through `lane` first, then their shard now through
    each other lane (min(lanes, shards) - 1 of them), then under each smaller count it has had
    (through every lane), then the Space's own."""
    if shards < 2:
        return [space_stream(space_id)]
    h = zlib.crc32(user_id.encode())
    here = _in_lane(h, shards, lanes, lane)
    found = {here: None}
    n = shards
    while n >= 2:
        for other in range(min(lanes, n)):
            found.setdefault(_in_lane(h, n, lanes, other))
        n //= 2
    return [*(listener_shard_stream(space_id, k) for k in found), space_stream(space_id)]
