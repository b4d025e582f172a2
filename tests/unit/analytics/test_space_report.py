"""A scripted Space with known joins, leaves, requests and speaking: the report equals hand-computed figures."""

from datetime import UTC, datetime, timedelta

from libs.analytics.space_report import build, plot
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = "s"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


SCRIPT = [
    (ev.SpaceCreated(space_id=S, host_user_id="maya", title="Scripted"), at(0)),
    (ev.SpaceStarted(space_id=S, host_user_id="maya"), at(0)),
    (ev.ParticipantJoined(space_id=S, user_id="maya", role=rt.ROLE_HOST, source=ev.JOIN_SOURCE_HOST), at(0)),
    (
        ev.ParticipantJoined(space_id=S, user_id="ana", role=rt.ROLE_LISTENER, source=ev.JOIN_SOURCE_DIRECT),
        at(1),
    ),
    (
        ev.ParticipantJoined(
            space_id=S, user_id="ben", role=rt.ROLE_LISTENER, source=ev.JOIN_SOURCE_INVITE_LINK
        ),
        at(2),
    ),
    (
        ev.ParticipantJoined(space_id=S, user_id="cat", role=rt.ROLE_LISTENER, source=ev.JOIN_SOURCE_DIRECT),
        at(3),
    ),
    (ev.SpeakRequested(space_id=S, user_id="ana"), at(4)),
    (ev.SpeakRequested(space_id=S, user_id="ben"), at(5)),
    (ev.SpeakRequestApproved(space_id=S, user_id="ana"), at(6)),  # waited 2 minutes
    (ev.SpeakerAdded(space_id=S, user_id="ana"), at(6)),
    (ev.SpeakRequestDenied(space_id=S, user_id="ben"), at(7)),
    (ev.ParticipantLeft(space_id=S, user_id="cat"), at(8)),
    (
        ev.ParticipantJoined(space_id=S, user_id="cat", role=rt.ROLE_LISTENER, source=ev.JOIN_SOURCE_DIRECT),
        at(9),
    ),
    (ev.SpeakRequested(space_id=S, user_id="cat"), at(9)),
    (ev.SpeakRequestApproved(space_id=S, user_id="cat"), at(13)),  # waited 4 minutes
    (ev.SpeakerAdded(space_id=S, user_id="cat"), at(13)),
    (ev.SpeakerRemoved(space_id=S, user_id="ana"), at(16)),
    (ev.SpaceEnded(space_id=S), at(20)),
]


def test_the_report_of_a_scripted_space_matches_hand_computed_figures(tmp_path):
    report = build(S, SCRIPT)
    assert report.title == "Scripted" and report.duration == timedelta(minutes=20)
    assert report.peak_listeners == 3 and report.unique_listeners == 3
    assert report.joins_by_source == {"direct": 3, "host": 1, "invite link": 1}
    assert (report.speak_requests, report.speak_requests_approved) == (3, 2)
    assert report.median_wait_seconds == 180  # median of 2 and 4 minutes
    # maya speaks 0..20, ana 6..16, cat 13..20
    assert report.speaking_role_seconds == {"maya": 1200, "ana": 600, "cat": 420}
    # listener minutes: ana 1..6 and 16..20 (9), ben 2..20 (18), cat 3..8 and 9..13 (9)
    assert report.listener_minutes == 36
    assert report.listeners_over_time[-1][1] == 0
    png = tmp_path / "report.png"
    plot(report, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_rebuilding_from_the_same_log_gives_the_same_report():
    assert build(S, SCRIPT) == build(S, list(SCRIPT))


def seconds_after(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


def _joined(user: str, when: datetime, role=rt.ROLE_LISTENER):
    return (ev.ParticipantJoined(space_id=S, user_id=user, role=role, source=ev.JOIN_SOURCE_DIRECT), when)


def test_a_speaker_promoted_moments_after_joining_never_counts_as_a_listener():
    script = [
        *SCRIPT[:3],  # maya hosts from 0'
        _joined("ivy", at(1)),
        (ev.SpeakerAdded(space_id=S, user_id="ivy"), seconds_after(at(1), 0.003)),  # invited at once
        _joined("joe", at(2)),
        (ev.SpaceEnded(space_id=S), at(5)),
    ]
    report = build(S, script)
    assert (report.peak_listeners, report.unique_listeners) == (1, 1)  # joe only
    assert set(report.speaking_role_seconds) == {"maya", "ivy"}


def test_a_listening_stretch_counts_once_it_has_settled_and_from_then_on():
    script = [
        *SCRIPT[:3],
        _joined("ivy", at(1)),
        _joined("joe", seconds_after(at(1), 0.5)),
        (ev.ParticipantLeft(space_id=S, user_id="joe"), seconds_after(at(1), 0.9)),  # never settled
        _joined("kim", seconds_after(at(1), 0.6)),
        (ev.SpaceEnded(space_id=S), at(3)),
    ]
    report = build(S, script)
    assert (report.peak_listeners, report.unique_listeners) == (2, 2)  # ivy and kim
    live = build(S, script[:-1])  # counted up to kim's join, when no stretch has lasted a second yet
    assert (live.peak_listeners, live.unique_listeners) == (0, 0)


def test_a_listener_who_leaves_as_their_stretch_settles_and_rejoins_is_one_unique_listener():
    # The first stretch settles as the leave is folded (same moment): the rejoin must still know it.
    script = [
        *SCRIPT[:3],
        _joined("ivy", at(1)),
        (ev.ParticipantLeft(space_id=S, user_id="ivy"), seconds_after(at(1), 1)),
        _joined("ivy", seconds_after(at(1), 1)),
        (ev.SpaceEnded(space_id=S), at(3)),
    ]
    report = build(S, script)
    assert (report.peak_listeners, report.unique_listeners) == (1, 1)


def test_time_in_a_speaking_role_and_talking_time_are_separate_figures():
    from podium.media.v1 import media_events_pb2 as mev

    talking = [
        (mev.SpeakerStoppedTalking(space_id=S, user_id="ana", talked_ms=90_000), at(8)),
        (mev.SpeakerStoppedTalking(space_id=S, user_id="cat", talked_ms=30_000), at(15)),
        (mev.SpeakerStoppedTalking(space_id=S, user_id="ana", talked_ms=60_000), at(12)),
    ]
    report = build(S, SCRIPT, talking)
    assert report.speaking_role_seconds == {"maya": 1200, "ana": 600, "cat": 420}
    assert report.talking_seconds == {"ana": 150, "cat": 30}  # maya hosted and never talked
