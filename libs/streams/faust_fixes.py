"""Upstream bugs Podium works around, each in one place, each with a test that fails when
upstream changes (tests/unit/libs/test_faust_fixes.py, tests/integration/test_upstream_fixes.py).

This is the one module allowed to reach into faust's and aiokafka's internals
(tests/unit/test_public_apis_only.py checks every other module); docs/architecture.md
lists each fix beside the upstream behaviour it corrects. Both were found by the
SIGKILL fault tests.

- faust-streaming 0.15's producer buffer `flush` gives up after 0.1 s (`drain_on_flush`).
- faust-streaming 0.15 (with aiokafka's seek) seeks stream partitions while they are being
  fetched and delivered, one at a time, and then empties its stream queues, so records fetched
  from a new position before that are lost; and it leaves a partition without a committed offset
  where its fetcher was instead of where the reset policy says (`seek_every_partition_in_one_step`).
- faust-streaming 0.15 acks a message its stream skipped unread (flow stopped for a rebalance, or
  fetched in an older generation), so a commit can cover a record no agent saw
  (`ack_only_what_a_stream_took`).
- The embedded dev broker (Tansu 0.6) reports a partition's end offset as its
  last batch's base offset + 1, so faust's table recovery stops short of the
  newest values (`read_changelogs_to_their_true_ends`). On Apache Kafka the
  reported ends are the true ones and this costs one fetch per recovery.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka import TopicPartition
from faust.transport.producer import ProducerBuffer

from libs.config.settings import PodiumSettings
from libs.events.kafka import log_end_offsets, make_reader

log = logging.getLogger(__name__)


class DrainingProducerBuffer(ProducerBuffer):
    """faust's buffer of `send_soon` messages (every table write's changelog record), whose `flush`
    returns only when each buffered message has been handed to the Kafka client.

    faust 0.15's `flush` gives up as soon as one message takes longer than 0.1 s to be handed over
    (a busy loop, a metadata refresh, a slow broker) and returns with messages still buffered; a
    message already taken from the queue but not yet handed over is not counted at all. The
    consumer flushes the producer and then commits its source offsets, so it could commit offsets
    whose table writes were still in this buffer. A SIGKILL then lost those writes: the table came
    back from its changelog older than the committed offsets, and the records between were never
    applied (docs/decisions/0006-faust-commits-only-what-its-tables-hold.md).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.handing_over = 0

    async def _send_pending(self, fut) -> None:
        self.handing_over += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.handing_over -= 1
            self.message_sent.set()

    async def flush(self) -> None:
        while self.size or self.handing_over:
            if self.state != "running":
                raise RuntimeError(
                    f"cannot flush {self.size + self.handing_over} messages: producer not running"
                )
            self.message_sent.clear()
            try:
                await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
            except TimeoutError:
                continue  # still waiting on the Kafka client; the state is checked again


def drain_on_flush(app: faust.App) -> None:
    producer = app.producer  # created here, started with the app
    buffer = DrainingProducerBuffer(loop=producer.loop, beacon=producer.beacon)
    buffer.app = app
    producer.buffer = buffer


def read_changelogs_to_their_true_ends(app: faust.App, settings: PodiumSettings) -> None:
    """Where faust's table recovery stops reading each changelog partition: the end its records
    show (`libs.events.kafka.log_end_offsets`, with a group-less reader of its own), never below
    the end the broker reports. faust asks its consumer's `highwaters`, which asks the broker only."""

    async def highwaters(*partitions):
        if not partitions:
            return {}
        probe = make_reader(settings, f"{app.conf.id}-recovery-ends")
        await probe.start()
        try:
            parts = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
            probe.assign(parts)
            found = await log_end_offsets(probe, parts)
        finally:
            await probe.stop()
        return {tp: found[TopicPartition(tp.topic, tp.partition)] for tp in partitions}

    app.consumer.highwaters = highwaters


