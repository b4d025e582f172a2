"""The faust producer buffer's flush waits for every message, however slow the hand-over.

faust commits its source offsets right after flushing the producer, so a flush that returns early
lets a commit run ahead of the table writes it covers (lost after a SIGKILL).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.producer import ProducerBuffer

from libs.streams.faust_fixes import DrainingProducerBuffer


class SlowChannel:
    """Hands each message to "the Kafka client" after `delay` seconds, as a busy loop or a slow
    metadata refresh would."""

    def __init__(self, delay: float):
        self.delay = delay
        self.handed_over: list[int] = []

    async def publish_message(self, fut, wait: bool = False):
        await asyncio.sleep(self.delay)
        self.handed_over.append(fut.number)


def _message(channel: SlowChannel, number: int):
    return SimpleNamespace(number=number, message=SimpleNamespace(channel=channel))


async def _flushed(buffer_class, messages: int, delay: float) -> tuple[list[int], int]:
    buffer = buffer_class()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    channel = SlowChannel(delay)
    await buffer.start()
    try:
        for number in range(messages):
            buffer.put(_message(channel, number))
        await asyncio.wait_for(buffer.flush(), timeout=10)
        return list(channel.handed_over), buffer.size
    finally:
        await asyncio.sleep(delay * (messages + 1))  # let what faust's own flush left go out
        await buffer.stop()


async def test_flush_returns_only_when_every_message_was_handed_over():
    handed_over, left = await _flushed(DrainingProducerBuffer, messages=4, delay=0.25)
    assert handed_over == [0, 1, 2, 3] and left == 0


async def test_flush_waits_for_the_message_being_handed_over():
    # One message: the queue is empty as soon as the buffer's task takes it, before it is sent.
    handed_over, _ = await _flushed(DrainingProducerBuffer, messages=1, delay=0.25)
    assert handed_over == [0]


async def test_faust_own_buffer_returns_early_which_is_why_ours_exists():
    """If this starts failing, faust fixed its flush and `DrainingProducerBuffer` can go."""
    handed_over, left = await _flushed(ProducerBuffer, messages=4, delay=0.25)
    assert len(handed_over) < 4 and left > 0


async def test_flush_of_a_stopped_buffer_with_messages_left_is_an_error():
    buffer = DrainingProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    buffer.put(_message(SlowChannel(0.0), 0))  # never started: nothing will send it
    with pytest.raises(RuntimeError, match="not running"):
        await buffer.flush()
