"""The relay's view of every Space: live or not, who may speak, who is muted, recording on or off.

Folded from the room and moderation topics with the one membership fold
(`libs.domain.membership`), one `SpaceMembers` per Space, O(1) per event. The fan-out
checks `admit` against it for every frame, so a change applies to the very
next frame. When a Space ends, `on_ended(space_id)` closes its streams; when a
user leaves or is removed, `on_left(space_id, user_id)` closes that user's own
subscriptions.

The view lags the room by the time an event takes to reach the relay. A
subscription that the next few events could admit (a Space just started, a
user who just joined) waits for them, up to a bound, instead of being refused
for what the caller has already done (`wait_for_admission`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from libs.domain.membership import NOBODY, VOICES, SpaceMembers
from libs.events.envelope import occurred_at
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from services.media_relay.domain.admission import (
    Admission,
    admit,
    admit_subscriber,
    may_listen,
    recording_after,
)

#: Verdicts that events already on their way could turn into ADMITTED.
_MAY_CHANGE = frozenset({Admission.NOT_LIVE, Admission.NOT_A_PARTICIPANT})


class SpaceMediaView:
    name = "media-relay-spaces"
    topics = (ROOM_EVENTS, MODERATION_EVENTS)

    def __init__(self) -> None:
        self.spaces: dict[str, SpaceMembers] = {}
        self.recorded: set[str] = set()  # Spaces whose audio is recorded
        self.on_ended: Callable[[str], None] = lambda _space_id: None
        self.on_left: Callable[[str, str], None] = lambda _space_id, _user_id: None
        self._applied: asyncio.Event | None = None  # set on the next apply, for waiting subscribers
        # When each Space's view last changed (wall clock, s): how long after an event reached the
        # relay did forwarding stop is measured from it.
        self.changed_at: dict[str, float] = {}

    def apply(self, event: ConsumedEvent) -> None:
        space_id = event.envelope.space_id
        if not space_id:
            return  # blocks are keyed by host, not by Space: nothing to do with audio
        if self._applied is not None:
            self._applied.set()
            self._applied = None
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
            self.on_ended(space_id)

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

    async def wait_for_admission(self, space_id: str, user_id: str | None, timeout: float) -> Admission:
        """The subscription's verdict, waiting up to `timeout` s while events could still admit it."""
        verdict = self.admit_subscriber(space_id, user_id)
        if verdict not in _MAY_CHANGE or timeout <= 0:
            return verdict
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while verdict in _MAY_CHANGE and (left := deadline - loop.time()) > 0:
            if self._applied is None:
                self._applied = asyncio.Event()
            applied = self._applied
            try:
                await asyncio.wait_for(applied.wait(), left)
            except TimeoutError:
                pass
            verdict = self.admit_subscriber(space_id, user_id)
        return verdict

    def recording(self, space_id: str) -> bool:
        return space_id in self.recorded
