"""Every room command: what it emits, and each way it is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.domain.decider import fold
from libs.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.evolve import evolve
from services.room.domain.limits import RoomLimits
from services.room.domain.state import INITIAL, Participant
from tests.unit.room.given import (
    HOST,
    NOW,
    SPACE,
    at,
    co_hosts,
    created,
    invite_link,
    joined,
    left,
    live,
    requested,
    speakers,
    state_of,
    when,
)


def names(events) -> list[str]:
    return [type(e).__name__ for e in events]


def co_host(user: str) -> ev.CoHostAdded:
    return ev.CoHostAdded(space_id=SPACE, user_id=user)


def rejected(error_type, reason: str | None = None):
    class _Check:
        def __init__(self):
            self.ctx = pytest.raises(error_type)

        def __enter__(self):
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.ctx.__exit__(*exc)
            if reason is not None:
                assert self.info.value.reason == reason
            return result

    return _Check()


# Lifecycle


def test_create_emits_space_created_with_the_actor_as_host():
    (event,) = when(
        [], c.CreateSpace(SPACE, "  Friday hangout  ", "desc", types.JOIN_POLICY_INVITED_ONLY), "alice"
    )
    assert event == ev.SpaceCreated(
        space_id=SPACE,
        host_user_id="alice",
        title="Friday hangout",
        description="desc",
        join_policy=types.JOIN_POLICY_INVITED_ONLY,
    )
    assert state_of(event).state == types.SPACE_STATE_CREATED


def test_create_defaults_to_anyone_and_scheduled_when_a_start_is_given():
    (event,) = when([], c.CreateSpace(SPACE, "t", scheduled_start=at(3600)))
    assert event.join_policy == types.JOIN_POLICY_ANYONE
    assert state_of(event).state == types.SPACE_STATE_SCHEDULED


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        (c.CreateSpace(SPACE, ""), ["title"]),
        (c.CreateSpace(SPACE, "   "), ["title"]),
        (c.CreateSpace(SPACE, "x" * 71), ["title"]),
        (c.CreateSpace(SPACE, "x" * 10_000, "d" * 501), ["title", "description"]),
        (c.CreateSpace(SPACE, "ok", join_policy=99), ["join_policy"]),
        (c.CreateSpace(SPACE, "ok", scheduled_start=NOW - timedelta(seconds=1)), ["scheduled_start"]),
    ],
)
def test_create_rejects_invalid_fields_with_every_violation(command, fields):
    with pytest.raises(InvalidArgument) as error:
        when([], command)
    assert [v.field for v in error.value.violations] == fields


def test_create_twice_is_already_exists():
    with rejected(AlreadyExists):
        when([created()], c.CreateSpace(SPACE, "again"))


def test_commands_on_an_unknown_space_are_not_found():
    with rejected(NotFound, "SPACE_NOT_FOUND"):
        when([], c.JoinSpace(SPACE), "ann")


def test_update_changes_only_what_differs():
    (event,) = when([created()], c.UpdateSpace(SPACE, title="Audio", description="new"))
    assert list(event.changed_fields) == ["description"]
    assert when([created()], c.UpdateSpace(SPACE, title="Audio")) == []
    assert state_of(created(), event).description == "new"


def test_update_is_for_the_host_and_not_after_the_end():
    with rejected(PermissionDenied, "NOT_HOST"):
        when([created()], c.UpdateSpace(SPACE, title="mine"), "ann")
    with rejected(FailedPrecondition, "SPACE_ENDED"):
        when([*live(), ev.SpaceEnded(space_id=SPACE)], c.UpdateSpace(SPACE, title="late"))
    with rejected(InvalidArgument):
        when(live(), c.UpdateSpace(SPACE, scheduled_start=at(60)))


def test_start_emits_started_and_the_host_joining_and_is_idempotent():
    events = when([created()], c.StartSpace(SPACE))
    assert names(events) == ["SpaceStarted", "ParticipantJoined"]
    assert events[1].role == types.ROLE_HOST
    assert when(live(), c.StartSpace(SPACE)) == []
    with rejected(PermissionDenied):
        when([created()], c.StartSpace(SPACE), "ann")
    with rejected(FailedPrecondition):
        when([created(), ev.SpaceCancelled(space_id=SPACE)], c.StartSpace(SPACE))


def test_end_is_for_the_host_of_a_live_space():
    (event,) = when(live(), c.EndSpace(SPACE))
    assert event.reason == ev.END_REASON_HOST_ENDED
    ended = state_of(*live(), *joined("ann"), event)
    assert ended.state == types.SPACE_STATE_ENDED and not ended.participants
    assert when([*live(), event], c.EndSpace(SPACE)) == []
    with rejected(PermissionDenied):
        when(live(), c.EndSpace(SPACE), "ann")
    with rejected(FailedPrecondition, "SPACE_NOT_LIVE"):
        when([created()], c.EndSpace(SPACE))


def test_cancel_only_before_it_starts():
    assert names(when([created()], c.CancelSpace(SPACE))) == ["SpaceCancelled"]
    with rejected(FailedPrecondition, "SPACE_STARTED"):
        when(live(), c.CancelSpace(SPACE))
    with rejected(PermissionDenied):
        when([created()], c.CancelSpace(SPACE), "ann")


def test_an_abandoned_space_ends_only_after_the_grace_period():
    gone = [*live(), *joined("ann"), ev.ParticipantLeft(space_id=SPACE, user_id=HOST)]
    state = state_of(*gone)
    assert state.unattended_since == NOW
    limits = RoomLimits(abandoned_grace=timedelta(minutes=5))
    with rejected(FailedPrecondition, "SPACE_ATTENDED"):
        when(gone, c.EndAbandonedSpace(SPACE), "system:room", now=at(299), limits=limits, claims=["system"])
    (event,) = when(
        gone, c.EndAbandonedSpace(SPACE), "system:room", now=at(300), limits=limits, claims=["system"]
    )
    assert event.reason == ev.END_REASON_ABANDONED
    with rejected(PermissionDenied):
        when(gone, c.EndAbandonedSpace(SPACE), "ann", now=at(300))


def test_a_host_gone_in_a_mass_time_out_is_not_absent_on_evidence():
    """Presence's brake held the time-out, and it was part of many at once: the Space waits for its
    host for the longer grace, not the usual one."""
    limits = RoomLimits(
        abandoned_grace=timedelta(minutes=5), abandoned_grace_without_evidence=timedelta(hours=1)
    )
    system = {"actor": "system:room", "limits": limits, "claims": ["system"]}
    (left,) = when([*live(), *joined("ann")], c.TimeOutParticipant(SPACE, HOST, mass_time_out=True), **system)
    assert (left.reason, left.mass_time_out) == (ev.LEAVE_REASON_TIMED_OUT, True)
    gone = [*live(), *joined("ann"), left]
    state = state_of(*gone)
    assert (state.unattended_since, state.unattended_on_evidence) == (NOW, False)
    with rejected(FailedPrecondition, "HOSTS_GONE_IN_MASS_TIME_OUT") as refused:
        when(gone, c.EndAbandonedSpace(SPACE), now=at(3599), **system)
    assert refused.value.metadata == {"not_before": at(3600).isoformat()}
    (event,) = when(gone, c.EndAbandonedSpace(SPACE), now=at(3600), **system)
    assert event.reason == ev.END_REASON_ABANDONED
    back = state_of(*gone, *joined(HOST))
    assert (back.unattended_since, back.unattended_on_evidence) == (None, True)


def test_an_ordinary_time_out_of_the_host_is_absence_on_evidence():
    (left,) = when(
        [*live(), *joined("ann")], c.TimeOutParticipant(SPACE, HOST), "presence", claims=["system"]
    )
    assert not left.mass_time_out
    state = state_of(*live(), *joined("ann"), left)
    assert (state.unattended_since, state.unattended_on_evidence) == (NOW, True)


def test_a_co_host_present_keeps_the_space_attended():
    state = state_of(*live(), *co_hosts("cat"), ev.ParticipantLeft(space_id=SPACE, user_id=HOST))
    assert state.unattended_since is None
    back = state_of(*live(), ev.ParticipantLeft(space_id=SPACE, user_id=HOST), *joined(HOST))
    assert back.unattended_since is None


# Membership


def test_a_joiner_is_a_listener_and_joining_twice_changes_nothing():
    (event,) = when(live(), c.JoinSpace(SPACE), "ann")
    assert event.role == types.ROLE_LISTENER and event.source == ev.JOIN_SOURCE_DIRECT
    assert when([*live(), *joined("ann")], c.JoinSpace(SPACE), "ann") == []


def test_the_host_rejoins_as_host():
    gone = [*live(), ev.ParticipantLeft(space_id=SPACE, user_id=HOST)]
    (event,) = when(gone, c.JoinSpace(SPACE))
    assert event.role == types.ROLE_HOST


def test_no_joins_before_the_start_or_after_the_end():
    with rejected(FailedPrecondition, "SPACE_NOT_LIVE"):
        when([created()], c.JoinSpace(SPACE), "ann")
    with rejected(FailedPrecondition, "SPACE_ENDED"):
        when([*live(), ev.SpaceEnded(space_id=SPACE)], c.JoinSpace(SPACE), "ann")
    with rejected(FailedPrecondition, "SPACE_ENDED"):
        when([created(), ev.SpaceCancelled(space_id=SPACE)], c.JoinSpace(SPACE), "ann")


def test_invited_only_admits_invitees_and_valid_links():
    space = live(types.JOIN_POLICY_INVITED_ONLY)
    with rejected(PermissionDenied, "NOT_INVITED"):
        when(space, c.JoinSpace(SPACE), "ann")
    invited = [*space, ev.UsersInvited(space_id=SPACE, user_ids=["ann"])]
    assert when(invited, c.JoinSpace(SPACE), "ann")[0].source == ev.JOIN_SOURCE_INVITED
    link = ev.InviteLinkCreated(space_id=SPACE, link_id="L1")
    link.expires_at.FromDatetime(at(60))
    with_link = [*space, link]
    (event,) = when(with_link, c.JoinSpace(SPACE, "L1"), "ben", now=at(30))
    assert event.source == ev.JOIN_SOURCE_INVITE_LINK and event.invite_link_id == "L1"
    with rejected(PermissionDenied, "INVITE_EXPIRED"):
        when(with_link, c.JoinSpace(SPACE, "L1"), "ben", now=at(61))
    with rejected(PermissionDenied, "INVITE_OTHER_SPACE"):
        when(with_link, c.JoinSpace(SPACE, "L2"), "ben", now=at(30))


def test_leaving_drops_roles_and_requests():
    state = [*live(), *speakers("ann"), *joined("ben"), ev.SpeakRequested(space_id=SPACE, user_id="ben")]
    (left,) = when(state, c.LeaveSpace(SPACE), "ann")
    assert left.previous_role == types.ROLE_SPEAKER and left.reason == ev.LEAVE_REASON_LEFT
    (ben_left,) = when(state, c.LeaveSpace(SPACE), "ben")
    after = state_of(*state, left, ben_left)
    assert after.speakers == () and after.speak_requests == ()
    assert when(state, c.LeaveSpace(SPACE), "stranger") == []


def test_removed_participants_cannot_rejoin_and_the_host_cannot_be_removed():
    state = [*live(), *joined("troll")]
    (removed,) = when(state, c.RemoveParticipant(SPACE, "troll"))
    assert removed.reason == ev.LEAVE_REASON_REMOVED
    with rejected(PermissionDenied, "REMOVED_FROM_SPACE"):
        when([*state, removed], c.JoinSpace(SPACE), "troll")
    with rejected(PermissionDenied, "CANNOT_REMOVE_HOST"):
        when([*state, *co_hosts("cat")], c.RemoveParticipant(SPACE, HOST), "cat")
    with rejected(PermissionDenied):
        when(state, c.RemoveParticipant(SPACE, "troll"), "ann")


def test_time_out_is_a_system_command():
    (event,) = when(
        [*live(), *joined("ann")], c.TimeOutParticipant(SPACE, "ann"), "presence", claims=["system"]
    )
    assert event.reason == ev.LEAVE_REASON_TIMED_OUT
    with rejected(PermissionDenied):
        when([*live(), *joined("ann")], c.TimeOutParticipant(SPACE, "ann"), "ann")


def test_turning_invite_only_leaves_out_only_listeners_without_an_invitation_or_a_link():
    link = invite_link("L1", at(3600))
    state = [
        *live(),
        *co_hosts("cat"),
        *speakers("sam"),
        ev.UsersInvited(space_id=SPACE, user_ids=["ivy"]),
        link,
        *joined("ivy", "walk", "drop"),
    ]
    guest = when(state, c.JoinSpace(SPACE, "L1"), "gus")
    closed = ev.SpaceUpdated(
        space_id=SPACE, join_policy=types.JOIN_POLICY_INVITED_ONLY, changed_fields=["join_policy"]
    )
    space = state_of(*state, *guest, closed)
    # The host, the co-host, the speaker, the invitee and the link guest all still qualify.
    assert sorted(space.listeners_outside_policy()) == ["drop", "walk"]
    assert state_of(*state, *guest).listeners_outside_policy() == []  # an open Space evicts nobody
    both = when(
        [*state, *guest, closed],
        c.EvictListeners(SPACE, ("walk", "gus", "drop", "walk")),
        "room",
        claims=["system"],
    )
    assert [(e.user_id, e.reason) for e in both] == [
        ("walk", ev.LEAVE_REASON_POLICY),
        ("drop", ev.LEAVE_REASON_POLICY),
    ]
    (out,) = when([*state, *guest, closed], c.EvictListeners(SPACE, ("walk",)), "room", claims=["system"])
    assert (out.reason, out.previous_role) == (ev.LEAVE_REASON_POLICY, types.ROLE_LISTENER)
    after = state_of(*state, *guest, closed, out)
    assert after.listeners_outside_policy() == ["drop"]
    assert not after.is_removed("walk")  # evicted, not barred: invited, they may come back
    back = [*state, *guest, closed, out, ev.UsersInvited(space_id=SPACE, user_ids=["walk"])]
    assert when(back, c.JoinSpace(SPACE), "walk")[0].source == ev.JOIN_SOURCE_INVITED
    # Decided again when it runs: already out, invited meanwhile, or opened again, it is a no-op.
    for history in (
        [*state, *guest, closed, out],
        [*state, *guest, closed, ev.UsersInvited(space_id=SPACE, user_ids=["walk"])],
        [
            *state,
            *guest,
            closed,
            ev.SpaceUpdated(
                space_id=SPACE, join_policy=types.JOIN_POLICY_ANYONE, changed_fields=["join_policy"]
            ),
        ],
    ):
        assert when(history, c.EvictListeners(SPACE, ("walk",)), "room", claims=["system"]) == []
    assert when([*state, *guest, closed], c.EvictListeners(SPACE, ("gus",)), "room", claims=["system"]) == []
    assert when([*state, *guest, closed], c.EvictListeners(SPACE, ("sam",)), "room", claims=["system"]) == []
    with rejected(PermissionDenied, "SYSTEM_ONLY"):
        when([*state, *guest, closed], c.EvictListeners(SPACE, ("walk",)), HOST)


def test_listener_shards_only_grow_and_a_repeat_changes_nothing():
    assert state_of(*live()).listener_shards == 1
    (grown,) = when(live(), c.GrowListenerShards(SPACE, 4), "room", claims=["system"])
    assert (grown.space_id, grown.shards) == (SPACE, 4)
    assert state_of(*live(), grown).listener_shards == 4
    for fewer_or_same in (1, 2, 4):  # two replicas that saw the same rush grow it once
        assert (
            when([*live(), grown], c.GrowListenerShards(SPACE, fewer_or_same), "room", claims=["system"])
            == []
        )
    (again,) = when([*live(), grown], c.GrowListenerShards(SPACE, 8), "room", claims=["system"])
    assert state_of(*live(), grown, again).listener_shards == 8


def test_a_spaces_writer_lanes_are_set_at_its_first_growth_and_kept():
    (grown,) = when(live(), c.GrowListenerShards(SPACE, 2, lanes=4), "room", claims=["system"])
    assert (grown.shards, grown.lanes) == (2, 4)
    assert state_of(*live(), grown).listener_lanes == 4
    # A replica configured otherwise grows it later: the lanes stay, so every replica still finds
    # a listener's stream where it was written.
    (again,) = when([*live(), grown], c.GrowListenerShards(SPACE, 4, lanes=1), "room", claims=["system"])
    assert again.lanes == 4 and state_of(*live(), grown, again).listener_lanes == 4
    # Written before lanes existed: one lane.
    old = ev.ListenerShardsGrown(space_id=SPACE, shards=2)
    assert state_of(*live(), old).listener_lanes == 1


def test_a_link_guest_who_left_no_longer_counts_as_one():
    state = [*live(), invite_link("L1", at(3600))]
    guest = when(state, c.JoinSpace(SPACE, "L1"), "gus")
    assert "gus" in state_of(*state, *guest).link_guests
    assert "gus" not in state_of(*state, *guest, left("gus")).link_guests
    assert len(state_of(*state, *guest, ev.SpaceEnded(space_id=SPACE)).link_guests) == 0


# Invites


def test_invite_users_emits_only_new_invitees():
    (event,) = when(live(), c.InviteUsers(SPACE, ("ann", "ben", "ann")))
    assert list(event.user_ids) == ["ann", "ben"]
    assert when([*live(), event], c.InviteUsers(SPACE, ("ann",))) == []
    with rejected(InvalidArgument):
        when(live(), c.InviteUsers(SPACE, ()))
    with rejected(InvalidArgument):
        when(live(), c.InviteUsers(SPACE, tuple(f"u{i}" for i in range(101))))
    with rejected(PermissionDenied):
        when([*live(), *joined("ann")], c.InviteUsers(SPACE, ("ben",)), "ann")


def test_invite_links_expire_within_the_limit():
    (event,) = when(live(), c.CreateInviteLink(SPACE, "L1", at(3600)))
    assert event.link_id == "L1"
    with rejected(InvalidArgument):
        when(live(), c.CreateInviteLink(SPACE, "L2", at(8 * 86400)))
    with rejected(InvalidArgument):
        when(live(), c.CreateInviteLink(SPACE, "L2", at(-1)))
    with rejected(PermissionDenied):
        when([*live(), *joined("ann")], c.CreateInviteLink(SPACE, "L3", at(60)), "ann")


# Roles


def test_co_hosts_are_added_by_the_host_up_to_the_limit():
    state = [*live(), *joined("a", "b", "d")]
    (event,) = when(state, c.AddCoHost(SPACE, "a"))
    assert event == ev.CoHostAdded(space_id=SPACE, user_id="a")
    full = [*live(), *co_hosts("a", "b"), *joined("d")]
    with rejected(ResourceExhausted, "CO_HOST_LIMIT_REACHED"):
        when(full, c.AddCoHost(SPACE, "d"))
    with rejected(PermissionDenied, "NOT_HOST"):
        when(full, c.AddCoHost(SPACE, "d"), "a")
    with rejected(FailedPrecondition, "NOT_A_PARTICIPANT"):
        when(state, c.AddCoHost(SPACE, "nobody"))
    assert when(full, c.AddCoHost(SPACE, "a")) == []


def test_a_speaker_promoted_to_co_host_frees_a_speaker_seat():
    state = state_of(*live(), *speakers("s"), ev.CoHostAdded(space_id=SPACE, user_id="s"))
    assert state.speakers == () and state.co_hosts == ("s",)
    assert state.participants["s"].role == types.ROLE_CO_HOST


def test_remove_co_host_makes_them_a_listener():
    state = [*live(), *co_hosts("a")]
    (event,) = when(state, c.RemoveCoHost(SPACE, "a"))
    assert state_of(*state, event).participants["a"].role == types.ROLE_LISTENER
    with rejected(FailedPrecondition, "NOT_A_CO_HOST"):
        when(state, c.RemoveCoHost(SPACE, "b"))


def test_invite_to_speak_respects_the_speaker_limit():
    limits = RoomLimits(max_speakers=2)
    state = [*live(), *speakers("s1", "s2"), *joined("l")]
    with rejected(ResourceExhausted, "SPEAKER_LIMIT_REACHED"):
        when(state, c.InviteToSpeak(SPACE, "l"), limits=limits)
    (event,) = when(state, c.InviteToSpeak(SPACE, "l"))
    assert event.source == ev.SPEAKER_SOURCE_INVITED
    assert when(state, c.InviteToSpeak(SPACE, "s1")) == []
    with rejected(PermissionDenied):
        when(state, c.InviteToSpeak(SPACE, "l"), "s1")


def test_thirteen_voices_and_no_fourteenth():
    ten = [f"s{i}" for i in range(10)]
    state = [*live(), *co_hosts("c1", "c2"), *speakers(*ten), *joined("x")]
    voices = state_of(*state)
    assert 1 + len(voices.co_hosts) + len(voices.speakers) == 13
    with rejected(ResourceExhausted):
        when(state, c.InviteToSpeak(SPACE, "x"))


def test_revoke_and_step_down():
    state = [*live(), *speakers("s"), *co_hosts("c")]
    (revoked,) = when(state, c.RevokeSpeaker(SPACE, "s"), "c")
    assert revoked.reason == ev.SPEAKER_REMOVAL_REASON_REVOKED
    (stepped,) = when(state, c.StepDown(SPACE), "s")
    assert stepped.reason == ev.SPEAKER_REMOVAL_REASON_STEPPED_DOWN
    assert names(when(state, c.StepDown(SPACE), "c")) == ["CoHostRemoved"]
    with rejected(FailedPrecondition, "IS_HOST"):
        when(state, c.StepDown(SPACE))
    with rejected(FailedPrecondition, "NOT_A_SPEAKER"):
        when(state, c.RevokeSpeaker(SPACE, "c"))


# Requests to speak


def test_requests_queue_in_order_and_repeat_requests_change_nothing():
    state = [*live(), *joined("a", "b")]
    (first,) = when(state, c.RequestToSpeak(SPACE), "a")
    queued = state_of(*state, first, ev.SpeakRequested(space_id=SPACE, user_id="b"))
    assert [u for u, _ in queued.speak_requests] == ["a", "b"]
    assert when([*state, first], c.RequestToSpeak(SPACE), "a") == []
    with rejected(FailedPrecondition, "ALREADY_A_VOICE"):
        when(state, c.RequestToSpeak(SPACE))
    with rejected(FailedPrecondition, "NOT_A_PARTICIPANT"):
        when(state, c.RequestToSpeak(SPACE), "stranger")


def test_approve_emits_approved_then_speaker_added():
    state = [*live(), *joined("a"), ev.SpeakRequested(space_id=SPACE, user_id="a")]
    events = when(state, c.ApproveSpeakRequest(SPACE, "a"))
    assert names(events) == ["SpeakRequestApproved", "SpeakerAdded"]
    assert events[0].requested_at.ToDatetime().year == NOW.year
    after = state_of(*state, *events)
    assert after.speakers == ("a",) and after.speak_requests == ()
    with rejected(FailedPrecondition, "NO_SPEAK_REQUEST"):
        when(state, c.ApproveSpeakRequest(SPACE, "b"))
    with rejected(PermissionDenied):
        when([*state, *joined("z")], c.ApproveSpeakRequest(SPACE, "a"), "z")
    with rejected(ResourceExhausted):
        when(state, c.ApproveSpeakRequest(SPACE, "a"), limits=RoomLimits(max_speakers=0))


def test_deny_and_withdraw_close_the_request():
    state = [*live(), *joined("a"), ev.SpeakRequested(space_id=SPACE, user_id="a")]
    assert names(when(state, c.DenySpeakRequest(SPACE, "a"))) == ["SpeakRequestDenied"]
    (withdrawn,) = when(state, c.WithdrawSpeakRequest(SPACE), "a")
    assert state_of(*state, withdrawn).speak_requests == ()
    assert when([*state, withdrawn], c.WithdrawSpeakRequest(SPACE), "a") == []


# More outcomes, one per rule: given events, when a command, then exactly these events


def test_update_each_setting_and_reschedule_before_the_start():
    (event,) = when(
        [created()],
        c.UpdateSpace(
            SPACE,
            title=" New ",
            join_policy=types.JOIN_POLICY_INVITED_ONLY,
            scheduled_start=at(600),
            recording_enabled=True,
        ),
    )
    assert list(event.changed_fields) == ["title", "join_policy", "scheduled_start", "recording_enabled"]
    after = state_of(created(), event)
    assert after.title == "New" and after.join_policy == types.JOIN_POLICY_INVITED_ONLY
    assert after.recording_enabled and after.scheduled_start == at(600)
    assert after.state == types.SPACE_STATE_SCHEDULED
    (cleared,) = when([created(), event], c.UpdateSpace(SPACE, description="", recording_enabled=False))
    assert list(cleared.changed_fields) == ["recording_enabled"]


def test_update_a_live_space_keeps_it_live():
    (event,) = when(live(), c.UpdateSpace(SPACE, title="Later"))
    assert state_of(*live(), event).state == types.SPACE_STATE_LIVE


def test_a_scheduled_space_starts_early_and_cancels():
    scheduled = [created(scheduled_start=at(3600))]
    assert names(when(scheduled, c.StartSpace(SPACE))) == ["SpaceStarted", "ParticipantJoined"]
    (cancel,) = when(scheduled, c.CancelSpace(SPACE))
    assert state_of(*scheduled, cancel).state == types.SPACE_STATE_CANCELLED
    assert when([*scheduled, cancel], c.CancelSpace(SPACE)) == []


def test_a_started_space_is_live_with_the_host_in_it_and_attended():
    state = state_of(created(), *when([created()], c.StartSpace(SPACE)))
    assert state.state == types.SPACE_STATE_LIVE and state.started_at == NOW
    assert state.participants[HOST].role == types.ROLE_HOST
    assert state.unattended_since is None


def test_ending_empties_roles_requests_and_attendance():
    busy = [*live(), *co_hosts("co"), *speakers("spk"), *requested("asker")]
    after = state_of(*busy, *when(busy, c.EndSpace(SPACE)))
    assert after.participants == {} and after.co_hosts == () and after.speakers == ()
    assert after.speak_requests == () and after.unattended_since is None and after.ended_at == NOW


def test_an_abandoned_space_ends_after_the_last_co_host_steps_down():
    steps = [*live(), *co_hosts("co"), left(HOST), ev.CoHostRemoved(space_id=SPACE, user_id="co")]
    state = fold(evolve, INITIAL, [(e, NOW) for e in steps[:-1]] + [(steps[-1], at(10))])
    assert state.unattended_since == at(10)
    (event,) = when(steps, c.EndAbandonedSpace(SPACE), "sys", now=at(310), claims=["system"])
    assert event.reason == ev.END_REASON_ABANDONED


def test_the_last_manager_leaving_starts_the_grace_clock_at_that_moment():
    timed = [(e, NOW) for e in [*live(), *co_hosts("co")]] + [(left(HOST), at(5)), (left("co"), at(9))]
    assert fold(evolve, INITIAL, timed).unattended_since == at(9)
    back = fold(evolve, INITIAL, [*timed, (joined("co")[0], at(20))])
    assert back.unattended_since == at(9), "a former co-host comes back as a listener"
    promoted = fold(evolve, INITIAL, [*timed, (joined("co")[0], at(20)), (co_host("co"), at(21))])
    assert promoted.unattended_since is None


def test_invited_only_still_admits_the_host_and_an_invitee_in_an_open_space_is_marked_invited():
    gone = [*live(types.JOIN_POLICY_INVITED_ONLY), left(HOST)]
    (event,) = when(gone, c.JoinSpace(SPACE))
    assert (event.role, event.source) == (types.ROLE_HOST, ev.JOIN_SOURCE_HOST)
    invited = [*live(), ev.UsersInvited(space_id=SPACE, user_ids=["ann"])]
    (event,) = when(invited, c.JoinSpace(SPACE), "ann")
    assert (event.role, event.source) == (types.ROLE_LISTENER, ev.JOIN_SOURCE_INVITED)


def test_a_link_admits_until_the_instant_it_expires():
    space = [*live(types.JOIN_POLICY_INVITED_ONLY), invite_link("L1", at(60))]
    (event,) = when(space, c.JoinSpace(SPACE, "L1"), "ann", now=at(59))
    assert event.invite_link_id == "L1"


def test_joining_again_after_leaving_is_a_fresh_listener():
    state = [*live(), *speakers("ann"), left("ann")]
    (event,) = when(state, c.JoinSpace(SPACE), "ann", now=at(30))
    after = fold(evolve, state_of(*state), [(event, at(30))])
    assert after.participants["ann"] == Participant("ann", types.ROLE_LISTENER, at(30))
    assert after.speakers == ()


def test_leaving_as_co_host_reports_the_role_and_drops_it():
    state = [*live(), *co_hosts("co")]
    (event,) = when(state, c.LeaveSpace(SPACE), "co")
    assert event.previous_role == types.ROLE_CO_HOST
    assert state_of(*state, event).co_hosts == ()


def test_time_out_of_someone_absent_changes_nothing():
    assert when(live(), c.TimeOutParticipant(SPACE, "ghost"), "presence", claims=["system"]) == []


def test_removal_by_a_co_host_bars_a_speaker_and_drops_their_seat():
    state = [*live(), *co_hosts("co"), *speakers("spk")]
    (event,) = when(state, c.RemoveParticipant(SPACE, "spk"), "co")
    assert (event.reason, event.previous_role) == (ev.LEAVE_REASON_REMOVED, types.ROLE_SPEAKER)
    after = state_of(*state, event)
    assert "spk" in after.removed and after.speakers == ()
    assert when([*state, event], c.RemoveParticipant(SPACE, "spk"), "co") == []


def test_moderation_removing_someone_absent_bars_them_on_the_space_once():
    """The bar is recorded where joins are decided (ADR 0014): a join after it is refused, and a
    second removal of the same absent user adds nothing."""
    (barred,) = when(live(), c.RemoveParticipant(SPACE, "ghost"), "moderation", claims=["system"])
    assert (type(barred), barred.user_id) == (ev.ParticipantBarred, "ghost")
    assert when([*live(), barred], c.RemoveParticipant(SPACE, "ghost"), "moderation", claims=["system"]) == []
    with pytest.raises(PermissionDenied) as refused:
        when([*live(), barred], c.JoinSpace(SPACE), "ghost")
    assert refused.value.reason == "REMOVED_FROM_SPACE"
    assert not state_of(*live(), barred).is_in("ghost")


def test_co_hosts_invite_before_the_start_and_links_last_up_to_seven_days():
    state = [created(), *co_hosts("co")]
    (invited,) = when(state, c.InviteUsers(SPACE, ("x", "y")), "co")
    assert state_of(*state, invited).invited == {"x", "y"}
    (link,) = when(state, c.CreateInviteLink(SPACE, "L", NOW + timedelta(days=7)), "co")
    assert state_of(*state, link).invite_links == {"L": NOW + timedelta(days=7)}
    assert when([*state, link], c.CreateInviteLink(SPACE, "L", at(60))) == []


def test_inviting_a_listener_who_asked_consumes_the_request():
    state = [*live(), *co_hosts("co"), *requested("a")]
    (event,) = when(state, c.InviteToSpeak(SPACE, "a"), "co")
    after = state_of(*state, event)
    assert after.speakers == ("a",) and after.speak_requests == ()


def test_a_co_host_steps_down_to_listener_and_a_listener_stepping_down_changes_nothing():
    state = [*live(), *co_hosts("co"), *joined("lis")]
    (event,) = when(state, c.StepDown(SPACE), "co")
    assert state_of(*state, event).participants["co"].role == types.ROLE_LISTENER
    assert when(state, c.StepDown(SPACE), "lis") == []


def test_co_hosts_approve_and_deny():
    state = [*live(), *co_hosts("co"), *requested("a", "b")]
    approved = when(state, c.ApproveSpeakRequest(SPACE, "a"), "co")
    assert [e.source for e in approved[1:]] == [ev.SPEAKER_SOURCE_REQUEST_APPROVED]
    (denied,) = when(state, c.DenySpeakRequest(SPACE, "b"), "co")
    assert denied.requested_at.ToDatetime(tzinfo=NOW.tzinfo) == NOW
    after = state_of(*state, *approved, denied)
    assert after.speak_requests == () and after.participants["b"].role == types.ROLE_LISTENER


def test_withdrawing_without_a_request_changes_nothing():
    assert when([*live(), *joined("a")], c.WithdrawSpeakRequest(SPACE), "a") == []
