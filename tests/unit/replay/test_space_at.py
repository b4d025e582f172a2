"""The Space as it was at a moment: a pure fold over room, moderation and media events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from podium.media.v1 import media_events_pb2 as med
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain.space_at import merge_by_time, state_at

T = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
S = "space-1"


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


ROOM = [
    (rev.SpaceCreated(space_id=S, host_user_id="h", title="Talk", recording_enabled=True), at(0)),
    (rev.SpaceStarted(space_id=S, host_user_id="h"), at(1)),
    (rev.ParticipantJoined(space_id=S, user_id="h", role=rt.ROLE_HOST), at(1)),
    (rev.ParticipantJoined(space_id=S, user_id="a"), at(2)),
    (rev.ParticipantJoined(space_id=S, user_id="l"), at(2.5)),
    (rev.SpeakerAdded(space_id=S, user_id="a"), at(3)),
    (rev.SpeakRequested(space_id=S, user_id="l"), at(4)),
    (rev.SpeakRequestDenied(space_id=S, user_id="l"), at(9)),
    (rev.ParticipantLeft(space_id=S, user_id="l", reason=rev.LEAVE_REASON_LEFT), at(10)),
    (rev.SpaceEnded(space_id=S, reason=rev.END_REASON_HOST_ENDED), at(20)),
]
MODERATION = [
    (mev.ParticipantMuted(space_id=S, user_id="a", kind=mt.MUTE_KIND_HOST), at(7)),
    (mev.ParticipantUnmuted(space_id=S, user_id="a", lifted=mt.MUTE_KIND_HOST), at(8)),
]
MEDIA = [
    (med.SpeakerStartedTalking(space_id=S, user_id="a"), at(5)),
    (med.SpeakerStoppedTalking(space_id=S, user_id="a", talked_ms=1500), at(6.5)),
]
EVENTS = merge_by_time(ROOM, MODERATION, MEDIA)


def test_nothing_before_the_space_was_created():
    assert not state_at(EVENTS, at(-1)).exists


def test_roles_hands_and_listener_count_at_a_moment():
    state = state_at(EVENTS, at(4.5))
    assert state.status == "live" and state.title == "Talk" and state.started_at == at(1)
    assert state.roles == {"h": rt.ROLE_HOST, "a": rt.ROLE_SPEAKER, "l": rt.ROLE_LISTENER}
    assert state.ordered_participants() == ["h", "a", "l"]
    assert state.hands == {"l"} and state.listener_count == 1 and not state.speaking


def test_who_was_speaking_and_who_was_muted():
    assert state_at(EVENTS, at(5)).speaking == {"a"}  # an event at exactly `at` counts
    assert state_at(EVENTS, at(6.5)).speaking == frozenset()
    assert state_at(EVENTS, at(7.5)).muted == {"a"}
    assert state_at(EVENTS, at(8)).muted == frozenset()


def test_leaving_and_ending_empty_the_space():
    after_leave = state_at(EVENTS, at(10))
    assert "l" not in after_leave.roles and after_leave.listener_count == 0 and not after_leave.hands
    ended = state_at(EVENTS, at(30))
    assert ended.status == "ended" and not ended.roles and ended.ended_at == at(20)


def test_merging_topics_keeps_each_topics_order_on_equal_times():
    first = (rev.ParticipantJoined(space_id=S, user_id="x"), at(1))
    second = (rev.ParticipantLeft(space_id=S, user_id="x"), at(1))
    talk = (med.SpeakerStartedTalking(space_id=S, user_id="x"), at(1))
    merged = merge_by_time([first, second], [], [talk])
    assert [m for m, _ in merged] == [first[0], second[0], talk[0]]


def test_a_talking_event_for_a_speaker_demoted_later_stops_with_the_demotion():
    events = merge_by_time([*ROOM[:6], (rev.SpeakerRemoved(space_id=S, user_id="a"), at(6))], [], MEDIA[:1])
    assert state_at(events, at(5.5)).speaking == {"a"}
    demoted = state_at(events, at(6))
    assert demoted.speaking == frozenset() and demoted.roles["a"] == rt.ROLE_LISTENER
