"""What the catalog folds from a Space's room events: consent settles at the start, and the end to finalize.

The catalog's rows and cache are tested against PostgreSQL in
tests/integration/replay/test_replay_views.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from podium.room.v1 import room_events_pb2 as rev
from services.replay.domain.space_facts import INITIAL, SpaceFacts, evolve, recorded_end

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def fold(*events) -> tuple[SpaceFacts, list[datetime]]:
    """The facts after the events (each with its second), and when a recorded end was noticed."""
    facts, ends = INITIAL, []
    for event, seconds in events:
        at = T + timedelta(seconds=seconds)
        after = evolve(facts, event, at)
        if recorded_end(facts, after):
            ends.append(at)
        facts = after
    return facts, ends


def test_recording_switched_off_before_the_start_means_no_replay_and_no_job():
    off, ends = fold(
        (rev.SpaceCreated(space_id="off", host_user_id="h", recording_enabled=True), 0),
        (rev.SpaceUpdated(space_id="off", changed_fields=["recording_enabled"], recording_enabled=False), 1),
        (rev.SpaceStarted(space_id="off"), 2),
        (rev.SpaceEnded(space_id="off"), 3),
    )
    assert not off.recording_enabled and off.over and ends == []


def test_switching_recording_off_once_live_does_not_unrecord_what_was_recorded():
    on, ends = fold(
        (rev.SpaceCreated(space_id="on", host_user_id="h", title="t", recording_enabled=True), 0),
        (rev.SpaceStarted(space_id="on"), 1),
        (rev.SpaceUpdated(space_id="on", changed_fields=["recording_enabled"], recording_enabled=False), 2),
        (rev.SpaceEnded(space_id="on"), 5),
    )
    assert on.recording_enabled and on.host_user_id == "h" and on.title == "t"
    assert on.started_at == T + timedelta(seconds=1) and on.ended_at == T + timedelta(seconds=5)
    assert ends == [T + timedelta(seconds=5)]  # noticed once, at the end


def test_a_cancelled_space_is_over_but_has_nothing_to_finalize():
    cancelled, ends = fold(
        (rev.SpaceCreated(space_id="c", host_user_id="h", recording_enabled=True), 0),
        (rev.SpaceCancelled(space_id="c"), 1),
    )
    assert cancelled.over and cancelled.cancelled and ends == []
