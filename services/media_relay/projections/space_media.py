"""The relay's view of every Space: live or not, who may speak, who is muted, recording on or off.

Folded from the room and moderation topics with the pure `evolve`. The fan-out
checks `admit` against it for every frame, so a change applies to the very
next frame. When a Space ends, `on_ended(space_id)` closes its streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from services.media_relay.domain.admission import Admission, SpaceMedia, admit, evolve


class SpaceMediaView:
    name = "media-relay-spaces"
    topics = (ROOM_EVENTS, MODERATION_EVENTS)

    def __init__(self) -> None:
        self.spaces: dict[str, SpaceMedia] = {}
        self.on_ended: Callable[[str], None] = lambda _space_id: None
        # When each Space's view last changed (wall clock, s): how long after an event reached the
        # relay did forwarding stop is measured from it.
        self.changed_at: dict[str, float] = {}

    def apply(self, event: ConsumedEvent) -> None:
        space_id = event.envelope.space_id
        if not space_id:
            return  # blocks are keyed by host, not by Space: nothing to do with audio
        before = self.spaces.get(space_id) or SpaceMedia(space_id=space_id)
        after = evolve(before, event.payload)
        if after is before:
            return
        self.spaces[space_id] = after
        self.changed_at[space_id] = time.time()
        if after.ended and not before.ended:
            self.on_ended(space_id)

    def admit(self, space_id: str, user_id: str) -> Admission:
        return admit(self.spaces.get(space_id), user_id)

    def recording(self, space_id: str) -> bool:
        space = self.spaces.get(space_id)
        return space is not None and space.recording_enabled
