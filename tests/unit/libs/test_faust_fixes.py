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


# After a recovery: every stream partition seeked in one step, after the last round trip, and one
# without a committed offset from its start.

ROOM, CHANGELOG = "podium.room.events.v1", "app-space-stats-changelog"
EARLIEST = 3


class FakeClient:
    """The aiokafka client as the fix uses it: each lookup is a round trip (an await); `log` says in
    which order the lookups and the seeks happened."""

    def __init__(self, committed: dict):
        self._committed = committed
        self.log: list[tuple] = []

    def assignment(self):
        return set(self._committed)

    async def committed(self, tp):
        await asyncio.sleep(0)
        self.log.append(("committed", tp))
        return self._committed[tp]

    async def beginning_offsets(self, tps):
        await asyncio.sleep(0)
        self.log.append(("earliest", *tps))
        return dict.fromkeys(tps, EARLIEST)

    def seek(self, tp, offset):
        self.log.append(("seek", tp, offset))

    def pause(self, *tps):
        self.log.append(("pause", *sorted(tps)))

    def resume(self, *tps):
        self.log.append(("resume", *sorted(tps)))


class FakeConsumer:
    """What faust's `perform_seek` and the fix touch: its offsets, and a consumer thread running
    the fix's step with the client."""

    def __init__(self, client: FakeClient):
        from collections import defaultdict

        self._committed_offset = defaultdict(lambda: None)
        self._read_offset = defaultdict(lambda: None)

        async def call_thread(fun, *args):
            return await fun(*args)

        self._thread = SimpleNamespace(call_thread=call_thread, _ensure_consumer=lambda: client)
        self.flow_resumed = 0

    def resume_flow(self):  # faust's: right after its flow control emptied the stream queues
        self.flow_resumed += 1


def _app(consumer: FakeConsumer, reset: str = "earliest"):
    return SimpleNamespace(
        consumer=consumer,
        conf=SimpleNamespace(consumer_auto_offset_reset=reset),
        tables=SimpleNamespace(changelog_topics={CHANGELOG}),
    )


async def test_every_partition_is_seeked_in_one_step_after_the_last_round_trip():
    from faust.transport.consumer import Consumer
    from faust.types import TP

    from libs.streams.faust_fixes import seek_every_partition_in_one_step

    fresh, resumed, other, changelog = TP(ROOM, 0), TP(ROOM, 1), TP(ROOM, 2), TP(CHANGELOG, 0)
    client = FakeClient({fresh: None, resumed: 40, other: 7, changelog: None})
    consumer = FakeConsumer(client)
    seek_every_partition_in_one_step(_app(consumer))
    await Consumer.perform_seek(consumer)  # faust's own, calling the fix through seek_to_committed

    streams = sorted([fresh, resumed, other])
    assert client.log[0] == ("pause", *streams)  # before any round trip; not the changelog
    seeks = [entry for entry in client.log if entry[0] == "seek"]
    assert sorted(seeks) == sorted([("seek", resumed, 40), ("seek", other, 7), ("seek", fresh, EARLIEST)])
    assert client.log[-len(seeks) :] == seeks  # no round trip after the first seek
    assert ("earliest", fresh) in client.log  # not the committed ones, nor a changelog (recovery's)
    assert consumer._read_offset[fresh] is None and consumer._committed_offset[resumed] == 40

    # Paused until faust resumes its flow, which it does once its stream queues are emptied.
    await asyncio.sleep(0.01)
    assert client.log[-1][0] == "seek"
    consumer.resume_flow()
    await asyncio.sleep(0.01)
    assert consumer.flow_resumed == 1 and client.log[-1] == ("resume", *streams)
    consumer.resume_flow()  # again, with nothing held: nothing more to resume
    await asyncio.sleep(0.01)
    assert consumer.flow_resumed == 2 and [e[0] for e in client.log].count("resume") == 1

    latest = FakeClient({fresh: None, resumed: 40})
    consumer = FakeConsumer(latest)
    seek_every_partition_in_one_step(_app(consumer, reset="latest"))
    await Consumer.perform_seek(consumer)
    assert [entry for entry in latest.log if entry[0] not in ("committed", "pause")] == [
        ("seek", resumed, 40)
    ]


async def test_the_clients_own_seek_moves_a_partition_before_it_asks_for_the_next_which_is_why_the_fix_exists():
    """aiokafka's `seek_to_committed` (which faust's is) seeks each partition as soon as it has its
    committed offset, then awaits the next one's, so a partition seeked early is fetched from its
    new position meanwhile; and it leaves one without a commit alone. If this starts failing, look
    again at the fix."""
    import aiokafka
    from aiokafka import TopicPartition

    first, second, fresh = TopicPartition(ROOM, 0), TopicPartition(ROOM, 1), TopicPartition(ROOM, 2)
    client = FakeClient({first: 10, second: 20, fresh: None})
    this = SimpleNamespace(
        _subscription=SimpleNamespace(assigned_partitions=lambda: [first, second, fresh]),
        committed=client.committed,
        _fetcher=SimpleNamespace(seek_to=client.seek),
    )
    await aiokafka.AIOKafkaConsumer.seek_to_committed(this)
    assert client.log == [
        ("committed", first),
        ("seek", first, 10),
        ("committed", second),
        ("seek", second, 20),
        ("committed", fresh),  # and no seek: left where the fetcher was
    ]


def test_fausts_flow_control_empties_the_streams_queues_when_it_resumes():
    """Why a record fetched from a partition seeked before faust resumes its flow is lost: resuming
    empties the queues streams read from, counting on the seek to deliver it again. faust resumes
    its consumer's flow right after (where the fix resumes the partitions it paused)."""
    import inspect

    from faust.streams import Stream
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    flow = FlowControlEvent()
    queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    queue.put_nowait("fetched after its partition was seeked")
    flow.resume()
    assert queue.empty()
    assert "clear_on_resume=True" in inspect.getsource(Stream.__init__)
    from faust.tables.recovery import Recovery

    steps = inspect.getsource(Recovery._resume_streams)
    order = [
        steps.index(step)
        for step in (
            "resume_partitions(",
            "perform_seek()",
            "flow_control.resume()",
            "consumer.resume_flow()",
        )
    ]
    assert order == sorted(order)  # partitions resumed, seeked, queues emptied, then the flow resumed


def test_the_fix_reaches_the_client_in_the_consumer_thread_where_faust_keeps_it():
    """The fix runs in the consumer thread (`call_thread`) with the aiokafka client it holds."""
    import aiokafka
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

    assert hasattr(AIOKafkaConsumerThread, "call_thread") and hasattr(
        AIOKafkaConsumerThread, "_ensure_consumer"
    )
    assert "_thread" in Consumer.__annotations__ or hasattr(Consumer, "_new_consumer_thread")
    for method in ("assignment", "committed", "beginning_offsets", "seek", "pause", "resume"):
        assert hasattr(aiokafka.AIOKafkaConsumer, method)


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
