"""The relay's admission cache: the live Spaces, who may speak, who is muted, recording on or off.

The per-frame hot path reads memory, never PostgreSQL. Every relay replica keeps this cache of
the Spaces that are not over, folded from the room and moderation topics with the one membership
fold (`libs.domain.membership`), one `SpaceMembers` per Space, O(1) per event. It starts from a
snapshot of the durable view (`space_media_rows.SpaceMediaRows`: `load`) and reads the log on
from the snapshot's positions itself (`libs.projection.durable.CacheRunner`), so a start costs
the live Spaces, not the history, and every replica applies every event as soon as it reads it.

The fan-out checks `admit` against it for every frame, so a change applies to the very next
frame. When a Space ends, `on_ended(space_id)` closes its streams (once per Space); when a user
leaves or is removed, `on_left(space_id, user_id)` closes that user's own subscriptions.

Memory follows live Spaces: an ended Space stays `forget_ended_after` seconds (frames and
subscriptions racing its end are told "ended"), at most `keep_ended` of them (a catch-up through
many ended Spaces), then leaves; its row says "ended" from then on (`admit_opening`). An entry
made by an event for a Space the cache has not seen created (a late event of a Space over before
the snapshot, or one read before its Space's first event) leaves the same way unless the Space
shows up.

The view lags the room by the time an event takes to reach the relay. A subscription that the
next few events could admit (a Space just started, a user who just joined) waits for them, up to
a bound, instead of being refused for what the caller has already done (`wait_for_admission`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg

from libs.domain.membership import NOBODY, OVER, VOICES, SpaceMembers
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.leaving import LeavingSpaces
from libs.projection.runner import ConsumedEvent
from libs.projection.tracking import Stream
from services.media_relay.domain.admission import (
    Admission,
    admit,
    admit_subscriber,
    may_listen,
    recording_after,
)
from services.media_relay.projections.space_media_rows import SpaceMediaRows

#: Verdicts that events already on their way could turn into ADMITTED.
_MAY_CHANGE = frozenset({Admission.NOT_LIVE, Admission.NOT_A_PARTICIPANT})


class SpaceMediaView:
    name = "media-relay-spaces-cache"
    topics = (ROOM_EVENTS, MODERATION_EVENTS)

    def __init__(
        self,
        rows: SpaceMediaRows | None = None,
        *,
        forget_ended_after: float = 60.0,
        keep_ended: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self.forget_ended_after = forget_ended_after
        self.keep_ended = keep_ended
        self.clock = clock
        self.spaces: dict[str, SpaceMembers] = {}
        self.recorded: set[str] = set()  # Spaces whose audio is recorded
        self.on_ended: Callable[[str], None] = lambda _space_id: None
        self.on_left: Callable[[str, str], None] = lambda _space_id, _user_id: None
        self._applied: asyncio.Event | None = None  # set on the next apply, for waiting subscribers
        # When each Space's view last changed (wall clock, s): how long after an event reached the
        # relay did forwarding stop is measured from it.
        self.changed_at: dict[str, float] = {}
        # Spaces on their way out: ended, or never seen created.
        self.leaving = LeavingSpaces(
            after=forget_ended_after,
            keep=keep_ended,
            clock=clock,
            still_open=self._still_open,
            forget=self._forget,
        )

    # Filled from the durable view, kept current by the log

    async def load(self, conn: asyncpg.Connection) -> dict[Stream, str]:
        """The Spaces the rows hold that are not over; the streams they were folded from."""
        assert self.rows is not None
        streams: dict[Stream, str] = {}
        for space_id, stored in (await self.rows.snapshot(conn)).items():
            self.spaces[space_id] = stored.members
            if stored.recording:
                self.recorded.add(space_id)
            if not stored.members.roster.exists:
                self.leaving.schedule(space_id)
            streams.update(dict.fromkeys(stored.streams, space_id))
        return streams

    def apply(self, event: ConsumedEvent) -> None:
        space_id = event.envelope.space_id
        if not space_id:
            return  # blocks are keyed by host, not by Space: nothing to do with audio
        if self._applied is not None:
            self._applied.set()
            self._applied = None
        self.leaving.sweep()
        space = self.spaces.get(space_id)
        if space is None:
            space = self.spaces[space_id] = SpaceMembers()
        roster = space.roster
        change = space.apply(event.payload, occurred_at(event.envelope))
        recorded = space_id in self.recorded
        recording = recording_after(recorded, event.payload)
        if recording != recorded:
            (self.recorded.add if recording else self.recorded.discard)(space_id)
        voices = change is not None and (change.before.role in VOICES or change.after.role in VOICES)
        if voices or recording != recorded or space.roster.state != roster.state:
            self.changed_at[space_id] = time.time()  # what may be heard changed
        if (
            change is not None
            and may_listen(roster, change.before)
            and not may_listen(space.roster, change.after)
        ):
            self.on_left(space_id, change.user_id)
        if space.roster.is_over and not roster.is_over:
            if roster.exists:  # not a late event of a Space this cache never held
                self.on_ended(space_id)
            self.leaving.schedule(space_id)
        elif not space.roster.exists and not self.leaving.scheduled(space_id):
            self.leaving.schedule(space_id)

    def holds(self, space_id: str) -> bool:
        return space_id in self.spaces

    def _still_open(self, space_id: str) -> bool:
        """An entry made before its Space's first event was read: the Space turned out live."""
        space = self.spaces.get(space_id)
        return space is not None and space.roster.exists and not space.roster.is_over

    def _forget(self, space_id: str) -> None:
        self.spaces.pop(space_id, None)
        self.recorded.discard(space_id)
        self.changed_at.pop(space_id, None)

    # The hot path and the openings

    def admit(self, space_id: str, user_id: str) -> Admission:
        space = self.spaces.get(space_id)
        if space is None:
            return Admission.UNKNOWN_SPACE
        return admit(space.roster, space.entries.get(user_id, NOBODY))

    def admit_subscriber(self, space_id: str, user_id: str | None) -> Admission:
        """A gateway's subscription (`user_id` None) or a user's own."""
        space = self.spaces.get(space_id)
        if space is None:
            return Admission.UNKNOWN_SPACE
        member = space.member(user_id) if user_id is not None else NOBODY
        return admit_subscriber(space.roster, member, user_id)

    async def admit_opening(self, space_id: str, user_id: str) -> Admission:
        """`admit` for a stream's first frame: a Space not in memory is looked up in its rows."""
        verdict = self.admit(space_id, user_id)
        if verdict is Admission.UNKNOWN_SPACE and await self._stored_state(space_id) in OVER:
            return Admission.ENDED
        return verdict

    async def wait_for_admission(self, space_id: str, user_id: str | None, timeout: float) -> Admission:
        """The subscription's verdict, waiting up to `timeout` s while events could still admit it.

        A Space not in memory is looked up in its rows: over, it is ENDED; stored and not over
        (the rows' writer read it first), the cache is waited for like a Space not yet live."""
        verdict = self.admit_subscriber(space_id, user_id)
        may_change = _MAY_CHANGE
        if verdict is Admission.UNKNOWN_SPACE:
            state = await self._stored_state(space_id)
            if state in OVER:
                return Admission.ENDED
            if state is not None:
                may_change = _MAY_CHANGE | {Admission.UNKNOWN_SPACE}
        if verdict not in may_change or timeout <= 0:
            return verdict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while verdict in may_change and (left := deadline - loop.time()) > 0:
            if self._applied is None:
                self._applied = asyncio.Event()
            applied = self._applied
            try:
                await asyncio.wait_for(applied.wait(), left)
            except TimeoutError:
                pass
            verdict = self.admit_subscriber(space_id, user_id)
        return verdict

    async def _stored_state(self, space_id: str) -> int | None:
        return await self.rows.state_of(space_id) if self.rows is not None else None

    def recording(self, space_id: str) -> bool:
        return space_id in self.recorded
