"""Ready for listener shards (ADR 0012): a promotion recorded on the Space's stream may reach a
consumer before the join recorded on the user's shard. Folded in either order, the entry and the
counts are the same."""

from __future__ import annotations

import itertools

from libs.domain.membership import SpaceMembers
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt

S = "s"


def _joined(user: str) -> ev.ParticipantJoined:
    return ev.ParticipantJoined(space_id=S, user_id=user, role=rt.ROLE_LISTENER, source=ev.JOIN_SOURCE_DIRECT)


START = [
    ev.SpaceCreated(space_id=S, host_user_id="host"),
    ev.SpaceStarted(space_id=S),
    ev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST, source=ev.JOIN_SOURCE_HOST),
]
# The Space's stream and the listeners' shard, each in its own order.
SPACE_STREAM = [ev.SpeakerAdded(space_id=S, user_id="ann"), ev.CoHostAdded(space_id=S, user_id="cat")]
SHARD = [_joined("ann"), _joined("ben"), _joined("cat")]


def _fold(events) -> SpaceMembers:
    members = SpaceMembers()
    for at, event in enumerate(events):
        members.apply(event, at)
    return members


def _seen(members: SpaceMembers):
    roster = members.roster
    roles = {user: member.role for user, member in members.present()}
    return roles, roster.present, roster.listeners, roster.co_hosts, roster.speakers


def _interleavings(first: list, second: list):
    """Every merge of the two lists that keeps each one's order, the shard's join of a user always
    before that user's promotion in the real order (the room promotes only people who are in)."""
    for places in itertools.combinations(range(len(first) + len(second)), len(first)):
        merged, a, b = [], iter(first), iter(second)
        for i in range(len(first) + len(second)):
            merged.append(next(a) if i in places else next(b))
        yield merged


def test_a_promotion_folded_before_the_join_gives_the_same_member():
    in_order = _seen(_fold([*START, SHARD[0], SPACE_STREAM[0], SHARD[1], SHARD[2], SPACE_STREAM[1]]))
    assert in_order[0] == {
        "host": rt.ROLE_HOST,
        "ann": rt.ROLE_SPEAKER,
        "ben": rt.ROLE_LISTENER,
        "cat": rt.ROLE_CO_HOST,
    }
    assert in_order[1:3] == (4, 1)
    orders = list(_interleavings(SPACE_STREAM, SHARD))
    assert len(orders) == 10
    for order in orders:
        assert _seen(_fold([*START, *order])) == in_order, order
