"""A recording's timeline from the log: offsets from the recording's origin, coalesced listener counts."""

from __future__ import annotations

from datetime import timedelta

from podium.room.v1 import room_events_pb2 as rev
from services.replay.domain import timeline as tl
from services.replay.domain.space_at import merge_by_time
from tests.unit.replay.test_space_at import EVENTS, MEDIA, MODERATION, ROOM, S, at


def test_entries_are_offsets_from_the_origin_and_what_held_before_shows_at_zero():
    entries = tl.build(EVENTS, origin=at(4))
    roles = [(e.at, e.user_id, e.role) for e in entries if e.kind == tl.ROLE_CHANGED]
    assert roles == [(timedelta(0), "h", "host"), (timedelta(0), "a", "speaker")]
    by_kind = {(e.kind, e.user_id): e.at for e in entries}
    assert by_kind[(tl.STARTED_TALKING, "a")] == timedelta(seconds=1)
    assert by_kind[(tl.STOPPED_TALKING, "a")] == timedelta(seconds=2.5)
    assert by_kind[(tl.MUTED, "a")] == timedelta(seconds=3)
    assert by_kind[(tl.UNMUTED, "a")] == timedelta(seconds=4)
    listeners = [(e.at, e.listeners) for e in entries if e.kind == tl.LISTENERS]
    assert listeners == [(timedelta(0), 1), (timedelta(seconds=6), 0)]


def test_events_after_the_end_are_left_out():
    entries = tl.build(EVENTS, origin=at(0), until=at(5.5))
    assert (tl.STOPPED_TALKING, "a") not in {(e.kind, e.user_id) for e in entries}


def test_listener_counts_are_coalesced_to_one_entry_per_second():
    joins = [(rev.ParticipantJoined(space_id=S, user_id=f"u{i}"), at(30 + i * 0.01)) for i in range(50)]
    events = merge_by_time(ROOM[:3] + joins, MODERATION, MEDIA)
    listeners = [e for e in tl.build(events, origin=at(0)) if e.kind == tl.LISTENERS]
    assert [e.listeners for e in listeners] == [50]
    assert listeners[0].at == timedelta(seconds=30.49)
