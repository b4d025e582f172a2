"""Writing SpeakerStartedTalking / SpeakerStoppedTalking through the event store, off the hot path.

The fan-out hands transitions to `offer` (never blocks: a full queue drops and
counts); a background task appends them, batched per Space, to the Space's
stream in the `media_relay` schema, whence the outbox relay publishes them on
`podium.media.events.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from libs.events.envelope import Causation
from libs.events.ids import new_id
from libs.events.topics import MEDIA_EVENTS
from libs.eventstore.store import ConcurrencyConflict, EventStore, NewEvent
from podium.media.v1 import media_events_pb2 as ev
from services.media_relay.domain.talking import StartedTalking, Transition

log = logging.getLogger(__name__)


def to_event(space_id: str, user_id: str, change: Transition):
    if isinstance(change, StartedTalking):
        return ev.SpeakerStartedTalking(space_id=space_id, user_id=user_id)
    return ev.SpeakerStoppedTalking(space_id=space_id, user_id=user_id, talked_ms=change.talked_ms)


class TalkingEvents:
    def __init__(self, store: EventStore, queue_size: int = 10000):
        self.store = store
        self.queue: asyncio.Queue[tuple[str, str, Transition]] = asyncio.Queue(queue_size)
        self.dropped = 0
        self.written = 0
        self._versions: dict[str, int] = {}
        self._task: asyncio.Task | None = None

    def offer(self, space_id: str, user_id: str, change: Transition) -> None:
        try:
            self.queue.put_nowait((space_id, user_id, change))
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="talking-events")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), 5)

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            self.queue.put_nowait(item)
            try:
                await self._drain()
            except Exception:
                log.exception("could not write talking events; retrying")
                await asyncio.sleep(0.5)

    async def _drain(self) -> None:
        batches: dict[str, list[tuple[tuple[str, str, Transition], NewEvent]]] = {}
        while not self.queue.empty():
            item = self.queue.get_nowait()
            space_id, user_id, change = item
            at = datetime.fromtimestamp(change.at_ms / 1000, UTC)
            causation = Causation(actor_user_id=user_id, correlation_id=new_id(), causation_id="")
            event = NewEvent(to_event(space_id, user_id, change), at, causation)
            batches.setdefault(space_id, []).append((item, event))
        try:
            for space_id in list(batches):
                events = [e for _, e in batches[space_id]]
                await self._append(space_id, events)
                self.written += len(events)
                del batches[space_id]
        except BaseException:
            for pairs in batches.values():  # not written: keep them for the retry
                for item, _ in pairs:
                    self.offer(*item)
            raise

    async def _append(self, space_id: str, events: list[NewEvent]) -> None:
        for _ in range(5):
            if space_id not in self._versions:
                self._versions[space_id] = await self.store.stream_version(space_id)
            try:
                await self.store.append(
                    stream_id=space_id,
                    space_id=space_id,
                    topic=MEDIA_EVENTS.name,
                    expected_version=self._versions[space_id],
                    events=events,
                )
                self._versions[space_id] += len(events)
                return
            except ConcurrencyConflict:
                self._versions.pop(space_id, None)  # another relay wrote (a failover): reload
        raise ConcurrencyConflict(f"could not append talking events to {space_id}")
