"""The recorder sends a chunk the broker did not acknowledge again, the same bytes under the same
sequence, after making sure the topic exists, and counts it lost only when every attempt failed."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError

from libs.config.settings import PodiumSettings
from services.media_relay.application.recorder import Recorder


class _Broker:
    """A producer whose first `failures` deliveries fail, as a broker that just came back empty."""

    def __init__(self, failures: int):
        self.failures = failures
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, *, value: bytes, key: bytes):
        self.sent.append((topic, key, value))
        if self.failures > 0 and len(self.sent) % 2 == 0:  # a send refused outright, no delivery at all
            self.failures -= 1
            raise KafkaError("no metadata for the topic")
        delivery = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            delivery.set_exception(KafkaError("UnknownError"))
        else:
            delivery.set_result(None)
        return delivery


async def _record_one_chunk(broker: _Broker, max_attempts: int) -> Recorder:
    recorder = Recorder(PodiumSettings(), "relay-a", chunk_frames=2, max_attempts=max_attempts)
    recorder._producer = broker
    for frame in (b"frame-1", b"frame-2"):
        await recorder._take(("space-1", "alice", frame))
    async with asyncio.timeout(10):
        while recorder._resending or (broker.failures and len(broker.sent) < max_attempts):
            await asyncio.sleep(0.05)
    return recorder


async def test_a_chunk_not_acknowledged_is_sent_again_unchanged():
    broker = _Broker(failures=2)
    recorder = await _record_one_chunk(broker, max_attempts=5)
    assert len(broker.sent) == 3
    assert len({sent for sent in broker.sent}) == 1  # the same topic, key and bytes each time
    assert (recorder.chunks_written, recorder.chunks_resent, recorder.chunks_lost) == (1, 2, 0)


async def test_a_chunk_is_counted_lost_only_after_every_attempt():
    broker = _Broker(failures=10)
    recorder = await _record_one_chunk(broker, max_attempts=3)
    assert len(broker.sent) == 3
    assert (recorder.chunks_written, recorder.chunks_resent, recorder.chunks_lost) == (1, 2, 1)
