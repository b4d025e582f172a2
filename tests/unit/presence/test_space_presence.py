"""Presence rules over one Space: joins, reconnects, timeouts, gateway loss, counts. (When a user is
timed out, on evidence, is tests/unit/presence/test_evidence.py.)"""

from podium.presence.v1 import presence_events_pb2 as ev
from podium.room.v1 import room_events_pb2 as rev
from services.presence.domain.space_presence import (
    PresenceRules,
    adopt,
    beat,
    counts,
    drop_gateway,
    empty,
    entry_of,
    follow_room,
    forget_gone,
    hand_over,
    present_user,
    split_off,
    time_out,
)

RULES = PresenceRules(timeout_seconds=30, reconnect_grace_seconds=60)


def kinds(events):
    return [
        (type(e).__name__, e.user_id, getattr(e, "kind", None) or getattr(e, "cause", None)) for e in events
    ]


def test_first_heartbeat_is_a_join_and_later_ones_are_silent():
    state = empty("s")
    assert kinds(beat(state, "gw", ["a", "b"], 0, RULES)) == [
        ("ParticipantConnected", "a", ev.CONNECT_KIND_NEW),
        ("ParticipantConnected", "b", ev.CONNECT_KIND_NEW),
    ]
    assert beat(state, "gw", ["a", "b"], 10, RULES) == []
    assert counts(state) == (2, 2, 2)


def test_a_time_out_leaves_the_counts_peak_and_unique_as_they_were():
    state = empty("s")
    beat(state, "gw", ["a", "b"], 0, RULES)
    event = time_out(state, "a", 31, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED)
    assert kinds([event]) == [("ParticipantTimedOut", "a", ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED)]
    assert (event.gateway_id, event.mass_time_out) == ("gw", False)
    assert counts(state) == (1, 2, 2)


def test_coming_back_within_the_grace_is_a_reconnect_and_later_a_new_join():
    state = empty("s")
    beat(state, "gw", ["a"], 0, RULES)
    time_out(state, "a", 31, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED)
    assert kinds(beat(state, "gw", ["a"], 50, RULES)) == [
        ("ParticipantConnected", "a", ev.CONNECT_KIND_RECONNECT)
    ]
    time_out(state, "a", 81, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED)
    forget_gone(state, 141, RULES)
    assert "a" in state["gone"]  # 60 s after: still inside the grace
    forget_gone(state, 200, RULES)  # grace over: forgotten
    assert kinds(beat(state, "gw", ["a"], 201, RULES)) == [("ParticipantConnected", "a", ev.CONNECT_KIND_NEW)]
    assert counts(state) == (1, 1, 1)  # unique counts people, not sessions


def test_a_lost_gateway_drops_only_its_users():
    state = empty("s")
    beat(state, "gw-a", ["a1", "a2"], 0, RULES)
    beat(state, "gw-b", ["b1"], 0, RULES)
    dropped = drop_gateway(state, "gw-a", 5)
    assert sorted(e.user_id for e in dropped) == ["a1", "a2"]
    assert {e.cause for e in dropped} == {ev.TIMEOUT_CAUSE_GATEWAY_DISCONNECTED}
    assert set(state["present"]) == {"b1"}


def test_a_user_moving_to_another_gateway_stays_present():
    state = empty("s")
    beat(state, "gw-a", ["a"], 0, RULES)
    assert beat(state, "gw-b", ["a"], 1, RULES) == []
    assert drop_gateway(state, "gw-a", 2) == []


def test_a_room_leave_drops_the_user_and_older_heartbeats_do_not_bring_them_back():
    from services.presence.domain.space_presence import leave

    state = empty("s")
    beat(state, "gw", ["a", "b"], 0, RULES)
    leave(state, ["a"], at=10)
    assert set(state["present"]) == {"b"}
    assert beat(state, "gw", ["a", "b"], 9, RULES) == []  # written before the leave, read after it
    assert set(state["present"]) == {"b"}
    assert kinds(beat(state, "gw", ["a"], 11, RULES)) == [("ParticipantConnected", "a", ev.CONNECT_KIND_NEW)]


