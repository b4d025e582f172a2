"""Live fan-out: per Space, a 20 ms ticker bundles the speakers' new frames into one message.

The hot path is plain function calls and byte concatenation. A frame is
encoded once when it is admitted (as a `RelayedFrame`, already framed as field
1 of `SubscribeResponse`); each tick joins the Space's pending frames and the
tick number into one encoded message, shared by every subscriber of the Space.
A subscriber's own `dropped_total` is appended as it is sent (concatenated
protobuf messages merge, so the result is one valid `SubscribeResponse`).

Each subscriber has a bounded queue of ticks. The ticker only appends to it
and never waits for a subscriber: when the queue is full the oldest tick is
dropped and its frames are counted in that subscriber's `dropped_total`, so a
slow gateway never slows the publisher or the other gateways. A subscriber
starts with an empty queue, i.e. at the live edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from libs.domain.errors import DomainError, FailedPrecondition, PermissionDenied, Unavailable
from libs.domain.reasons import Reason
from libs.telemetry.metrics import MEDIA_FRAMES
from services.media_relay.domain.talking import TalkingDetector, TalkingPolicy, Transition

FRAMES_OUT, FRAMES_DROPPED = MEDIA_FRAMES.labels("out"), MEDIA_FRAMES.labels("dropped")
log = logging.getLogger(__name__)

FRAMES_FIELD = b"\x0a"  # SubscribeResponse.frames: field 1, length-delimited
DROPPED_FIELD = b"\x10"  # SubscribeResponse.dropped_total: field 2, varint
TICK_FIELD = b"\x18"  # SubscribeResponse.tick: field 3, varint
TALKING_CHECK_EVERY_TICKS = 5


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def framed(relayed_frame: bytes) -> bytes:
    """An encoded RelayedFrame as one `frames` entry of a SubscribeResponse."""
    return FRAMES_FIELD + varint(len(relayed_frame)) + relayed_frame


class Subscriber:
    """One stream, a gateway's or a user's own (`user_id`): a bounded queue of encoded ticks, drop-oldest."""

    __slots__ = ("capacity", "closed", "dropped", "queue", "user_id", "wakeup")

    def __init__(self, capacity: int, user_id: str | None = None):
        self.capacity = capacity
        self.user_id = user_id
        self.queue: deque[tuple[bytes, int]] = deque()
        self.dropped = 0
        self.wakeup = asyncio.Event()
        self.closed: DomainError | bool | None = False

    def offer(self, payload: bytes, frames: int) -> None:
        queue = self.queue
        if len(queue) >= self.capacity:
            lost = queue.popleft()[1]
            self.dropped += lost
            FRAMES_DROPPED.inc(lost)
        queue.append((payload, frames))
        self.wakeup.set()

    def close(self, error: DomainError | None = None) -> None:
        """Ends the stream once the queue is drained: OK, or `error` (at once)."""
        self.closed = error if error is not None else True
        if error is not None:
            self.queue.clear()
        self.wakeup.set()

    async def messages(self):
        """Encoded SubscribeResponses, as fast as the gateway reads them."""
        queue, wakeup = self.queue, self.wakeup
        while True:
            if not queue:
                if self.closed is True:
                    return
                if self.closed:
                    raise self.closed
                wakeup.clear()
                await wakeup.wait()
                continue
            payload, frames = queue.popleft()
            FRAMES_OUT.inc(frames)
            if self.dropped:
                payload += DROPPED_FIELD + varint(self.dropped)
            yield payload


class PublishSession:
    """One speaker's publish stream; `done` resolves with the error that closes it."""

    __slots__ = ("done", "speaker_id")

    def __init__(self, speaker_id: str):
        self.speaker_id = speaker_id
        self.done: asyncio.Future[DomainError] = asyncio.get_running_loop().create_future()

    def close(self, error: DomainError) -> None:
        if not self.done.done():
            self.done.set_result(error)


