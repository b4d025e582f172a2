"""A listener shard's decisions (ADR 0012): the Space's rules for a join, against the Space's own
state, with the shard answering only whether the user is already in through it."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.domain.decider import Context, fold
from libs.domain.errors import DomainError, FailedPrecondition, PermissionDenied
from libs.domain.streams import listener_shard_stream, shard_of, space_stream
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.decide import OnListenerShards, decide
from services.room.domain.evolve import evolve, with_members
from services.room.domain.evolve import replace as replace_space
from services.room.domain.limits import RoomLimits
from services.room.domain.listener_shard import (
    EMPTY_SHARD,
    JoinOnShard,
    LeaveOnShard,
    LeavesOnShard,
    decide_on_shard,
    evolve_shard,
    shard_in_lane,
    streams_of,
)
from tests.unit.room.given import HOST, NOW, SPACE, created, ended, joined, left, live, state_of, when

INVITE_ONLY = types.JOIN_POLICY_INVITED_ONLY
GROWN = ev.ListenerShardsGrown(space_id=SPACE, shards=4)


def shard_of_events(*events):
    return fold(evolve_shard, EMPTY_SHARD, ((e, NOW) for e in events))


def join(space_events, user, shard=(), **join_fields):
    command = JoinOnShard(c.JoinSpace(SPACE, **join_fields), state_of(*space_events))
    return decide_on_shard(command, shard_of_events(*shard), Context(user, NOW), RoomLimits())


def test_a_listener_joins_through_the_shard_once():
    (joined_,) = join([*live(), GROWN], "ann")
    assert (joined_.user_id, joined_.role, joined_.source) == (
        "ann",
        types.ROLE_LISTENER,
        ev.JOIN_SOURCE_DIRECT,
    )
    assert join([*live(), GROWN], "ann", [joined_]) == []  # already in through this shard
    left = ev.ParticipantLeft(space_id=SPACE, user_id="ann", reason=ev.LEAVE_REASON_LEFT)
    assert join([*live(), GROWN], "ann", [joined_, left]) != []  # back after leaving


@pytest.mark.parametrize(
    ("space", "fields", "error", "reason"),
    [
        ([created()], {}, FailedPrecondition, "SPACE_NOT_LIVE"),
        (live(INVITE_ONLY), {}, PermissionDenied, "NOT_INVITED"),
        (live(), {"barred": True}, PermissionDenied, "REMOVED_FROM_SPACE"),
        (live(), {"blocked_by": frozenset({HOST})}, PermissionDenied, "BLOCKED"),
        (live(), {"invite_link_id": "nope"}, PermissionDenied, "INVITE_OTHER_SPACE"),
    ],
)
def test_the_spaces_rules_refuse_a_join_on_a_shard_as_on_its_own_stream(space, fields, error, reason):
    for refuse in (
        lambda: join([*space, GROWN], "ann", **fields),
        lambda: decide(c.JoinSpace(SPACE, **fields), state_of(*space), Context("ann", NOW), RoomLimits()),
    ):
        with pytest.raises(error) as refused:
            refuse()
        assert refused.value.reason == reason


def test_once_a_space_has_shards_its_own_stream_sends_listeners_joins_and_leaves_there():
    space = [*live(), GROWN]
    for command, actor in [
        (c.JoinSpace(SPACE), "ann"),
        (c.LeaveSpace(SPACE), "ann"),
        (c.TimeOutParticipant(SPACE, "ann"), "room"),
        (c.RemoveParticipant(SPACE, "ann"), HOST),
    ]:
        with pytest.raises(OnListenerShards) as routed:
            when(space, command, actor, claims=["system"] if actor == "room" else ())
        assert (routed.value.user_id, routed.value.reason) == ("ann", "ON_LISTENER_SHARDS")
    left = ev.ParticipantLeft(space_id=SPACE, user_id=HOST, reason=ev.LEAVE_REASON_LEFT)
    (back,) = when([*space, left], c.JoinSpace(SPACE), HOST)  # the host's join stays on the own stream
    assert back.role == types.ROLE_HOST
    # Someone in through the own stream (they joined before it grew) leaves there.
    (gone,) = when([*live(), *joined("early"), GROWN], c.LeaveSpace(SPACE), "early")
    assert gone.user_id == "early"


def test_an_invited_user_joins_an_invite_only_space_through_a_shard():
    invited = ev.UsersInvited(space_id=SPACE, user_ids=["ann"])
    (joined_,) = join([*live(INVITE_ONLY), invited, GROWN], "ann")
    assert joined_.source == ev.JOIN_SOURCE_INVITED


def test_someone_removed_through_the_shard_stays_out_of_it():
    removed = ev.ParticipantLeft(space_id=SPACE, user_id="ann", reason=ev.LEAVE_REASON_REMOVED)
    with pytest.raises(PermissionDenied) as refused:
        join([*live(), GROWN], "ann", [*joined("ann"), removed])
    assert refused.value.reason == "REMOVED_FROM_SPACE"


def test_a_removals_bar_on_a_shard_takes_out_whoever_is_in_and_bars_whoever_is_not():
    """ADR 0014: decided on the shard's own state, so a join the shard took before the bar is taken
    out, and a join decided after it is refused whatever (stale) Space state it was given."""
    ctx, limits = Context("room", NOW), RoomLimits()
    bar = LeaveOnShard(SPACE, "ann", ev.LEAVE_REASON_REMOVED, bar=True)
    (barred,) = decide_on_shard(bar, EMPTY_SHARD, ctx, limits)
    assert (type(barred), barred.user_id) == (ev.ParticipantBarred, "ann")
    assert decide_on_shard(bar, shard_of_events(barred), ctx, limits) == []  # once
    with pytest.raises(PermissionDenied) as refused:
        join([*live(), GROWN], "ann", [barred])  # the Space's state given does not know the bar
    assert refused.value.reason == "REMOVED_FROM_SPACE"
    (left,) = decide_on_shard(bar, shard_of_events(*joined("ann")), ctx, limits)
    assert (type(left), left.reason) == (ev.ParticipantLeft, ev.LEAVE_REASON_REMOVED)
    # A leave that is not a bar leaves the absent alone.
    assert decide_on_shard(
        LeavesOnShard((bar, LeaveOnShard(SPACE, "bo", ev.LEAVE_REASON_REMOVED))), EMPTY_SHARD, ctx, limits
    ) == [barred]


def test_the_host_and_a_space_without_shards_are_not_the_shards_business():
    with pytest.raises(ValueError):
        join([*live(), GROWN], HOST)
    with pytest.raises(ValueError):
        join(live(), "ann")


def test_a_leave_goes_through_the_shard_only_if_the_user_is_in_there():
    leave = LeaveOnShard(SPACE, "ann", ev.LEAVE_REASON_TIMED_OUT, types.ROLE_SPEAKER, mass_time_out=True)
    assert decide_on_shard(leave, EMPTY_SHARD, Context("room", NOW), RoomLimits()) == []
    (left,) = decide_on_shard(leave, shard_of_events(*joined("ann")), Context("room", NOW), RoomLimits())
    assert (left.user_id, left.reason, left.previous_role, left.mass_time_out) == (
        "ann",
        ev.LEAVE_REASON_TIMED_OUT,
        types.ROLE_SPEAKER,
        True,
    )
    assert not shard_of_events(*joined("ann"), left).is_in("ann")


def test_the_spaces_own_commands_see_shard_members_they_are_given():
    """Who is in through a shard is not on the Space's own stream: a command about them is decided
    with them put in (`WithShardMembers`), in the role the own stream lists them in."""
    space = [*live(), GROWN]
    with pytest.raises(OnListenerShards):
        when(space, c.InviteToSpeak(SPACE, "ann"))
    with pytest.raises(FailedPrecondition) as refused:  # the shards were asked: not in
        when(space, c.WithShardMembers(c.InviteToSpeak(SPACE, "ann"), ()))
    assert refused.value.reason == "NOT_A_PARTICIPANT"
    ann = (("ann", NOW),)
    (promoted,) = when(space, c.WithShardMembers(c.InviteToSpeak(SPACE, "ann"), ann))
    assert (type(promoted), promoted.user_id) == (ev.SpeakerAdded, "ann")
    (raised,) = when(space, c.WithShardMembers(c.RequestToSpeak(SPACE), ann), "ann")
    assert isinstance(raised, ev.SpeakRequested)
    # A speaker the own stream lists, in through a shard, steps down as a speaker.
    (stepped,) = when([*space, promoted], c.WithShardMembers(c.StepDown(SPACE), ann), "ann")
    assert isinstance(stepped, ev.SpeakerRemoved)
    listed = with_members(state_of(*space, promoted), ann)
    assert (listed.role_of("ann"), listed.version) == (types.ROLE_SPEAKER, state_of(*space, promoted).version)


def test_a_voice_or_a_raised_hand_that_left_through_a_shard_is_released_on_the_own_stream():
    space = [*live(), GROWN]
    ann, bob = (("ann", NOW),), (("bob", NOW),)
    promoted = when(space, c.WithShardMembers(c.InviteToSpeak(SPACE, "ann"), ann))
    co_host = when(space, c.WithShardMembers(c.AddCoHost(SPACE, "bob"), bob))
    raised = when(space, c.WithShardMembers(c.RequestToSpeak(SPACE), (("cy", NOW),)), "cy")
    history = [*space, *promoted, *co_host, *raised]

    def release(user, events=history):
        return when(events, c.ReleaseLeaver(SPACE, user), "room", claims=["system"])

    (speaker,) = release("ann")
    assert (type(speaker), speaker.reason) == (ev.SpeakerRemoved, ev.SPEAKER_REMOVAL_REASON_LEFT)
    assert [type(e) for e in release("bob")] == [ev.CoHostRemoved]
    assert [type(e) for e in release("cy")] == [ev.SpeakRequestWithdrawn]
    after = state_of(*history, speaker, *release("bob"), *release("cy"))
    assert (after.speakers, after.co_hosts, after.speak_requests) == ((), (), ())
    assert release("dee") == []  # nothing held for them
    assert release("ann", [*history, ev.SpaceEnded(space_id=SPACE)]) == []  # every role lapsed
    with pytest.raises(PermissionDenied):
        when(history, c.ReleaseLeaver(SPACE, "ann"), HOST)


def test_the_release_views_release_leaves_a_leaver_who_is_back_what_they_hold():
    space = [*live(), GROWN]
    ann = (("ann", NOW),)
    history = [*space, *when(space, c.WithShardMembers(c.InviteToSpeak(SPACE, "ann"), ann))]
    late = c.ReleaseLeaver(SPACE, "ann", unless_back=True)
    with pytest.raises(OnListenerShards):  # whether ann is back is for the shards to say
        when(history, late, "room", claims=["system"])
    back = when(history, c.WithShardMembers(late, ann), "room", claims=["system"])
    assert back == []  # back in, and a speaker: promoted again since, or kept across the return
    (gone,) = when(history, c.WithShardMembers(late, ()), "room", claims=["system"])
    assert (type(gone), gone.reason) == (ev.SpeakerRemoved, ev.SPEAKER_REMOVAL_REASON_LEFT)
    # The release that runs with the leave itself does not ask the shards: the leave ends the voice.
    assert [type(e) for e in when(history, c.ReleaseLeaver(SPACE, "ann"), "room", claims=["system"])] == [
        ev.SpeakerRemoved
    ]


def test_the_release_of_a_leaver_who_holds_nothing_asks_no_shard():
    # A plain listener's leave: nothing to release, so whether they are back does not matter, and
    # the release view's command costs no read of the shards (a storm of leaves is mostly these).
    history = [*live(), GROWN]
    assert when(history, c.ReleaseLeaver(SPACE, "ann", unless_back=True), "room", claims=["system"]) == []


def test_many_leaves_through_a_shard_take_out_each_member_once():
    evicted = LeavesOnShard(
        tuple(LeaveOnShard(SPACE, user, ev.LEAVE_REASON_POLICY) for user in ("ann", "bob", "ann", "nobody"))
    )
    left = decide_on_shard(
        evicted, shard_of_events(*joined("ann", "bob", "cy")), Context("room", NOW), RoomLimits()
    )
    assert [(e.user_id, e.reason) for e in left] == [
        ("ann", ev.LEAVE_REASON_POLICY),
        ("bob", ev.LEAVE_REASON_POLICY),
    ]


def test_a_users_streams_are_their_shard_under_each_count_then_the_spaces_own():
    assert streams_of(SPACE, "ann", 1) == [space_stream(SPACE)]
    for user in ("ann", "bob", "cy", "dee", "eve"):
        streams = streams_of(SPACE, user, 8)
        expected = [listener_shard_stream(SPACE, shard_of(user, n)) for n in (8, 4, 2)]
        assert streams == [*dict.fromkeys(expected), space_stream(SPACE)]
        # A count's shard is the next smaller count's or the one N above it: a user moves at most
        # once per growth, so a leave tries at most log2(N) shards.
        assert all(shard_of(user, 2 * n) % n == shard_of(user, n) for n in (1, 2, 4))


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=12),
    st.sampled_from([2, 4, 8, 16, 256]),
    st.sampled_from([1, 2, 4, 8]),
    st.none() | st.integers(0, 15),
)
def test_a_lane_writes_only_its_own_shards_and_every_lane_s_shard_is_among_the_users_streams(
    user, shards, lanes, lane
):
    w = min(lanes, shards)
    k = shard_in_lane(user, shards, lanes, lane)
    assert 0 <= k < shards
    if lane is not None:
        assert k % w == lane % w  # the lane's shards only: no other lane's writer shares it
    else:  # a replica that holds no lane puts the user where one lane would: their own shard
        assert k == shard_of(user, shards)
    streams = streams_of(SPACE, user, shards, lanes, lane)
    assert streams[0] == listener_shard_stream(SPACE, k) and streams[-1] == space_stream(SPACE)
    everywhere = {
        listener_shard_stream(SPACE, shard_in_lane(user, n, lanes, other))
        for n in (2**e for e in range(1, shards.bit_length()))
        for other in range(min(lanes, n))
    }
    assert set(streams[:-1]) == everywhere  # whichever lane and count a join was written through
    assert len(streams) == len(set(streams))


def test_with_one_lane_a_user_s_shard_is_the_one_their_id_picks():
    for user in ("ann", "bob", "cy"):
        for n in (2, 4, 8):
            assert shard_in_lane(user, n, 1, 0) == shard_in_lane(user, n, 1, None) == shard_of(user, n)
        assert streams_of(SPACE, user, 8, 1, 0) == streams_of(SPACE, user, 8)


def test_lanes_deal_the_shards_evenly_and_a_lane_spreads_its_users_over_its_own():
    users = [f"user-{n}" for n in range(4000)]
    for lane in (0, 1):
        placed = Counter(shard_in_lane(u, 8, 2, lane) for u in users)
        assert sorted(placed) == [k for k in range(8) if k % 2 == lane]
        assert min(placed.values()) > 0.8 * len(users) / 4


users = st.sampled_from(["a", "b", "c", "d", "e", "f"])
moves = st.lists(st.tuples(users, st.booleans()), max_size=40)


@settings(max_examples=100, deadline=None)
@given(moves, st.sampled_from([2, 4, 8]), st.sampled_from([types.JOIN_POLICY_ANYONE, INVITE_ONLY]))
def test_listeners_on_shards_are_in_exactly_when_they_would_be_on_one_stream(sequence, shards, policy):
    """The same joins (True) and leaves (False) of listeners, decided on the Space's one stream and
    on its shards against the Space's state: the same people are in, with the same events."""
    space = [*live(policy), ev.UsersInvited(space_id=SPACE, user_ids=["a", "b", "c"])]
    grown = state_of(*space, ev.ListenerShardsGrown(space_id=SPACE, shards=shards))
    one = state_of(*space)
    stream_states = {}
    for user, joining in sequence:
        command = c.JoinSpace(SPACE) if joining else c.LeaveSpace(SPACE)
        try:
            on_one = decide(command, one, Context(user, NOW), RoomLimits())
        except DomainError as refusal:
            on_one = refusal.reason
        k = shard_of(user, shards)
        shard = stream_states.get(k, EMPTY_SHARD)
        sharded = JoinOnShard(command, grown) if joining else LeaveOnShard(SPACE, user, ev.LEAVE_REASON_LEFT)
        try:
            on_shard = decide_on_shard(sharded, shard, Context(user, NOW), RoomLimits())
        except DomainError as refusal:
            on_shard = refusal.reason
        assert on_shard == on_one
        if isinstance(on_one, list):
            one = fold(evolve, one, ((e, NOW) for e in on_one))
            stream_states[k] = fold(evolve_shard, shard, ((e, NOW) for e in on_shard))
    in_on_shards = {u for state in stream_states.values() for u in state.members}
    assert in_on_shards == set(one.participants) - {HOST}