def test_records_delivered_again_after_a_crash_are_not_applied_twice():
    """The restart case the SIGKILL test once caught: the table recovered from its changelog is
    ahead of the committed offsets, and the heartbeats since are delivered again."""
    from services.presence.domain.space_presence import HEARTBEATS, ROOM, already_applied

    def apply(state, offset, gateway, users, now):
        return [] if already_applied(state, HEARTBEATS, offset) else beat(state, gateway, users, now, RULES)

    state = empty("s")
    apply(state, 0, "gw", [f"u{i}" for i in range(5)], 0)
    apply(state, 1, "gw", ["u0", "u1", "u2"], 1)
    assert not already_applied(state, HEARTBEATS, 2)
    drop_gateway(state, "gw", 2)
    apply(state, 3, "gw2", ["u0", "late"], 3)
    assert counts(state) == (2, 5, 6)
    for offset, gateway, users in (
        (0, "gw", [f"u{i}" for i in range(5)]),
        (1, "gw", ["u0"]),
        (3, "gw2", ["late"]),
    ):
        assert apply(state, offset, gateway, users, 4) == []  # delivered again: skipped
    assert counts(state) == (2, 5, 6)
    assert not already_applied(state, ROOM, 1)  # each source has its own positions (room: versions)
    assert already_applied(state, ROOM, 1)


def test_users_handed_over_to_another_part_are_present_there_as_they_were_without_an_event():
    old, new = empty("s"), empty("s")
    beat(old, "gw", ["a", "b", "c"], 0, RULES)
    old["held"] = {"b": 40.0}
    beat(new, "gw", ["b", "c"], 20, RULES)  # b and c reported to their new part already, and
    follow_room(new, "space-s", 2, rev.ParticipantLeft(space_id="s", user_id="b"), 45)  # b left
    entries = hand_over(old, ["a", "b", "c"])
    assert old["present"] == {} and old["held"] == {}
    # Through the record that carries them, as the part that takes them reads it.
    carried = [(user, entry_of(present_user(user, entry))) for user, entry in entries]
    assert carried == entries
    adopt(new, carried)
    # a as they were; b stays out (the room said they left after they were last seen); c as reported
    # there, since it reported there since.
    assert new["present"] == {"a": ["gw", 0, 0], "c": ["gw", 20, 20]}
    assert counts(new) == (2, 2, 3)
    adopt(new, carried)  # twice is once
    assert counts(new) == (2, 2, 3)


def test_a_split_hands_everything_of_the_users_of_other_parts_over_and_counts_each_user_once():
    old = empty("s")
    beat(old, "gw", ["a1", "b1", "a2", "b2", "b3"], 0, RULES)
    time_out(old, "a2", 31, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED)  # gone, in its grace
    follow_room(old, "space-s", 2, rev.ParticipantLeft(space_id="s", user_id="b3"), 32)  # left
    old["held"] = {"b2": 40.0}
    moved = split_off(old, "s", lambda user: "s" if user.startswith("a") else "s/p1")
    assert list(moved) == ["s/p1"]
    entries, unique = moved["s/p1"]
    assert [user for user, _ in entries] == ["b1", "b2"] and unique == ["b3"]
    assert old["present"] == {"a1": ["gw", 0, 0]} and old["unique"] == ["a1", "a2"]
    assert old["gone"] == {"a2": ["gw", 31]} and old["held"] == {} and old["left"] == {}
    new = empty("s")
    adopt(new, entries, unique)
    assert counts(old)[2] + counts(new)[2] == 5  # unique: every user once, across the parts
    assert counts(old)[0] + counts(new)[0] == 3 and set(new["present"]) == {"b1", "b2"}
