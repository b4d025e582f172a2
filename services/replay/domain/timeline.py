"""A recording's timeline, taken from the log: roles, talking, mutes, removals, listener counts.

The same fold as the Space at time T (`space_at.SpaceAt`), noting what changed:
give it the Space's events of the three topics merged in time order
(`space_at.merge_by_time`) and the recording's origin; offsets are measured
from the origin and clamped to 0, so what held when the recording began shows
at offset 0. Listener counts are coalesced to at most one entry per
`listeners_resolution` (the last count in each), which keeps a Space of
thousands of listeners to a readable timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import Message

from libs.domain.membership import Change
from podium.media.v1 import media_events_pb2 as med
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain.space_at import ROLE_NAMES, SpaceAt

ROLE_CHANGED = "role_changed"
STARTED_TALKING = "started_talking"
STOPPED_TALKING = "stopped_talking"
MUTED = "muted"
UNMUTED = "unmuted"
REMOVED = "removed"
LISTENERS = "listeners"


@dataclass(frozen=True)
class Entry:
    at: timedelta
    kind: str
    user_id: str = ""
    role: str = ""
    listeners: int = 0


def build(
    events: Iterable[tuple[Message, datetime]],
    origin: datetime,
    *,
    until: datetime | None = None,
    listeners_resolution: timedelta = timedelta(seconds=1),
) -> list[Entry]:
    entries: list[Entry] = []
    state = SpaceAt()
    last_listeners = 0
    for event, occurred in events:
        if until is not None and occurred > until:
            break
        change = state.apply(event, occurred)
        offset = max(timedelta(0), occurred - origin)
        if change is not None and _role_changed(change):
            entries.append(Entry(offset, ROLE_CHANGED, change.user_id, ROLE_NAMES[change.after.role]))
        match event:
            case med.SpeakerStartedTalking():
                entries.append(Entry(offset, STARTED_TALKING, event.user_id))
            case med.SpeakerStoppedTalking():
                entries.append(Entry(offset, STOPPED_TALKING, event.user_id))
            case mev.ParticipantMuted():
                entries.append(Entry(offset, MUTED, event.user_id))
            case mev.ParticipantUnmuted():
                entries.append(Entry(offset, UNMUTED, event.user_id))
            case mev.ParticipantRemoved():
                entries.append(Entry(offset, REMOVED, event.user_id))
        count = state.listener_count
        if count != last_listeners:
            last_listeners = count
            bucket = _bucket(offset, listeners_resolution)
            previous = next((e for e in reversed(entries) if e.kind == LISTENERS), None)
            if previous is not None and _bucket(previous.at, listeners_resolution) == bucket:
                entries.remove(previous)
            entries.append(Entry(offset, LISTENERS, listeners=count))
    return entries


def _role_changed(change: Change) -> bool:
    """A role taken or changed while in the Space; joining as a listener is not a role change."""
    before, after = change.before.role, change.after.role
    return change.after.is_in and before != after and (change.before.is_in or after != rt.ROLE_LISTENER)


def _bucket(offset: timedelta, resolution: timedelta) -> int:
    return int(offset / resolution) if resolution > timedelta(0) else int(offset.total_seconds() * 1e6)