def seek_every_partition_in_one_step(app: faust.App) -> None:
    """After each rebalance and recovery, every stream partition of this app is moved to where it is
    read from next in one step, and nothing is fetched from it again until faust has emptied its
    stream queues: its committed offset, or for one without a commit its earliest offset, as
    `consumer_auto_offset_reset="earliest"` promises.

    faust resumes its stream partitions before it seeks them to their committed offsets, and its
    flow is already running, so records fetched meanwhile go into the streams' queues; once the
    seek is done, faust resumes its flow control, which empties those queues, counting on the seek
    to deliver everything again. Three gaps in that:

    - The client's seek (aiokafka's `seek_to_committed`) asks for one partition's committed offset,
      seeks it, then asks for the next one's: a partition seeked early is fetched from its new
      position while the later ones are asked for.
    - Even after the last seek, the client's thread goes on fetching while faust's loop gets round
      to resuming its flow control. Records fetched from the new positions and put in a queue in
      between are emptied with it, and nothing seeks them again: a restarted analytics replica
      lost one room event this way and found the Space's next version missing for good
      (tests/faults/test_derived_views.py).
    - faust leaves a partition without a commit where its fetcher was, having dropped what it
      fetched during the recovery, instead of where the reset policy says; a replica killed before
      its first commit left the next one starting in the middle of the log.

    Here, inside the consumer's thread, the stream partitions are paused in the client first (a
    fetch already made is not delivered any more), every committed and earliest offset is read,
    and every partition is seeked at once. They are resumed once faust resumes its consumer's flow,
    which it does right after its flow control has emptied the queues.
    """
    consumer = app.consumer
    from_the_start = app.conf.consumer_auto_offset_reset == "earliest"
    held: set = set()  # stream partitions paused from a seek until the flow resumes (main loop only)

    def streams(partitions) -> list:
        return [tp for tp in partitions if tp.topic not in app.tables.changelog_topics]

    async def seek(client) -> dict:  # in the consumer's thread, with the aiokafka client
        assigned = client.assignment()
        client.pause(*streams(assigned))  # recovery reads the changelogs itself
        committed = {tp: await client.committed(tp) for tp in assigned}
        uncommitted = [tp for tp in streams(committed) if not committed[tp]]
        earliest = await client.beginning_offsets(uncommitted) if uncommitted and from_the_start else {}
        for tp, offset in committed.items():
            if offset and offset > 0:
                client.seek(tp, offset)
        for tp, offset in earliest.items():
            client.seek(tp, offset)
        if earliest:
            log.info("no committed offset for %s: reading them from the start", sorted(map(tuple, earliest)))
        return committed

    async def resume(client, partitions) -> None:  # in the consumer's thread
        assigned = client.assignment()
        client.resume(*(tp for tp in partitions if tp in assigned))

    async def seek_to_committed():
        thread = consumer._thread
        committed = await thread.call_thread(seek, thread._ensure_consumer())
        held.update(streams(committed))
        return committed

    resume_flow = consumer.resume_flow

    def resume_flow_and_partitions() -> None:
        resume_flow()
        if held:
            thread, partitions = consumer._thread, list(held)
            held.clear()
            resuming = asyncio.ensure_future(
                thread.call_thread(resume, thread._ensure_consumer(), partitions)
            )
            resuming.add_done_callback(_log_failure)

    consumer.seek_to_committed = seek_to_committed
    consumer.resume_flow = resume_flow_and_partitions


def _log_failure(done: asyncio.Future) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("could not resume stream partitions after a seek: %r", done.exception())


def ack_only_what_a_stream_took(app: faust.App) -> None:
    """An ack counts only for a message a stream took in (tracked it); one it skipped unread does not.

    A stream skips a message that arrives while the app's flow is stopped (a rebalance or recovery
    under way) or that was fetched in an older group generation, and faust counting on the seek
    back to the committed offsets to deliver it again, but it also acks it, even on a stream
    whose acks are manual. The next commit can then cover that record although no agent saw it:
    analytics, restarted after a SIGKILL, found the Space's next version missing for good (one
    version after the table's, tests/faults/test_derived_views.py). Without the ack the record
    is read again after the seek; a message a stream took in (tracked, then acked by the agent or
    its filter) is acked as before.
    """
    consumer = app.consumer
    upstream = consumer.ack

    def ack(message) -> bool:
        if getattr(message, "use_tracking", False) and not message.tracked:
            return False
        return upstream(message)

    consumer.ack = ack
