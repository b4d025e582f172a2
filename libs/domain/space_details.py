"""A Space's own details as its room events tell them, and the changes a watcher of it sees.

    details = evolve(details, event, at)
    changes(state_before, before, state_after, after) -> [(Change, changed settings), ...]

The details are what a Space's header shows besides who is in it: its settings (title,
description, join policy, scheduled start, whether it is recorded) and its times (started, ended,
and why it ended). Its lifecycle state and host are the membership fold's
(`libs.domain.membership.Roster`), so they are not folded twice: `changes` takes the states from
there. Audio is recorded while the Space is live with recording on, as the media relay records
it (`recording`).

A plain frozen value and pure functions: presence folds them into its board's rows and into
every replica's memory (services/presence/projections/space_board*.py), so both say the same.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, NamedTuple

from google.protobuf.message import Message

from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

#: The settings a Space's host can change (SpaceUpdated's `changed_fields`), in the order
#: `changes` names them.
SETTINGS = ("title", "description", "join_policy", "scheduled_start", "recording_enabled")


class SpaceDetails(NamedTuple):
    title: str = ""
    description: str = ""
    join_policy: int = rt.JOIN_POLICY_UNSPECIFIED  # podium.room.v1.JoinPolicy
    scheduled_start: datetime | None = None
    recording_enabled: bool = False
    started_at: Any = None  # the caller's time type, as `at` is given
    ended_at: Any = None
    end_reason: int = rev.END_REASON_UNSPECIFIED  # podium.room.v1.EndReason


EMPTY = SpaceDetails()


class Change(enum.Enum):
    """What happened to the Space, as a watcher is told (presence's SpaceChangeKind)."""

    UPDATED = "updated"  # settings changed: the change names them
    STARTED = "started"
    ENDED = "ended"
    CANCELLED = "cancelled"
    RECORDING_STARTED = "recording_started"
    RECORDING_STOPPED = "recording_stopped"


def recording(state: int, details: SpaceDetails) -> bool:
    """Whether the Space's audio is being recorded: live, with recording on."""
    return state == rt.SPACE_STATE_LIVE and details.recording_enabled


def _scheduled(event: rev.SpaceCreated | rev.SpaceUpdated) -> datetime | None:
    return event.scheduled_start.ToDatetime(tzinfo=UTC) if event.HasField("scheduled_start") else None


def evolve(details: SpaceDetails, event: Message, at: Any) -> SpaceDetails:
    """The details after one event of the Space; the very value given when nothing changed."""
    step = _STEPS.get(type(event))  # a dict, not a match: every event of four topics comes here
    return details if step is None else step(details, event, at)


def _created(d: SpaceDetails, e: rev.SpaceCreated, at: Any) -> SpaceDetails:
    return d._replace(
        title=e.title,
        description=e.description,
        join_policy=e.join_policy,
        scheduled_start=_scheduled(e),
        recording_enabled=e.recording_enabled,
    )


def _updated(d: SpaceDetails, e: rev.SpaceUpdated, at: Any) -> SpaceDetails:
    changed = {
        name: _scheduled(e) if name == "scheduled_start" else getattr(e, name)
        for name in SETTINGS
        if name in e.changed_fields
    }
    return d._replace(**changed) if changed else d


_STEPS = {
    rev.SpaceCreated: _created,
    rev.SpaceUpdated: _updated,
    rev.SpaceStarted: lambda d, e, at: d._replace(started_at=at),
    rev.SpaceEnded: lambda d, e, at: d._replace(ended_at=at, end_reason=e.reason),
}


_LIFECYCLE = {
    rt.SPACE_STATE_LIVE: Change.STARTED,
    rt.SPACE_STATE_ENDED: Change.ENDED,
    rt.SPACE_STATE_CANCELLED: Change.CANCELLED,
}


def changes(
    state_before: int, before: SpaceDetails, state_after: int, after: SpaceDetails
) -> list[tuple[Change, tuple[str, ...]]]:
    """What a watcher is told about one event, in order: the settings it changed, the Space's
    start or end, then recording starting or stopping. Nothing for a Space not created before."""
    if state_before == rt.SPACE_STATE_UNSPECIFIED:
        return []  # nobody watches a Space before it exists; its snapshot tells all
    told: list[tuple[Change, tuple[str, ...]]] = []
    settings = tuple(name for name in SETTINGS if getattr(before, name) != getattr(after, name))
    if settings:
        told.append((Change.UPDATED, settings))
    if state_after != state_before and state_after in _LIFECYCLE:
        told.append((_LIFECYCLE[state_after], ()))
    was, now = recording(state_before, before), recording(state_after, after)
    if now != was:
        told.append((Change.RECORDING_STARTED if now else Change.RECORDING_STOPPED, ()))
    return told
