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


# After a recovery: stream partitions without a committed offset are read from the start.

ROOM, CHANGELOG = "podium.room.events.v1", "app-space-stats-changelog"


class FakeConsumer:
    """What faust's `perform_seek` and the fix touch: a consumer whose committed offsets are
    `committed` (tp -> offset or None); seeks to the beginning are recorded."""

    def __init__(self, committed: dict):
        from collections import defaultdict

        self._committed_offset = defaultdict(lambda: None)
        self._read_offset = defaultdict(lambda: None)
        self._committed = committed
        self.to_the_beginning: list = []
        self._thread = SimpleNamespace(seek_to_beginning=self._to_the_beginning)

    async def seek_to_committed(self):  # the client's: seeks those with an offset, returns all
        return dict(self._committed)

    async def _to_the_beginning(self, *tps):
        self.to_the_beginning.extend(tps)


def _app(consumer: FakeConsumer, reset: str = "earliest"):
    return SimpleNamespace(
        consumer=consumer,
        conf=SimpleNamespace(consumer_auto_offset_reset=reset),
        tables=SimpleNamespace(changelog_topics={CHANGELOG}),
    )


async def test_a_stream_partition_without_a_commit_is_read_from_its_start_when_faust_seeks():
    from faust.transport.consumer import Consumer
    from faust.types import TP

    from libs.streams.faust_fixes import read_uncommitted_partitions_from_the_start

    fresh, resumed, changelog = TP(ROOM, 0), TP(ROOM, 1), TP(CHANGELOG, 0)
    consumer = FakeConsumer({fresh: None, resumed: 40, changelog: None})
    read_uncommitted_partitions_from_the_start(_app(consumer))
    await Consumer.perform_seek(consumer)  # faust's own, calling the fix through seek_to_committed
    assert consumer.to_the_beginning == [fresh]  # not the committed one, nor a changelog (recovery's)
    assert consumer._read_offset[fresh] is None and consumer._committed_offset[resumed] == 40

    latest = FakeConsumer({fresh: None})
    read_uncommitted_partitions_from_the_start(_app(latest, reset="latest"))
    await Consumer.perform_seek(latest)
    assert latest.to_the_beginning == []


async def test_fausts_own_seek_leaves_a_partition_without_a_commit_alone_which_is_why_the_fix_exists():
    """If this starts failing, faust seeks uncommitted partitions itself, and the fix can go."""
    from faust.transport.consumer import Consumer
    from faust.types import TP

    consumer = FakeConsumer({TP(ROOM, 0): None})
    await Consumer.perform_seek(consumer)
    assert consumer.to_the_beginning == []


def test_the_fix_reaches_the_clients_seek_to_the_beginning_where_faust_keeps_it():
    """The fix calls the consumer thread's `seek_to_beginning` (faust's Consumer has none)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

    assert hasattr(AIOKafkaConsumerThread, "seek_to_beginning")
    assert "_thread" in Consumer.__annotations__ or hasattr(Consumer, "_new_consumer_thread")


# Acks: only for messages a stream took in.


def test_an_ack_of_a_message_a_stream_skipped_unread_does_not_count():
    from faust.types.tuples import Message

    from libs.streams.faust_fixes import ack_only_what_a_stream_took

    acked = []
    consumer = SimpleNamespace(ack=lambda message: acked.append(message.offset) or True)
    ack_only_what_a_stream_took(SimpleNamespace(consumer=consumer))

    def message(offset: int, tracked: bool):
        m = SimpleNamespace(use_tracking=True, tracked=tracked, offset=offset)
        return m

    assert consumer.ack(message(7, tracked=False)) is False  # skipped: read again after the seek
    assert consumer.ack(message(8, tracked=True)) is True
    assert consumer.ack(SimpleNamespace(use_tracking=Message.use_tracking, tracked=True, offset=9))
    assert acked == [8, 9]


def test_faust_still_acks_what_a_stream_skips_which_is_why_the_fix_exists():
    """If this starts failing, faust no longer acks skipped messages (or skips differently): look
    again at `ack_only_what_a_stream_took`."""
    import inspect

    from faust.streams import Stream

    source = inspect.getsource(Stream._py_aiter)
    assert "value = skipped_value" in source and "do_ack or value is skipped_value" in source
    skip, track = source.index("value = skipped_value"), source.index("message.tracked = True")
    assert skip < track  # a skipped message is acked without ever being tracked
