"""The analytics fold over a scripted Space: hand-computed figures, the same as `podium report`,
and the same whatever the interleaving of room, talking and replay events or duplicates."""

import copy
import random

import pytest

from libs.analytics.space_figures import (
    apply_replay,
    apply_room,
    apply_talking,
    close_windows,
    empty,
    snapshot,
)
from libs.analytics.space_report import build
from podium.media.v1 import media_events_pb2 as mev
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_types_pb2 as rt
from tests.unit.analytics.test_space_report import SCRIPT, T0, S

MINUTE = 60


def _fold(script, window=MINUTE):
    stats, members, windows = empty(S, window), {}, []
    for version, (event, when) in enumerate(script, start=1):
        windows += apply_room(stats, members, event, when.timestamp(), version)
    return stats, members, windows


def test_the_final_figures_match_hand_computed_values_and_the_report():
    stats, _, _ = _fold(SCRIPT)
    final = snapshot(stats, (T0.timestamp() + 20 * MINUTE), final=True)
    assert final.final and final.title == "Scripted" and final.host_user_id == "maya"
    assert (final.peak_listeners, final.unique_listeners, final.current_listeners) == (3, 3, 0)
    assert final.listener_minutes == pytest.approx(36)
    assert dict(final.speaking_role_seconds) == {"maya": 1200, "ana": 600, "cat": 420}
    assert (final.speak_requests, final.speak_requests_approved) == (3, 2)
    assert final.median_wait_seconds == 180
    assert dict(final.joins_by_source) == {"direct": 3, "host": 1, "invite link": 1}
    report = build(S, SCRIPT)  # `podium report` computes the same figures from the same events
    assert final.listener_minutes == pytest.approx(report.listener_minutes)
    assert dict(final.speaking_role_seconds) == pytest.approx(report.speaking_role_seconds)
    assert (final.peak_listeners, final.unique_listeners) == (report.peak_listeners, report.unique_listeners)


def test_a_snapshot_while_live_counts_up_to_its_moment():
    stats, _, _ = _fold(SCRIPT[:6])  # ana (1), ben (2), cat (3) listening; ana asked at 4
    live = snapshot(stats, T0.timestamp() + 5 * MINUTE)
    assert (live.current_listeners, live.peak_listeners, live.unique_listeners) == (3, 3, 3)
    assert live.listener_minutes == pytest.approx(4 + 3 + 2)
    assert dict(live.speaking_role_seconds) == {"maya": 300}
    assert not live.HasField("median_wait_seconds") and not live.HasField("ended_at")


def test_the_per_minute_series_is_hand_computed():
    _, _, windows = _fold(SCRIPT)
    series = [(w.listeners_at_start, w.peak_listeners, w.listeners_at_end) for w in windows]
    # 20 one-minute windows: listeners 1 from 1', 2 from 2', 3 from 3', 2 from 6' (ana speaks),
    # 1 at 8' (cat leaves), 2 at 9', 1 at 13' (cat speaks), 2 at 16' (ana back), 0 at the end.
    assert len(windows) == 20
    assert series[0] == (0, 0, 0)
    assert series[1] == (0, 1, 1)  # the join at exactly 1' opens window 1
    assert series[3] == (2, 3, 3)
    assert series[6] == (3, 3, 2)
    assert series[8] == (2, 2, 1)
    assert series[13] == (2, 2, 1)
    assert series[16] == (1, 2, 2)
    assert series[19] == (2, 2, 2)  # the Space ended exactly at 20', the boundary of the last window
    starts = [w.window_start.ToSeconds() for w in windows]
    assert starts == [int(T0.timestamp()) + 60 * i for i in range(20)]


def test_a_clock_tick_closes_quiet_windows_without_changing_figures():
    stats, _, windows = _fold(SCRIPT[:4])  # live, ana listening since 1'
    assert len(windows) == 1  # ana's join at 1' closed window 0
    before = snapshot(stats, T0.timestamp() + 5 * MINUTE)
    closed = close_windows(stats, T0.timestamp() + 5 * MINUTE)
    assert [(w.listeners_at_start, w.listeners_at_end) for w in closed] == [(0, 1), (1, 1), (1, 1), (1, 1)]
    assert snapshot(stats, T0.timestamp() + 5 * MINUTE) == before
    assert close_windows(stats, T0.timestamp() + 5 * MINUTE) == []


