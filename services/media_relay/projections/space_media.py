"""The relay's view of every Space: live or not, who may speak, who is muted, recording on or off.

Folded from the room and moderation topics with the pure `evolve`. The fan-out
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

from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from services.media_relay.domain.admission import (
    Admission,
    SpaceMedia,
    admit,
    admit_subscriber,
    evolve,
    membership_change,
)

#: Verdicts that events already on their way could turn into ADMITTED.
_MAY_CHANGE = frozenset({Admission.NOT_LIVE, Admission.NOT_A_PARTICIPANT})


class SpaceMediaView:
    name = "media-relay-spaces"
    topics = (ROOM_EVENTS, MODERATION_EVENTS)

    def __init__(self) -> None:
        self.spaces: dict[str, SpaceMedia] = {}
        self.on_ended: Callable[[str], None] = lambda _space_id: None
        self.on_left: Callable[[str, str], None] = lambda _space_id, _user_id: None
        # Who is in each Space now (user ids), for subscriptions made with a user's own token.
        self.members: dict[str, set[str]] = {}
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
        change = membership_change(event.payload)
        if change is not None:
            user_id, joined = change
            members = self.members.setdefault(space_id, set())
            if joined:
                members.add(user_id)
            elif user_id in members:
                members.discard(user_id)
                self.on_left(space_id, user_id)
        before = self.spaces.get(space_id) or SpaceMedia(space_id=space_id)
        after = evolve(before, event.payload)
        if after is before:
            return
        self.spaces[space_id] = after
        self.changed_at[space_id] = time.time()
        if after.ended and not before.ended:
            self.members.pop(space_id, None)
            self.on_ended(space_id)

    def admit(self, space_id: str, user_id: str) -> Admission:
        return admit(self.spaces.get(space_id), user_id)

    def admit_subscriber(self, space_id: str, user_id: str | None) -> Admission:
        """A gateway's subscription (`user_id` None) or a user's own."""
        is_member = user_id is not None and user_id in self.members.get(space_id, ())
        return admit_subscriber(self.spaces.get(space_id), user_id, is_member)

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
        space = self.spaces.get(space_id)
        return space is not None and space.recording_enabled
