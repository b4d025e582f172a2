"""What replay takes from a Space's room events: a pure fold.

    facts = evolve(facts, event, at)      # one Space's room events, in log order

Host, title, whether it is recorded, when it started and ended (or that it was
cancelled), and who may see its replay (`audience`, the `domain.audience`
fold). Consent to recording is settled at the start: switching recording off
once the Space is live does not unrecord what was recorded, and a Space whose
host switched it off before the start is not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from google.protobuf.message import Message

from podium.room.v1 import room_events_pb2 as rev
from services.replay.domain import audience as aud


@dataclass(frozen=True)
class SpaceFacts:
    host_user_id: str = ""
    title: str = ""
    recording_enabled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancelled: bool = False
    audience: aud.Audience = aud.INITIAL

    @property
    def over(self) -> bool:
        """Ended or cancelled: only late events about it can still come."""
        return self.ended_at is not None or self.cancelled


INITIAL = SpaceFacts()


def evolve(facts: SpaceFacts, event: Message, at: datetime) -> SpaceFacts:
    """The facts after one room event of the Space."""
    audience = aud.evolve(facts.audience, event)
    if audience is not facts.audience:
        facts = replace(facts, audience=audience)
    match event:
        case rev.SpaceCreated():
            return replace(
                facts,
                host_user_id=event.host_user_id,
                title=event.title,
                recording_enabled=event.recording_enabled,
            )
        case rev.SpaceUpdated():
            if "title" in event.changed_fields:
                facts = replace(facts, title=event.title)
            if "recording_enabled" in event.changed_fields and facts.started_at is None:
                facts = replace(facts, recording_enabled=event.recording_enabled)
            return facts
        case rev.SpaceStarted():
            return replace(facts, started_at=at)
        case rev.SpaceCancelled():
            return replace(facts, cancelled=True)
        case rev.SpaceEnded():
            return replace(facts, ended_at=at)
    return facts


def recorded_end(before: SpaceFacts, after: SpaceFacts) -> bool:
    """Whether this event ended a recorded Space: the moment its replay is to be made."""
    return before.ended_at is None and after.ended_at is not None and after.recording_enabled
