"""Each Space's events from the room, moderation and media topics, for time travel and timelines.

It keeps the decoded events with their times, per Space and per topic, in log
order (the runner drops duplicates by stream version). `events(space_id)`
merges the three topics by occurred-at; folding them up to a moment is the
pure `space_at.state_at`. Blocks (moderation records keyed by host, not Space)
are not about a Space and are skipped.

Memory grows with the log; a Space's events are small (a few hundred bytes
each), and a deployment that keeps years of Spaces would move this into a
table keyed by Space id.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from libs.events.envelope import occurred_at
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from services.replay.domain.space_at import merge_by_time

TOPIC_ORDER = (ROOM_EVENTS.name, MODERATION_EVENTS.name, MEDIA_EVENTS.name)


class SpaceHistory:
    name = "replay-space-history"
    topics = (ROOM_EVENTS, MODERATION_EVENTS, MEDIA_EVENTS)

    def __init__(self) -> None:
        self.spaces: dict[str, dict[str, list[tuple[Message, datetime]]]] = {}

    def apply(self, event: ConsumedEvent) -> None:
        space_id = event.envelope.space_id
        if not space_id:
            return
        topics = self.spaces.setdefault(space_id, {name: [] for name in TOPIC_ORDER})
        topics[event.topic].append((event.payload, occurred_at(event.envelope)))

    def known(self, space_id: str) -> bool:
        return bool(self.spaces.get(space_id, {}).get(ROOM_EVENTS.name))

    def events(self, space_id: str) -> list[tuple[Message, datetime]]:
        topics = self.spaces.get(space_id)
        if not topics:
            return []
        return merge_by_time(*(topics[name] for name in TOPIC_ORDER))
