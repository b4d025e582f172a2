"""When a hot Space grows its listener shards (`ShardGrowth`, ADR 0012), with the room's decider
behind a fake `SpaceCommands`: a rush doubles the Space once per count it outgrows, never once per
join that reaches a stream after the second that made it grow."""

from __future__ import annotations

import asyncio

from libs.domain.decider import SYSTEM_CLAIM, Context
from libs.domain.streams import listener_shard_stream
from podium.room.v1 import room_events_pb2 as ev
from services.room.application.space_commands import ShardGrowth, stream_of
from services.room.domain import commands as c
from services.room.domain.decide import decide
from services.room.domain.limits import RoomLimits
from tests.unit.room.given import NOW, SPACE, live, state_of

PER_SHARD = 100
# The rest of the second after a stream outgrew its share: more joins, but less than a share.
PAST_A_SHARE = range(1, PER_SHARD + PER_SHARD // 2)


class Commands:
    """The Space's own stream, deciding growths with the room's decider."""

    def __init__(self):
        self.events = live()
        self.asked: list[int] = []

    @property
    def space(self):
        return state_of(*self.events)

    async def run_as_system(self, space_id: str, command: c.GrowListenerShards, reason: str) -> list:
        self.asked.append(command.shards)
        ctx = Context("system:room", NOW, frozenset({SYSTEM_CLAIM}))
        produced = decide(command, self.space, ctx, RoomLimits())
        self.events += produced
        return produced


async def _joins(growth: ShardGrowth, commands: Commands, stream: str, versions: range, *, cached=None):
    """Joins recorded on `stream` at `versions`, each seen on the Space as this replica's cache has
    it (`cached`: a fixed, stale state) and each followed by a turn of the loop, so a growth asked
    for completes between them."""
    for version in versions:
        growth.appended(cached or commands.space, stream, version)
        await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_stream_past_its_share_doubles_the_space_once_and_the_joins_after_it_do_not():
    commands = Commands()
    growth = ShardGrowth(commands, PER_SHARD, max_shards=256)

    await _joins(growth, commands, stream_of(SPACE), PAST_A_SHARE)

    assert commands.asked == [2]
    assert commands.space.listener_shards == 2


async def test_a_shard_that_outgrows_its_share_at_the_new_count_doubles_it_again():
    commands = Commands()
    growth = ShardGrowth(commands, PER_SHARD, max_shards=256)
    await _joins(growth, commands, stream_of(SPACE), range(1, PER_SHARD + 2))
    assert commands.space.listener_shards == 2

    await _joins(growth, commands, listener_shard_stream(SPACE, 0), range(1, PER_SHARD // 2))
    assert commands.asked == [2]  # half its share: the count holds
    await _joins(growth, commands, listener_shard_stream(SPACE, 1), PAST_A_SHARE)
    assert (commands.asked, commands.space.listener_shards) == ([2, 4], 4)


async def test_a_replica_whose_cache_has_not_seen_the_growth_asks_once():
    commands = Commands()
    growth = ShardGrowth(commands, PER_SHARD, max_shards=256)
    stale = commands.space

    await _joins(growth, commands, stream_of(SPACE), PAST_A_SHARE, cached=stale)

    assert commands.asked == [2]
    assert [e.shards for e in commands.events if isinstance(e, ev.ListenerShardsGrown)] == [2]


async def test_nothing_grows_past_the_maximum_or_while_the_setting_is_off():
    commands = Commands()
    await _joins(ShardGrowth(commands, 0, max_shards=256), commands, stream_of(SPACE), range(1, 1000))
    assert commands.asked == []

    capped = ShardGrowth(commands, PER_SHARD, max_shards=2)
    await _joins(capped, commands, stream_of(SPACE), PAST_A_SHARE)
    await _joins(capped, commands, listener_shard_stream(SPACE, 0), range(1, 3 * PER_SHARD))
    assert commands.asked == [2]
