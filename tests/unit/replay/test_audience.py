"""Who may see a replay: the Space's most restrictive policy while live, and the people it admitted."""

from __future__ import annotations

from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain.audience import INITIAL, TRUST_AND_SAFETY, evolve, visible
from tests.unit.replay.test_catalog import fold as fold_facts

S = "space-1"
ANYONE, INVITED_ONLY = rt.JOIN_POLICY_ANYONE, rt.JOIN_POLICY_INVITED_ONLY


def created(policy: int = INVITED_ONLY) -> rev.SpaceCreated:
    return rev.SpaceCreated(space_id=S, host_user_id="host", join_policy=policy, recording_enabled=True)


def policy_changed(policy: int) -> rev.SpaceUpdated:
    return rev.SpaceUpdated(space_id=S, changed_fields=["join_policy"], join_policy=policy)


def joined(user_id: str, source: int = rev.JOIN_SOURCE_INVITED) -> rev.ParticipantJoined:
    return rev.ParticipantJoined(space_id=S, user_id=user_id, role=rt.ROLE_LISTENER, source=source)


def left(user_id: str, reason: int) -> rev.ParticipantLeft:
    return rev.ParticipantLeft(space_id=S, user_id=user_id, reason=reason)


def fold(*events):
    return reduce(evolve, events, INITIAL)


STARTED = (
    rev.SpaceStarted(space_id=S, host_user_id="host"),
    rev.ParticipantJoined(space_id=S, user_id="host", role=rt.ROLE_HOST, source=rev.JOIN_SOURCE_HOST),
)
INVITE_ONLY_SPACE = fold(
    created(),
    rev.UsersInvited(space_id=S, user_ids=["guest", "never-came"]),
    *STARTED,
    joined("guest"),
    joined("co"),
    rev.CoHostAdded(space_id=S, user_id="co"),
    joined("linked", rev.JOIN_SOURCE_INVITE_LINK),
    joined("left-early"),
    left("left-early", rev.LEAVE_REASON_LEFT),
    joined("removed"),
    left("removed", rev.LEAVE_REASON_REMOVED),
    joined("evicted"),
    left("evicted", rev.LEAVE_REASON_POLICY),
    rev.SpaceEnded(space_id=S, reason=rev.END_REASON_HOST_ENDED),
)


@pytest.mark.parametrize("user_id", ["host", "co", "guest", "linked", "left-early"])
def test_an_invite_only_replay_is_for_its_host_co_hosts_and_everyone_admitted(user_id):
    assert visible(INVITE_ONLY_SPACE, user_id)


@pytest.mark.parametrize("user_id", ["stranger", "never-came", "removed", "evicted"])
def test_an_invite_only_replay_is_not_for_strangers_the_invited_who_never_came_or_the_removed(user_id):
    assert not visible(INVITE_ONLY_SPACE, user_id)


def test_trust_and_safety_sees_every_replay_and_other_roles_do_not_help():
    assert visible(INVITE_ONLY_SPACE, "reviewer", frozenset({TRUST_AND_SAFETY}))
    assert not visible(INVITE_ONLY_SPACE, "stranger", frozenset({"gateway", "admin"}))


def test_a_public_replay_is_for_every_user():
    space = fold(created(ANYONE), *STARTED, rev.SpaceEnded(space_id=S))
    assert visible(space, "stranger") and visible(space, "host")
    assert visible(fold(rev.SpaceCreated(space_id=S, host_user_id="host")), "stranger")  # unspecified: anyone


def test_opened_after_the_start_stays_invite_only_because_what_was_said_then_was_private():
    space = fold(created(), *STARTED, joined("guest"), policy_changed(ANYONE), joined("walk-in", 1))
    assert space.join_policy == ANYONE and space.invite_only
    assert visible(space, "walk-in") and visible(space, "guest")  # admitted while it was open
    assert not visible(space, "stranger")


def test_closed_after_the_start_becomes_invite_only():
    space = fold(created(ANYONE), *STARTED, joined("early", 1), policy_changed(INVITED_ONLY))
    assert space.invite_only and visible(space, "early") and not visible(space, "stranger")


def test_before_the_start_only_the_current_policy_counts():
    opened = fold(created(), policy_changed(ANYONE), *STARTED)
    assert not opened.invite_only and visible(opened, "stranger")
    closed = fold(created(ANYONE), policy_changed(INVITED_ONLY), *STARTED)
    assert closed.invite_only and not visible(closed, "stranger")


def test_other_changes_and_other_events_leave_the_audience_alone():
    title_only = rev.SpaceUpdated(space_id=S, changed_fields=["title"], title="New")
    assert evolve(INVITE_ONLY_SPACE, title_only) is INVITE_ONLY_SPACE
    assert evolve(INVITE_ONLY_SPACE, rev.SpeakRequested(space_id=S, user_id="x")) is INVITE_ONLY_SPACE


POLICY_EVENTS = st.lists(
    st.sampled_from([policy_changed(ANYONE), policy_changed(INVITED_ONLY), joined("x"), STARTED[0]])
)


@given(policy=st.sampled_from([ANYONE, INVITED_ONLY]), before=POLICY_EVENTS, after=POLICY_EVENTS)
def test_once_invite_only_while_live_always_invite_only(policy, before, after):
    space = fold(created(policy), *before, *STARTED, policy_changed(INVITED_ONLY), *after)
    assert space.invite_only
    assert visible(space, "host") and not visible(space, "stranger")


def test_the_catalog_folds_each_spaces_audience_from_its_room_events():
    facts, _ = fold_facts(
        (created(), 0),
        (STARTED[0], 1),
        (STARTED[1], 1),
        (joined("guest"), 2),
        (rev.SpaceEnded(space_id=S), 3),
    )
    audience = facts.audience
    assert audience.invite_only and visible(audience, "guest") and not visible(audience, "stranger")