def test_duplicates_change_nothing_and_interleavings_do_not_matter():
    talking = [
        ("media-s", 1, mev.SpeakerStoppedTalking(space_id=S, user_id="maya", talked_ms=1500)),
        ("media-s", 2, mev.SpeakerStoppedTalking(space_id=S, user_id="ana", talked_ms=2500)),
        ("media-s", 3, mev.SpeakerStoppedTalking(space_id=S, user_id="maya", talked_ms=500)),
    ]
    listens = [("replay-s", 1, rpe.ReplayListened(space_id=S, user_id="zoe"))]
    results = set()
    for seed in range(5):
        rng = random.Random(seed)
        stats, members = empty(S, MINUTE), {}
        room = [("room", v, e, w.timestamp()) for v, (e, w) in enumerate(SCRIPT, start=1)]
        # Each stream keeps its order (one partition each); the streams interleave at random, and
        # some records are delivered twice.
        streams = [room, talking + talking[:2], listens + listens]
        while any(streams):
            stream = rng.choice([s for s in streams if s])
            item = stream.pop(0)
            if item[0] == "room":
                _, version, event, when = item
                apply_room(stats, members, event, when, version)
                apply_room(stats, members, event, when, version)  # redelivered
            else:
                name, version, event = item
                (apply_talking if name.startswith("media") else apply_replay)(stats, name, version, event)
        final = snapshot(stats, SCRIPT[-1][1].timestamp(), final=True)
        assert dict(final.talking_seconds) == {"maya": 2.0, "ana": 2.5} and final.replay_listens == 1
        results.add(final.SerializeToString(deterministic=True))
    assert len(results) == 1


def test_a_crash_between_writing_members_and_the_figures_folds_the_event_once():
    whole, _, whole_windows = _fold(SCRIPT)
    for crash_at in range(1, len(SCRIPT) + 1):
        stats, members, windows = empty(S, MINUTE), {}, []
        for version, (event, when) in enumerate(SCRIPT, start=1):
            if version == crash_at:
                # The members write reached the changelog; the figures' write did not. After the
                # restart the event is delivered again, onto the figures as they were before it.
                before = copy.deepcopy(stats)
                apply_room(stats, members, event, when.timestamp(), version)
                stats = before
            windows += apply_room(stats, members, event, when.timestamp(), version)
        assert stats == whole, f"crash at event {crash_at}"
        assert windows == whole_windows


def test_values_written_before_the_membership_fold_are_upcast_and_folding_goes_on():
    whole, _, _ = _fold(SCRIPT)
    half, members, _ = _fold(SCRIPT[:8])  # ana, ben, cat listening; ana asked at 4', ben at 5'
    half.pop("roster")  # as the figures stored them before: no roster, open requests, members by state
    half["requested"] = {}
    for key, entry in members.items():
        role, hand = entry["member"][0], entry["member"][4]
        state = {rt.ROLE_LISTENER: "listener", rt.ROLE_UNSPECIFIED: "away"}.get(role, "voice")
        members[key] = {"state": state, "listened": entry["listened"]}
        if hand is not None:
            half["requested"][key.split("|", 1)[1]] = hand
    assert half["requested"] == {"ana": T0.timestamp() + 4 * MINUTE, "ben": T0.timestamp() + 5 * MINUTE}
    for version, (event, when) in enumerate(SCRIPT[8:], start=9):  # ana's approval waited 2'
        apply_room(half, members, event, when.timestamp(), version)
    end = T0.timestamp() + 20 * MINUTE
    assert snapshot(half, end, final=True) == snapshot(whole, end, final=True)


def test_a_snapshot_counts_the_listeners_settled_by_its_moment():
    from tests.unit.analytics.test_space_report import _joined, seconds_after

    script = [*SCRIPT[:3], _joined("ivy", seconds_after(T0, 60))]
    stats, _, _ = _fold(script)
    joined = script[-1][1].timestamp()
    assert snapshot(stats, joined + 0.5).peak_listeners == 0  # not settled yet
    settled = snapshot(stats, seconds_after(script[-1][1], 1).timestamp())
    assert (settled.peak_listeners, settled.unique_listeners, settled.current_listeners) == (1, 1, 1)


def test_figures_stored_before_listeners_settled_go_on_from_where_they_were():
    stats, members, _ = _fold(SCRIPT[:6])  # ana, ben, cat listening for minutes
    for key in ("pending", "settled"):
        del stats[key]  # as a table written by the previous release holds it
    for version, (event, when) in enumerate(SCRIPT[6:], start=7):
        apply_room(stats, members, event, when.timestamp(), version)
    final = snapshot(stats, T0.timestamp() + 20 * MINUTE, final=True)
    assert (final.peak_listeners, final.unique_listeners) == (3, 3)
