"""Presence follows a Space whose room events come on several streams (listener shards, ADR 0012):
each stream numbered from 1, interleaved on the partition. Positions are kept per stream, so a
shard's leave is never taken for a duplicate of the Space stream's version, a redelivery of any
stream is dropped, and presence ends as the single-stream fold leaves it."""

from __future__ import annotations

import copy
import random

from libs.domain.streams import listener_shard_stream, space_stream
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt
from services.presence.domain.space_presence import (
    ROOM,
    ROOM_SHARDS,
    PresenceRules,
    beat,
    empty,
    follow_room,
    room_applied,
)
from tests.support.sharded_log import OnStream, merged, on_streams

S = "s"
SHARDS = 4
RULES = PresenceRules(timeout_seconds=30, reconnect_grace_seconds=60)
USERS = [f"u{i:02d}" for i in range(24)]


def history(*, ended: bool) -> list[tuple[object, float]]:
    """A Space in the room's order: everyone joins, a third leave (half of them come back, and
    leave again), a few ask to speak and are made speakers on the Space's own stream."""
    events: list[object] = [ev.SpaceCreated(space_id=S, host_user_id="host"), ev.SpaceStarted(space_id=S)]
    events += [ev.ParticipantJoined(space_id=S, user_id=u, role=rt.ROLE_LISTENER) for u in ["host", *USERS]]
    for i, user in enumerate(USERS):
        if i % 3 == 1:
            events.append(ev.ParticipantLeft(space_id=S, user_id=user))
        else:
            events += [ev.SpeakRequested(space_id=S, user_id=user), ev.SpeakerAdded(space_id=S, user_id=user)]
    for user in USERS[1::6]:
        events += [
            ev.ParticipantJoined(space_id=S, user_id=user, role=rt.ROLE_LISTENER),
            ev.ParticipantLeft(space_id=S, user_id=user),
        ]
    if ended:
        events.append(ev.SpaceEnded(space_id=S, reason=ev.END_REASON_HOST_ENDED))
    return [(event, float(n)) for n, event in enumerate(events, start=1)]


def present_at_the_start() -> dict:
    """Everyone connected before the room's events arrive."""
    state = empty(S)
    beat(state, "gw", ["host", *USERS], 0, RULES)
    return state


def fold(log, state: dict) -> int:
    """Follows the room's events; how many changed the state."""
    return sum(follow_room(state, item.stream_id, item.version, item.payload, item.at) for item in log)


def one_stream(events) -> list[OnStream]:
    """The history as it was before shards: every event on the Space's stream, numbered 1, 2, ..."""
    return [OnStream(space_stream(S), n, event, at) for n, (event, at) in enumerate(events, start=1)]


def seen(state: dict) -> dict:
    """The state but the positions of the records applied to it."""
    return {k: v for k, v in state.items() if k not in (ROOM, ROOM_SHARDS)}


def test_the_history_puts_leaves_on_every_shard_below_the_space_streams_version():
    """Not an invariant: proof that the history is what the tests here are about (a per-Space
    version would take the shards' leaves for duplicates)."""
    log = on_streams(S, history(ended=False), SHARDS)
    leaves = {item.stream_id for item in log if isinstance(item.payload, ev.ParticipantLeft)}
    assert leaves == {listener_shard_stream(S, k) for k in range(SHARDS)}
    space = max(item.version for item in log if item.stream_id == space_stream(S))
    assert all(item.version < space for item in log if item.stream_id in leaves)


def test_in_the_rooms_order_and_any_merge_presence_ends_as_the_single_stream_fold():
    for ended in (False, True):
        events = history(ended=ended)
        expected = present_at_the_start()
        changes = fold(one_stream(events), expected)
        assert changes == 8 + ended  # the leavers (back in the room, not connected again), the end
        log = on_streams(S, events, SHARDS)
        for order in [log] + [merged(log, random.Random(seed)) for seed in range(20)]:
            state = present_at_the_start()
            if ended:  # the end takes everyone out; a leave folded after it has nobody to take
                fold(order, state)
                assert (state["present"], set(state["left"])) == ({}, set(expected["left"]))
                assert state["ended_at"] == expected["ended_at"]
            else:
                assert fold(order, state) == changes
                assert seen(state) == seen(expected)


def test_a_redelivered_record_of_any_stream_is_dropped():
    log = on_streams(S, history(ended=False), SHARDS)
    for seed in range(10):
        rng = random.Random(seed)
        state, done = present_at_the_start(), []
        for item in merged(log, rng):
            follow_room(state, item.stream_id, item.version, item.payload, item.at)
            done.append(item)
            if rng.random() < 0.3:
                assert not fold([rng.choice(done)], state)
        beat(state, "gw", USERS, 1000, RULES)  # everyone back, after their leaves
        assert sorted(state["present"]) == sorted(["host", *USERS])
        before = copy.deepcopy(state)
        assert fold(merged(log, rng), state) == 0  # the whole log again: a leave would drop them
        assert state == before
        last = {item.stream_id: item.version for item in log}
        assert state[ROOM] == last.pop(space_stream(S)) and state[ROOM_SHARDS] == last


def test_a_state_from_before_shards_reads_its_room_version_as_the_space_streams():
    state = present_at_the_start()
    state[ROOM] = 40  # the previous release's one room position: the Space stream's version
    shard = listener_shard_stream(S, 3)
    assert follow_room(state, shard, 1, ev.ParticipantLeft(space_id=S, user_id="u00"), 50.0)
    assert "u00" not in state["present"] and state[ROOM_SHARDS] == {shard: 1}
    assert room_applied(state, space_stream(S), 40) and room_applied(state, shard, 1)
    assert not room_applied(state, space_stream(S), 41) and state[ROOM] == 41
    assert not follow_room(state, "", 41, ev.SpaceEnded(space_id=S), 60.0)  # unnamed: the Space's own
    assert follow_room(state, "", 42, ev.SpaceEnded(space_id=S), 60.0) and state["ended_at"] == 60.0