def _with_members_one_by_one(space, members):
    """`with_members` by its definition: `evolve` of a listener's join for each not in yet, in
    turn, the Space's version kept."""
    for user_id, joined_at in members:
        if not space.is_in(user_id):
            joined_ = ev.ParticipantJoined(space_id=space.space_id, user_id=user_id, role=types.ROLE_LISTENER)
            space = replace_space(evolve(space, joined_, joined_at), version=space.version)
    return space


def _spaces_with_shard_members():
    space = [*live(), GROWN]
    promoted = when(space, c.WithShardMembers(c.InviteToSpeak(SPACE, "ann"), (("ann", NOW),)))
    co_host = when(space, c.WithShardMembers(c.AddCoHost(SPACE, "bob"), (("bob", NOW),)))
    voices = [*space, *promoted, *co_host]
    return {
        "live": space,
        "voices in through shards": voices,
        "the host away (unattended)": [*voices, left(HOST)],
        "listeners on the own stream": [*voices, *joined("cy", "dee")],
        "ended": [*voices, *ended()[-1:]],
    }


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(sorted(_spaces_with_shard_members())),
    members=st.lists(
        st.tuples(
            st.sampled_from([HOST, "ann", "bob", "cy", "dee", "eve", "fay", "gus"]),
            st.integers(0, 3600).map(lambda s: NOW + timedelta(seconds=s)),
        ),
        max_size=12,
    ),
)
def test_with_members_in_one_pass_is_the_fold_of_their_joins_one_by_one(case, members):
    """The Space with everyone in through its shards put in at once (one copy of the membership's
    entries) is the Space each join, folded in turn, would give: roles from the roster, the host or
    a co-host back making it attended, the first time listed for a user listed twice."""
    space = state_of(*_spaces_with_shard_members()[case])
    assert with_members(space, members) == _with_members_one_by_one(space, members)