class SpaceFanout:
    def __init__(
        self,
        space_id: str,
        tick_seconds: float,
        talking_policy: TalkingPolicy,
        on_talking: Callable[[str, str, Transition], None],
        on_idle: Callable[[SpaceFanout], None],
    ):
        self.space_id = space_id
        self.tick_seconds = tick_seconds
        self.talking_policy = talking_policy
        self.on_talking = on_talking
        self.on_idle = on_idle
        self.pending: dict[str, list[bytes]] = {}
        self.subscribers: set[Subscriber] = set()
        self.publishers: set[PublishSession] = set()
        self.talking: dict[str, TalkingDetector] = {}
        self.tick = 0
        self.frames_in = 0
        self.messages_out = 0
        self._task: asyncio.Task | None = None

    # The hot path

    def push(self, speaker_id: str, entry: bytes, level_dbov: int, now_ms: int) -> None:
        """Queues an admitted frame (already `framed`) for the next tick."""
        pending = self.pending.get(speaker_id)
        if pending is None:
            self.pending[speaker_id] = [entry]
        else:
            pending.append(entry)
        self.frames_in += 1
        detector = self.talking.get(speaker_id)
        if detector is None:
            detector = self.talking[speaker_id] = TalkingDetector(self.talking_policy)
        change = detector.observe(level_dbov, now_ms)
        if change is not None:
            self.on_talking(self.space_id, speaker_id, change)

    def silence(self, speaker_id: str, now_ms: int) -> None:
        """The speaker may not be heard (muted, demoted) or stopped publishing."""
        detector = self.talking.get(speaker_id)
        if detector is not None:
            change = detector.finish(now_ms)
            if change is not None:
                self.on_talking(self.space_id, speaker_id, change)

    def _emit(self) -> None:
        pending = self.pending
        if not pending:
            return
        self.pending = {}
        self.tick += 1
        count = 0
        parts = []
        for speaker_id in sorted(pending):
            entries = pending[speaker_id]
            count += len(entries)
            parts.extend(entries)
        parts.append(TICK_FIELD + varint(self.tick))
        payload = b"".join(parts)
        for subscriber in self.subscribers:
            subscriber.offer(payload, count)
        self.messages_out += len(self.subscribers)

    # Membership and lifetime

    def add_subscriber(self, capacity: int, user_id: str | None = None) -> Subscriber:
        subscriber = Subscriber(capacity, user_id)
        self.subscribers.add(subscriber)
        self._ensure_ticking()
        return subscriber

    def remove_subscriber(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def close_subscriptions_of(self, user_id: str, error: DomainError) -> None:
        """Ends the streams a user opened with their own token (a gateway's streams stay)."""
        for subscriber in self.subscribers:
            if subscriber.user_id == user_id:
                subscriber.close(error)

    def add_publisher(self, speaker_id: str) -> PublishSession:
        session = PublishSession(speaker_id)
        self.publishers.add(session)
        self._ensure_ticking()
        return session

    def remove_publisher(self, session: PublishSession) -> None:
        self.publishers.discard(session)
        if not any(p.speaker_id == session.speaker_id for p in self.publishers):
            self.silence(session.speaker_id, int(time.time() * 1000))

    def close(self, publish_error: DomainError, subscriber_error: DomainError | None) -> None:
        """Ends every stream of the Space: publishers with `publish_error`, subscribers after a last tick."""
        self._emit()
        now_ms = int(time.time() * 1000)
        for speaker_id in list(self.talking):
            self.silence(speaker_id, now_ms)
        for session in self.publishers:
            session.close(publish_error)
        for subscriber in self.subscribers:
            subscriber.close(subscriber_error)
        if self._task is not None:
            self._task.cancel()

    def _ensure_ticking(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"tick-{self.space_id}")

    async def _run(self) -> None:
        """Every tick: emit the pending frames; stop when nobody publishes or listens any more."""
        loop = asyncio.get_running_loop()
        interval = self.tick_seconds
        next_at = loop.time() + interval
        n = 0
        while self.subscribers or self.publishers or self.pending:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = loop.time()  # fell behind (a stall): do not burst to catch up
            next_at += interval
            try:
                self._emit()
                n += 1
                if n % TALKING_CHECK_EVERY_TICKS == 0:
                    self._check_talking()
            except Exception:
                log.exception("tick of space %s failed", self.space_id)
        self.on_idle(self)

    def _check_talking(self) -> None:
        now_ms = int(time.time() * 1000)
        for speaker_id, detector in self.talking.items():
            change = detector.tick(now_ms)
            if change is not None:
                self.on_talking(self.space_id, speaker_id, change)


SPACE_ENDED = FailedPrecondition("space ended", reason=Reason.SPACE_ENDED)


def no_longer_in(space_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"you are no longer in space {space_id!r} (you left, timed out or were removed)",
        reason=Reason.NOT_A_PARTICIPANT,
    )


SHUTTING_DOWN = Unavailable(
    "the media relay is shutting down; reconnect (GetMediaEndpoint) and resume at the live edge",
    reason=Reason.RELAY_SHUTTING_DOWN,
)


class Fanout:
    """Every Space this relay serves."""

    def __init__(
        self,
        tick_seconds: float,
        talking_policy: TalkingPolicy,
        on_talking: Callable[[str, str, Transition], None],
    ):
        self.tick_seconds = tick_seconds
        self.talking_policy = talking_policy
        self.on_talking = on_talking
        self.spaces: dict[str, SpaceFanout] = {}

    def space(self, space_id: str) -> SpaceFanout:
        fanout = self.spaces.get(space_id)
        if fanout is None:
            fanout = self.spaces[space_id] = SpaceFanout(
                space_id, self.tick_seconds, self.talking_policy, self.on_talking, self._idle
            )
        return fanout

    def _idle(self, fanout: SpaceFanout) -> None:
        if self.spaces.get(fanout.space_id) is fanout and not (fanout.subscribers or fanout.publishers):
            del self.spaces[fanout.space_id]

    def space_ended(self, space_id: str) -> None:
        fanout = self.spaces.pop(space_id, None)
        if fanout is not None:
            fanout.close(SPACE_ENDED, None)

    def participant_left(self, space_id: str, user_id: str) -> None:
        fanout = self.spaces.get(space_id)
        if fanout is not None:
            fanout.close_subscriptions_of(user_id, no_longer_in(space_id))

    def shutdown(self) -> None:
        for fanout in list(self.spaces.values()):
            fanout.close(SHUTTING_DOWN, SHUTTING_DOWN)
        self.spaces.clear()

    async def wait_idle(self) -> None:
        tasks = [f._task for f in self.spaces.values() if f._task]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
