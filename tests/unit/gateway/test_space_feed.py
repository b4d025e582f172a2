"""One Subscribe per Space per gateway, fanned out to its listeners (services/gateway/application)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from services.gateway.application.space_feed import Feeds


class Sink:
    def __init__(self, user_id: str):
        self.user_id = user_id
        self.got: list[bytes] = []

    def offer(self, opus: bytes) -> None:
        self.got.append(opus)


class FakeCodecs:
    """Decoding gives a frame of the packet's first byte; encoding gives the sum's first sample."""

    def decoder(self):
        return SimpleNamespace(decode=lambda opus: np.full(960, opus[0] / 1000, np.float32))

    def encoder(self):
        return SimpleNamespace(encode=lambda pcm: [b"mix:%d" % round(pcm[0] * 1000)])


def frame(speaker: str, opus: bytes):
    captured = Timestamp()
    captured.GetCurrentTime()
    return SimpleNamespace(speaker_id=speaker, opus=opus, captured_at=captured)


async def test_listeners_of_one_space_share_one_subscribe_and_each_hears_everyone_but_themselves():
    calls: list[str] = []
    go = asyncio.Event()

    async def subscribe(space_id: str):
        calls.append(space_id)
        await go.wait()
        yield SimpleNamespace(frames=[frame("ana", b"\x01")])
        yield SimpleNamespace(frames=[frame("ana", b"\x02"), frame("ben", b"\x03")])
        await asyncio.Event().wait()  # the stream stays open

    feeds = Feeds(subscribe, FakeCodecs())
    ana, ben, cal = Sink("ana"), Sink("ben"), Sink("cal")
    for sink in (ana, ben, cal):
        feeds.join("space-1", sink)
    go.set()
    async with asyncio.timeout(2):
        while len(cal.got) < 2:
            await asyncio.sleep(0.01)
    assert calls == ["space-1"]
    assert ana.got == [b"\x03"]  # her own frame never; Ben's as it came
    assert ben.got == [b"\x01", b"\x02"]
    assert cal.got == [b"\x01", b"mix:5"]  # both voices: decoded, summed, encoded once
    for sink in (ana, ben, cal):
        feeds.leave("space-1", sink)
    assert feeds.feeds == {}
    await feeds.stop()


async def test_the_feed_subscribes_again_when_its_stream_ends_while_someone_listens():
    calls: list[str] = []

    async def subscribe(space_id: str):
        calls.append(space_id)
        yield SimpleNamespace(frames=[frame("ana", b"\x01")])

    feeds = Feeds(subscribe, FakeCodecs())
    sink = Sink("ben")
    feeds.join("space-2", sink)
    async with asyncio.timeout(3):
        while len(calls) < 2:
            await asyncio.sleep(0.05)
    feeds.leave("space-2", sink)
    await feeds.stop()
    assert sink.got[:2] == [b"\x01", b"\x01"]
