"""The per-Space ticker: one message per tick with every speaker's new frames, shared by all gateways."""

from __future__ import annotations

import asyncio

from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_types_pb2 as mt
from services.media_relay.application.fanout import Fanout, framed
from services.media_relay.domain.talking import StartedTalking, StoppedTalking, TalkingPolicy


def entry(speaker: str, seq: int) -> bytes:
    return framed(mt.RelayedFrame(speaker_id=speaker, sequence=seq, opus=b"o").SerializeToString())


async def _next(messages, timeout=1.0) -> pb.SubscribeResponse:
    return pb.SubscribeResponse.FromString(await asyncio.wait_for(anext(messages), timeout))


async def test_a_tick_bundles_every_speakers_new_frames_in_speaker_order_for_every_gateway():
    talk = []
    fanout = Fanout(0.02, TalkingPolicy(), lambda *a: talk.append(a))
    space = fanout.space("s")
    gateways = [space.add_subscriber(10) for _ in range(3)]
    streams = [g.messages() for g in gateways]
    space.push("zoe", entry("zoe", 0), -10, 0)
    space.push("amy", entry("amy", 0), -10, 0)
    space.push("amy", entry("amy", 1), -10, 20)  # two frames in one tick: both go
    first = [await _next(s) for s in streams]
    assert all(m == first[0] for m in first)
    assert [(f.speaker_id, f.sequence) for f in first[0].frames] == [("amy", 0), ("amy", 1), ("zoe", 0)]
    assert first[0].tick == 1 and first[0].dropped_total == 0
    assert talk == [("s", "amy", StartedTalking(20))]  # two loud frames: amy talks; zoe not yet

    # Empty ticks are skipped: the next message is the next tick that has frames.
    await asyncio.sleep(0.07)
    space.push("zoe", entry("zoe", 1), -10, 100)
    second = await _next(streams[0])
    assert [(f.speaker_id, f.sequence) for f in second.frames] == [("zoe", 1)]
    assert second.tick == 2

    # A late joiner starts at the live edge: nothing from before it subscribed.
    late = space.add_subscriber(10)
    space.push("amy", entry("amy", 2), -10, 120)
    got = await _next(late.messages())
    assert [(f.speaker_id, f.sequence) for f in got.frames] == [("amy", 2)]

    fanout.space_ended("s")  # everyone talking stops with the Space
    assert {(u, type(c)) for _, u, c in talk} == {
        ("amy", StartedTalking),
        ("zoe", StartedTalking),
        ("amy", StoppedTalking),
        ("zoe", StoppedTalking),
    }
    rest = [m async for m in gateways[0].messages()]
    assert all(isinstance(m, bytes) for m in rest)  # drained, then the stream ends (OK)


async def test_a_slow_gateway_loses_only_its_own_oldest_ticks():
    fanout = Fanout(0.005, TalkingPolicy(), lambda *a: None)
    space = fanout.space("s")
    fast, slow = space.add_subscriber(4), space.add_subscriber(4)
    fast_messages, received = fast.messages(), []
    for seq in range(20):
        space.push("amy", entry("amy", seq), -10, seq * 20)
        received.append(await _next(fast_messages))  # the fast gateway keeps up
    assert [m.frames[0].sequence for m in received] == list(range(20))
    assert received[-1].dropped_total == 0
    slow.close()
    late = [pb.SubscribeResponse.FromString(m) async for m in slow.messages()]
    assert [m.frames[0].sequence for m in late] == [16, 17, 18, 19]
    assert late[-1].dropped_total == 16
    fanout.shutdown()
