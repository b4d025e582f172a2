"""A Space's own details, folded from its room events, and what its watchers are told."""

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from libs.domain import space_details as sd
from libs.domain.membership import EMPTY as NO_ROSTER
from libs.domain.membership import NOBODY
from libs.domain.membership import evolve as roster_evolve
from libs.domain.space_details import Change
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

S = "s"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def stamp(at: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def told(*events):
    """What a watcher is told about each event after the first (which creates the Space)."""
    roster, details, seen = NO_ROSTER, sd.EMPTY, []
    for n, event in enumerate(events):
        at = T0 + timedelta(minutes=n)
        roster_after, _ = roster_evolve(roster, NOBODY, event, at)
        after = sd.evolve(details, event, at)
        seen.append(sd.changes(roster.state, details, roster_after.state, after))
        roster, details = roster_after, after
    assert seen[0] == []  # nobody watches a Space before it exists
    return seen[1:], roster, details


def test_a_recorded_space_starts_recording_with_its_start_and_stops_with_its_end():
    seen, roster, details = told(
        rev.SpaceCreated(space_id=S, host_user_id="h", title="Hi", recording_enabled=True),
        rev.SpaceStarted(space_id=S, host_user_id="h"),
        rev.ParticipantJoined(space_id=S, user_id="h", role=rt.ROLE_HOST),
        rev.SpaceEnded(space_id=S, reason=rev.END_REASON_ABANDONED),
    )
    assert seen == [
        [(Change.STARTED, ()), (Change.RECORDING_STARTED, ())],
        [],
        [(Change.ENDED, ()), (Change.RECORDING_STOPPED, ())],
    ]
    assert details.started_at == T0 + timedelta(minutes=1) and details.ended_at == T0 + timedelta(minutes=3)
    assert details.end_reason == rev.END_REASON_ABANDONED and not sd.recording(roster.state, details)


def test_settings_changes_name_the_settings_and_switching_recording_while_live_is_told():
    seen, roster, details = told(
        rev.SpaceCreated(space_id=S, host_user_id="h", title="Hi"),
        rev.SpaceStarted(space_id=S, host_user_id="h"),
        rev.SpaceUpdated(space_id=S, changed_fields=["title", "description"], title="Now", description="d"),
        rev.SpaceUpdated(space_id=S, changed_fields=["title"], title="Now"),  # the same title: nothing
        rev.SpaceUpdated(space_id=S, changed_fields=["recording_enabled"], recording_enabled=True),
        rev.SpaceUpdated(space_id=S, changed_fields=["recording_enabled"], recording_enabled=False),
    )
    assert seen == [
        [(Change.STARTED, ())],
        [(Change.UPDATED, ("title", "description"))],
        [],
        [(Change.UPDATED, ("recording_enabled",)), (Change.RECORDING_STARTED, ())],
        [(Change.UPDATED, ("recording_enabled",)), (Change.RECORDING_STOPPED, ())],
    ]
    assert (details.title, details.description) == ("Now", "d") and roster.state == rt.SPACE_STATE_LIVE


def test_a_scheduled_space_rescheduled_unscheduled_and_cancelled():
    first, second = T0 + timedelta(days=1), T0 + timedelta(days=2)
    seen, roster, details = told(
        rev.SpaceCreated(space_id=S, host_user_id="h", title="Later", scheduled_start=stamp(first)),
        rev.SpaceUpdated(space_id=S, changed_fields=["scheduled_start"], scheduled_start=stamp(second)),
        rev.SpaceUpdated(space_id=S, changed_fields=["scheduled_start"]),  # cleared
        rev.SpaceCancelled(space_id=S),
    )
    assert seen == [
        [(Change.UPDATED, ("scheduled_start",))],
        [(Change.UPDATED, ("scheduled_start",))],
        [(Change.CANCELLED, ())],
    ]
    assert details.scheduled_start is None and roster.state == rt.SPACE_STATE_CANCELLED


def test_events_about_members_leave_the_details_as_they_were():
    details = sd.evolve(sd.EMPTY, rev.SpaceCreated(space_id=S, title="Hi"), T0)
    assert sd.evolve(details, rev.ParticipantJoined(space_id=S, user_id="a"), T0) is details


def test_every_change_is_a_kind_watchers_are_sent():
    for change in Change:
        assert pt.SpaceChangeKind.Value(f"SPACE_CHANGE_KIND_{change.name}") > 0
