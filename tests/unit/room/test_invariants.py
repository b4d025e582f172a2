"""Property tests: random command sequences from random users never break the room's invariants.

Each run creates a Space, then decides and applies random commands from a
handful of users (the host most often, so roles change a lot), presence and
moderation (system callers), with the clock moving on between commands.
Rejected commands change nothing. Small limits make the limits bite often.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from libs.domain.decider import Context, fold
from libs.domain.errors import DomainError
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.decide import decide
from services.room.domain.evolve import evolve
from services.room.domain.limits import RoomLimits
from services.room.domain.state import INITIAL, Space
from services.room.domain.view import space_view
from tests.unit.room.given import HOST, NOW, SPACE

USERS = [HOST, "a", "b", "c", "d"]
SYSTEM = "sys"
SMALL = RoomLimits(
    max_co_hosts=1,
    max_speakers=2,
    max_speak_requests=2,
    abandoned_grace=timedelta(seconds=60),
    abandoned_grace_without_evidence=timedelta(seconds=150),
)
TINY = RoomLimits(max_co_hosts=0, max_speakers=1, max_speak_requests=1, abandoned_grace=timedelta(0))

users = st.sampled_from(USERS)
guests = st.sampled_from(USERS[1:])
links = st.sampled_from(["L1", "L2"])
pauses = st.sampled_from([0, 1, 1, 1, 20, 20, 90])


def step(actor: st.SearchStrategy, command: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(actor, command, pauses)


def on(kinds: list[type], targets: st.SearchStrategy = users) -> st.SearchStrategy:
    """One of `kinds`, aimed at a random user."""
    return st.builds(lambda kind, target: kind(SPACE, target), st.sampled_from(kinds), targets)


# Who sends a command is drawn to fit the command (managers mostly manage, anyone may try),
# so that enough commands are accepted for rooms to fill and limits to bite.
managers = st.sampled_from([HOST, HOST, HOST, "a", "b", "c"])
self_service = step(
    st.sampled_from([HOST, *USERS[1:] * 3]),
    st.one_of(
        st.just(c.JoinSpace(SPACE)),
        st.just(c.JoinSpace(SPACE)),
        st.builds(lambda link: c.JoinSpace(SPACE, link), links),
        st.sampled_from(
            [c.LeaveSpace(SPACE), c.StepDown(SPACE), c.RequestToSpeak(SPACE), c.WithdrawSpeakRequest(SPACE)]
        ),
        st.just(c.RequestToSpeak(SPACE)),
    ),
)
management = step(
    managers,
    st.one_of(
        on([c.AddCoHost], guests),
        on([c.InviteToSpeak], guests),
        on([c.ApproveSpeakRequest], guests),
        on([c.RemoveCoHost, c.RevokeSpeaker, c.DenySpeakRequest, c.RemoveParticipant]),
        st.one_of(
            st.builds(lambda who: c.InviteUsers(SPACE, tuple(who)), st.lists(users, max_size=3)),
            # expires_at is an offset from the moment of the call; `run` makes it absolute
            st.builds(
                lambda link, secs: c.CreateInviteLink(SPACE, link, NOW + timedelta(seconds=secs)),
                links,
                st.sampled_from([0, 30, 3600, 8 * 86400]),
            ),
        ),
    ),
)
system = step(
    st.sampled_from([SYSTEM, SYSTEM, HOST]),
    st.one_of(
        on([c.TimeOutParticipant, c.RemoveParticipant]),
        on([c.TimeOutParticipant, c.RemoveParticipant]),
        st.builds(lambda target: c.TimeOutParticipant(SPACE, target, mass_time_out=True), users),
        st.just(c.EndAbandonedSpace(SPACE)),
    ),
)
lifecycle = step(
    managers,
    st.one_of(
        st.sampled_from([c.StartSpace(SPACE), c.StartSpace(SPACE), c.EndSpace(SPACE), c.CancelSpace(SPACE)]),
        st.builds(
            lambda policy, title: c.UpdateSpace(SPACE, title=title, join_policy=policy),
            st.sampled_from([None, None, types.JOIN_POLICY_ANYONE, types.JOIN_POLICY_INVITED_ONLY]),
            st.sampled_from([None, "t", "other"]),
        ),
    ),
)
steps = st.lists(
    st.one_of(
        self_service, self_service, self_service, management, management, management, system, lifecycle
    ),
    min_size=30,
    max_size=100,
)
limits = st.sampled_from([SMALL, TINY, RoomLimits()])
# How each run begins: only created, live with the host alone, or a full room whose seats are taken
# as far as the limits allow (the random steps then act at the limits).
CREATED, LIVE, FULL = "created", "live", "full"
PREFIXES = {
    CREATED: [],
    LIVE: [(HOST, c.StartSpace(SPACE), 0)],
    FULL: [
        (HOST, c.StartSpace(SPACE), 0),
        *((user, c.JoinSpace(SPACE), 0) for user in USERS[1:]),
        (HOST, c.AddCoHost(SPACE, "a"), 0),
        (HOST, c.AddCoHost(SPACE, "b"), 0),
        *((HOST, c.InviteToSpeak(SPACE, user), 0) for user in USERS[1:]),
        *((user, c.RequestToSpeak(SPACE), 0) for user in USERS[1:]),
    ],
}
started = st.sampled_from([LIVE, FULL, FULL, CREATED])
ROLE_CHANGES_AFTER_THE_END = (ev.ParticipantJoined, ev.CoHostAdded, ev.SpeakerAdded, ev.SpeakRequested)


def context(actor: str, now: datetime) -> Context:
    return Context(actor, now, frozenset({"system"}) if actor == SYSTEM else frozenset())


@dataclass
class Decision:
    before: Space
    after: Space
    command: object
    ctx: Context
    events: list


@dataclass
class Run:
    log: list  # (event, occurred_at)
    states: list[Space]  # after each event
    decisions: list[Decision]  # accepted commands only


def run(sequence, limits: RoomLimits, started: str) -> Run:
    """Decides and applies each command; rejected ones change nothing."""
    created = ev.SpaceCreated(space_id=SPACE, host_user_id=HOST, title="t")
    log, now = [(created, NOW)], NOW
    state = evolve(INITIAL, created, NOW)
    states, decisions = [state], []
    for actor, command, pause in [*PREFIXES[started], *sequence]:
        now += timedelta(seconds=pause)
        if isinstance(command, c.CreateInviteLink):
            command = replace(command, expires_at=command.expires_at - NOW + now)
        ctx = context(actor, now)
        try:
            events = decide(command, state, ctx, limits)
        except DomainError:
            continue
        before = state
        for event in events:
            state = evolve(state, event, now)
            log.append((event, now))
            states.append(state)
        decisions.append(Decision(before, state, command, ctx, events))
    return Run(log, states, decisions)


def check_invariants(state: Space, limits: RoomLimits) -> None:
    people = state.participants
    roles = {u: p.role for u, p in people.items()}
    assert all(p.user_id == u for u, p in people.items())
    assert [u for u, r in roles.items() if r == types.ROLE_HOST] in ([], [HOST])
    assert state.host_user_id not in (*state.co_hosts, *state.speakers)
    assert len(state.co_hosts) <= limits.max_co_hosts and len(set(state.co_hosts)) == len(state.co_hosts)
    assert len(state.speakers) <= limits.max_speakers and len(set(state.speakers)) == len(state.speakers)
    assert set(state.co_hosts) <= set(people) and set(state.speakers) <= set(people)
    assert {u for u, r in roles.items() if r == types.ROLE_CO_HOST} == set(state.co_hosts)
    assert {u for u, r in roles.items() if r == types.ROLE_SPEAKER} == set(state.speakers)
    requesters = [u for u, _ in state.speak_requests]
    assert len(requesters) == len(set(requesters)) <= limits.max_speak_requests
    assert all(roles.get(u) == types.ROLE_LISTENER for u in requesters)
    assert not state.removed & set(people), "removed users stay out"
    if state.is_over:
        assert not people and not state.co_hosts and not state.speakers and not state.speak_requests
    if state.is_live:
        assert (state.unattended_since is None) == state.managers_present()
    if state.unattended_since is None:
        assert state.unattended_on_evidence
    n = state.listener_shards
    assert 1 <= n <= limits.max_listener_shards and n & (n - 1) == 0
    view = space_view(state)
    assert view.listener_count == sum(r == types.ROLE_LISTENER for r in roles.values())


@settings(max_examples=200, deadline=None)
@given(steps, limits, started)
def test_role_limits_and_membership_always_hold(sequence, limits, started):
    result = run(sequence, limits, started)
    for version, state in enumerate(result.states, start=1):
        check_invariants(state, limits)
        assert state.version == version
    for decision in result.decisions:
        if any(isinstance(e, ev.SpaceEnded) and e.reason == ev.END_REASON_ABANDONED for e in decision.events):
            before, now = decision.before, decision.ctx.now
            assert now - before.unattended_since >= limits.abandoned_grace
            assert before.unattended_on_evidence or (
                now - before.unattended_since >= limits.abandoned_grace_without_evidence
            ), "hosts gone in a mass time-out wait for the longer grace"
    log = [event for event, _ in result.log]
    over = [i for i, e in enumerate(log) if isinstance(e, ev.SpaceEnded | ev.SpaceCancelled)]
    if over:
        assert len(over) == 1, "a Space ends once"
        assert not any(isinstance(e, ROLE_CHANGES_AFTER_THE_END) for e in log[over[0] :]), (
            "nobody joins, gains a role or asks to speak after the end"
        )


@settings(max_examples=100, deadline=None)
@given(steps, limits, started, st.data())
def test_folding_from_a_snapshot_equals_folding_the_whole_log(sequence, limits, started, data):
    log = run(sequence, limits, started).log
    split = data.draw(st.integers(0, len(log)))
    snapshot = fold(evolve, INITIAL, log[:split])
    assert fold(evolve, snapshot, log[split:]) == fold(evolve, INITIAL, log)


@settings(max_examples=100, deadline=None)
@given(steps, limits, started)
def test_a_repeated_command_never_takes_effect_twice(sequence, limits, started):
    """Repeating any accepted command at once emits nothing, or is refused; a no-op stays a no-op."""
    for decision in run(sequence, limits, started).decisions:
        if not decision.events:
            assert decision.after == decision.before
        try:
            again = decide(decision.command, decision.after, decision.ctx, limits)
        except DomainError:
            assert decision.events, "a command that did nothing is not refused when repeated"
            continue
        assert again == []


IDEMPOTENT = (
    c.StartSpace,
    c.EndSpace,
    c.CancelSpace,
    c.JoinSpace,
    c.LeaveSpace,
    c.TimeOutParticipant,
    c.RemoveParticipant,
    c.InviteUsers,
    c.CreateInviteLink,
    c.UpdateSpace,
    c.AddCoHost,
    c.InviteToSpeak,
    c.StepDown,
    c.RequestToSpeak,
    c.WithdrawSpeakRequest,
)


@settings(max_examples=100, deadline=None)
@given(steps, limits, started)
def test_idempotent_commands_repeat_as_no_ops_rather_than_errors(sequence, limits, started):
    for decision in run(sequence, limits, started).decisions:
        if isinstance(decision.command, IDEMPOTENT):
            assert decide(decision.command, decision.after, decision.ctx, limits) == []


def test_the_generator_reaches_full_rooms_and_abandoned_ends():
    """Not an invariant: proof that the random runs above do reach the states where rules bite."""

    def full_then_abandoned(case) -> bool:
        sequence, started = case
        result = run(sequence, SMALL, started)
        full = any(len(s.co_hosts) == 1 and len(s.speakers) == 2 for s in result.states)
        abandoned = any(getattr(e, "reason", 0) == ev.END_REASON_ABANDONED for e, _ in result.log)
        return full and abandoned

    # Generation only: finding one such run is the point; shrinking it cost minutes in CI.
    find(
        st.tuples(steps, started),
        full_then_abandoned,
        settings=settings(max_examples=5000, phases=[Phase.generate], database=None),
    )


def test_a_long_busy_run_reaches_every_event_type():
    """A fixed, hand-picked sequence shows the generator's vocabulary reaches every event."""
    script = [
        (HOST, c.UpdateSpace(SPACE, title="new"), 0),
        (HOST, c.InviteUsers(SPACE, ("a",)), 0),
        (HOST, c.CreateInviteLink(SPACE, "L1", NOW + timedelta(hours=1)), 0),
        ("a", c.JoinSpace(SPACE), 1),
        ("b", c.JoinSpace(SPACE, "L1"), 1),
        ("c", c.JoinSpace(SPACE), 1),
        ("d", c.JoinSpace(SPACE), 1),
        (HOST, c.AddCoHost(SPACE, "a"), 1),
        ("a", c.InviteToSpeak(SPACE, "b"), 1),
        ("b", c.StepDown(SPACE), 1),
        ("c", c.RequestToSpeak(SPACE), 1),
        ("d", c.RequestToSpeak(SPACE), 1),
        ("a", c.ApproveSpeakRequest(SPACE, "c"), 1),
        ("a", c.DenySpeakRequest(SPACE, "d"), 1),
        ("d", c.RequestToSpeak(SPACE), 1),
        ("d", c.WithdrawSpeakRequest(SPACE), 1),
        (HOST, c.RevokeSpeaker(SPACE, "c"), 1),
        (HOST, c.RemoveCoHost(SPACE, "a"), 1),
        (HOST, c.RemoveParticipant(SPACE, "d"), 1),
        (SYSTEM, c.RemoveParticipant(SPACE, "never-came"), 1),
        (SYSTEM, c.GrowListenerShards(SPACE, 4), 1),
        (SYSTEM, c.TimeOutParticipant(SPACE, "c"), 1),
        (HOST, c.LeaveSpace(SPACE), 1),
        (SYSTEM, c.EndAbandonedSpace(SPACE), 61),
    ]
    result = run(script, SMALL, started=LIVE)
    emitted = {type(e) for e, _ in result.log}
    # A scheduled Space's own events (tests/unit/room/test_scheduled_spaces.py tells the rules).
    start = NOW + timedelta(hours=1)
    scheduled = ev.SpaceCreated(space_id=SPACE, host_user_id=HOST, title="t")
    scheduled.scheduled_start.FromDatetime(start)
    state, later = fold(evolve, INITIAL, [(scheduled, NOW)]), start + timedelta(hours=3)
    for actor, command, now in [
        ("a", c.SubscribeToSpace(SPACE), NOW),
        ("b", c.SubscribeToSpace(SPACE), NOW),
        ("b", c.UnsubscribeFromSpace(SPACE), NOW),
        (SYSTEM, c.RemindSubscribers(SPACE, ev.REMINDER_KIND_STARTING_SOON, start), start),
        (SYSTEM, c.ExpireSpace(SPACE), later),
    ]:
        for event in decide(command, state, context(actor, now), SMALL):
            state = evolve(state, event, now)
            emitted.add(type(event))
        check_invariants(state, SMALL)
    every = {
        getattr(ev, name)
        for name, message in ev.DESCRIPTOR.message_types_by_name.items()
        if message.file is ev.DESCRIPTOR
    }
    assert emitted | {ev.SpaceCancelled} == every
    for state in result.states:
        check_invariants(state, SMALL)
