"""One fold per fact: every view of who is in a Space, and in which role, agrees with the room's own.

Histories are made by the services' own deciders, so they are valid: random room
commands (the room property tests' vocabulary: joins, leaves, role changes,
requests to speak, removals, the end) go through the room's `decide`, and random
mutes, unmutes and removals through moderation's, with the roles the room's
state gives at that moment. A moderation removal is followed by the room's own
reaction (its RemoveParticipant), and a barred user's later JoinSpace carries the
bar, as the room's reactions do.

The room's own state folds membership with `libs.domain.membership` too, so
agreeing with it alone would prove little. After every event the room's read
API (participants and their roles, co-hosts, speakers, the queue to speak,
removals, lifecycle, counts, ListParticipants' order) is first checked against
`Reference`: the room's membership rules written out plainly here, with plain
dicts and lists and no shared code. Then each consumer's view is checked
against the room's (the authority on membership and roles) and moderation's
`evolve_space` (on mutes and bars): moderation's room roles, the media relay's
admission, presence's board, replay's Space at time T and timeline, and
analytics' figures with the `podium report` built on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.analytics.space_figures import SETTLE_SECONDS, apply_room, empty, member_key
from libs.analytics.space_report import build
from libs.domain.decider import SYSTEM_CLAIM, Context
from libs.domain.errors import DomainError
from libs.domain.membership import SpaceMembers, subject
from libs.events.envelope import Causation, wrap
from libs.events.topics import MODERATION_EVENTS, ROOM_EVENTS
from libs.projection.runner import ConsumedEvent
from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.media_relay.domain.admission import Admission
from services.media_relay.projections.space_media import SpaceMediaView
from services.moderation.domain import commands as mc
from services.moderation.domain.decide import decide_space
from services.moderation.domain.evolve import evolve_space
from services.moderation.domain.state import SPACE_INITIAL, SpaceModeration
from services.moderation.projections.room_roles import RoomRoles, roles_in
from services.presence.projections.space_board import SpaceBoard
from services.replay.domain import timeline as tl
from services.replay.domain.space_at import SpaceAt, state_at
from services.room.domain import commands as c
from services.room.domain.decide import decide
from services.room.domain.evolve import evolve
from services.room.domain.limits import RoomLimits
from services.room.domain.state import INITIAL, Space
from services.room.domain.view import participants_view, space_view
from tests.unit.room.given import HOST, NOW, SPACE
from tests.unit.room.test_invariants import (
    PREFIXES,
    SYSTEM,
    USERS,
    context,
    guests,
    lifecycle,
    limits,
    management,
    managers,
    self_service,
    started,
    step,
    system,
    users,
)

VOICES = (types.ROLE_HOST, types.ROLE_CO_HOST, types.ROLE_SPEAKER)


@dataclass(frozen=True)
class Moderate:
    """A moderation command, given its roles when it is decided."""

    kind: type
    user_id: str

    def command(self, roles: mc.Roles):
        if self.kind is mc.RemoveParticipant:
            return mc.RemoveParticipant(SPACE, self.user_id, "", roles)
        return self.kind(SPACE, self.user_id, roles)


moderation = step(
    st.sampled_from([*USERS, HOST, HOST]),
    st.builds(
        Moderate, st.sampled_from([mc.MuteParticipant, mc.MuteParticipant, mc.UnmuteParticipant]), users
    ),
)
removal = step(managers, st.builds(Moderate, st.just(mc.RemoveParticipant), guests))
steps = st.lists(
    st.one_of(self_service, self_service, management, management, system, lifecycle, moderation, removal),
    min_size=30,
    max_size=100,
)


@dataclass
class Moment:
    event: object
    at: datetime
    topic: str
    room: Space  # the room's own state after the event
    moderation: SpaceModeration  # moderation's own state after it


def history(sequence, room_limits, start: str) -> list[Moment]:
    """The log the deciders write for `sequence`: each event with both services' states after it."""
    created = ev.SpaceCreated(space_id=SPACE, host_user_id=HOST, title="t")
    room, mod, now = evolve(INITIAL, created, NOW), SPACE_INITIAL, NOW
    log = [Moment(created, NOW, ROOM_EVENTS.name, room, mod)]

    def room_decides(command, ctx: Context) -> None:
        nonlocal room
        for event in decide(command, room, ctx, room_limits):
            room = evolve(room, event, now)
            log.append(Moment(event, now, ROOM_EVENTS.name, room, mod))

    for actor, command, pause in [*PREFIXES[start], *sequence]:
        now += timedelta(seconds=pause)
        try:
            if isinstance(command, Moderate):
                roles = mc.Roles(room.role_of(actor), room.role_of(command.user_id), room.host_user_id)
                for event in decide_space(command.command(roles), mod, Context(actor, now)):
                    mod = evolve_space(mod, event, now)
                    log.append(Moment(event, now, MODERATION_EVENTS.name, room, mod))
                    if isinstance(event, mev.ParticipantRemoved):  # the room's reaction
                        system_ctx = Context(SYSTEM, now, frozenset({SYSTEM_CLAIM}))
                        room_decides(c.RemoveParticipant(SPACE, event.user_id), system_ctx)
                continue
            if isinstance(command, c.CreateInviteLink):
                command = replace(command, expires_at=command.expires_at - NOW + now)
            if isinstance(command, c.JoinSpace):
                command = replace(command, barred=actor in mod.removed)
            room_decides(command, context(actor, now))
        except DomainError:
            continue
    return log


def consumed(moment: Moment, version: int) -> ConsumedEvent:
    envelope = wrap(
        moment.event,
        producer="test",
        stream_id=SPACE,
        version=version,
        space_id=SPACE,
        occurred_at=moment.at,
        causation=Causation("someone", "c", "c"),
    )
    return ConsumedEvent(envelope, moment.event, moment.topic, 0, version)


@dataclass
class Reference:
    """What room events mean for membership, written out plainly: the specification the room's
    state (and, through it, every consumer) is held to. Deliberately naive: O(members) per event."""

    state: int = types.SPACE_STATE_UNSPECIFIED
    host: str = ""
    participants: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # role, joined at
    co_hosts: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    requests: list[tuple[str, datetime]] = field(default_factory=list)  # oldest first
    removed: set[str] = field(default_factory=set)

    def apply(self, e, at: datetime) -> None:
        over = (types.SPACE_STATE_ENDED, types.SPACE_STATE_CANCELLED)
        if isinstance(e, ev.SpaceCreated):
            self.host = e.host_user_id
            self.state = (
                types.SPACE_STATE_SCHEDULED if e.HasField("scheduled_start") else types.SPACE_STATE_CREATED
            )
        elif isinstance(e, ev.SpaceStarted):
            self.state = types.SPACE_STATE_LIVE
        elif isinstance(e, ev.SpaceEnded | ev.SpaceCancelled):
            self.state = (
                types.SPACE_STATE_ENDED if isinstance(e, ev.SpaceEnded) else types.SPACE_STATE_CANCELLED
            )
            self.participants, self.co_hosts, self.speakers, self.requests = {}, [], [], []
        elif self.state in over:
            return
        elif isinstance(e, ev.ParticipantJoined):
            self.participants[e.user_id] = (e.role or types.ROLE_LISTENER, at)
        elif isinstance(e, ev.ParticipantLeft):
            self.participants.pop(e.user_id, None)
            self._drop(e.user_id, co_host=True, speaker=True, request=True)
            if e.reason == ev.LEAVE_REASON_REMOVED:
                self.removed.add(e.user_id)
        elif isinstance(e, ev.ParticipantBarred):
            self.removed.add(e.user_id)
        elif isinstance(e, ev.CoHostAdded):
            self._drop(e.user_id, speaker=True, request=True)
            self.co_hosts.append(e.user_id)
            self._set_role(e.user_id, types.ROLE_CO_HOST)
        elif isinstance(e, ev.CoHostRemoved):
            self._drop(e.user_id, co_host=True)
            self._set_role(e.user_id, types.ROLE_LISTENER)
        elif isinstance(e, ev.SpeakerAdded):
            self._drop(e.user_id, request=True)
            self.speakers.append(e.user_id)
            self._set_role(e.user_id, types.ROLE_SPEAKER)
        elif isinstance(e, ev.SpeakerRemoved):
            self._drop(e.user_id, speaker=True)
            self._set_role(e.user_id, types.ROLE_LISTENER)
        elif isinstance(e, ev.SpeakRequested):
            self.requests.append((e.user_id, at))
        elif isinstance(e, ev.SpeakRequestWithdrawn | ev.SpeakRequestApproved | ev.SpeakRequestDenied):
            self._drop(e.user_id, request=True)

    def _drop(self, user: str, co_host=False, speaker=False, request=False) -> None:
        if co_host:
            self.co_hosts = [u for u in self.co_hosts if u != user]
        if speaker:
            self.speakers = [u for u in self.speakers if u != user]
        if request:
            self.requests = [r for r in self.requests if r[0] != user]

    def _set_role(self, user: str, role: int) -> None:
        if user in self.participants:
            self.participants[user] = (role, self.participants[user][1])

    def ordered(self) -> list[str]:
        order = {types.ROLE_HOST: 0, types.ROLE_CO_HOST: 1, types.ROLE_SPEAKER: 2, types.ROLE_LISTENER: 3}
        return sorted(
            self.participants, key=lambda u: (order[self.participants[u][0]], self.participants[u][1], u)
        )


def check_room(room: Space, ref: Reference) -> None:
    """The room's read API says what the plain reference says."""
    assert (room.state, room.host_user_id, room.exists) == (ref.state, ref.host, True)
    assert {u: p.role for u, p in room.participants.items()} == {
        u: r for u, (r, _) in ref.participants.items()
    }
    assert {u: p.joined_at for u, p in room.participants.items()} == {
        u: at for u, (_, at) in ref.participants.items()
    }
    assert [p.user_id for p in participants_view(room)] == ref.ordered()
    assert (list(room.co_hosts), list(room.speakers)) == (ref.co_hosts, ref.speakers)
    assert list(room.speak_requests) == ref.requests
    assert room.removed == ref.removed
    for user in (HOST, *USERS):
        expected = ref.participants.get(user, (types.ROLE_UNSPECIFIED, None))[0]
        assert room.role_of(user) == expected, user
        assert (user in room.participants) == (user in ref.participants), user
    view = space_view(room)
    assert view.participant_count == len(room.participants) == len(ref.participants)
    assert view.listener_count == sum(1 for r, _ in ref.participants.values() if r == types.ROLE_LISTENER)


def roles_of(room: Space) -> dict[str, int]:
    return {user_id: p.role for user_id, p in room.participants.items()}


def check_membership(members: SpaceMembers, room: Space, mod: SpaceModeration) -> None:
    roster = members.roster
    assert {u: m.role for u, m in members.present()} == roles_of(room)
    assert members.ordered() == [p.user_id for p in participants_view(room)]
    assert (roster.state, roster.host_user_id) == (room.state, room.host_user_id)
    assert (roster.co_hosts, roster.speakers) == (room.co_hosts, room.speakers)
    assert roster.present == len(room.participants)
    assert roster.listeners == space_view(room).listener_count
    assert {u for u, m in members.entries.items() if m.hand_raised_at is not None} == {
        u for u, _ in room.speak_requests
    }
    if not room.is_over:
        assert {u: m.mute_kind for u, m in members.entries.items() if m.muted} == mod.mutes
        assert {u for u, m in members.entries.items() if m.removed} == room.removed
        assert {u for u, m in members.entries.items() if m.barred} == mod.removed


def check_relay(relay: SpaceMediaView, room: Space, mod: SpaceModeration) -> None:
    for user in USERS:
        role = room.role_of(user)
        listening = room.is_live and role != types.ROLE_UNSPECIFIED and user not in mod.removed
        heard = listening and role in VOICES and user not in mod.mutes
        assert (relay.admit_subscriber(SPACE, user) is Admission.ADMITTED) == listening, user
        assert (relay.admit(SPACE, user) is Admission.ADMITTED) == heard, user
    if room.is_over:
        assert relay.admit(SPACE, HOST) is Admission.ENDED


def check_presence(board: SpaceBoard, room: Space, mod: SpaceModeration) -> None:
    snapshot = board.snapshot(SPACE)
    assert [(m.user_id, m.role) for m in snapshot] == [(p.user_id, p.role) for p in participants_view(room)]
    requesters = {u for u, _ in room.speak_requests}
    assert {m.user_id for m in snapshot if m.hand_raised} == requesters
    assert {m.user_id for m in snapshot if m.muted} == {u for u in room.participants if u in mod.mutes}


def check_space_at(space: SpaceAt, room: Space) -> None:
    assert space.roles == {p.user_id: p.role for p in participants_view(room)}
    assert list(space.roles) == [p.user_id for p in participants_view(room)]
    assert space.listener_count == space_view(room).listener_count
    assert space.status == types.SpaceState.Name(room.state).removeprefix("SPACE_STATE_").lower()
    assert space.room_version == room.version


def check_figures(stats: dict, members: dict, room: Space) -> None:
    assert stats["listeners"] == space_view(room).listener_count
    voices = {u for u, p in room.participants.items() if p.role in VOICES}
    assert set(stats["voices"]) == voices
    if not room.is_over:
        for user in USERS:
            entry = members.get(member_key(SPACE, user))
            role = entry["member"][0] if entry else types.ROLE_UNSPECIFIED
            assert role == room.role_of(user), user


@settings(max_examples=150, deadline=None)
@given(steps, limits, started)
def test_the_room_and_every_consumer_agree_with_the_reference_on_who_is_in_and_in_which_role(
    sequence, room_limits, start
):
    log = history(sequence, room_limits, start)
    core, roles, relay, board, space = (
        SpaceMembers(),
        RoomRoles(None),
        SpaceMediaView(),
        SpaceBoard(),
        SpaceAt(),
    )
    stats, stats_members = empty(SPACE, 60), {}
    room_version = 0
    reference = Reference()
    for offset, moment in enumerate(log, start=1):
        event = consumed(moment, offset)
        if moment.topic == ROOM_EVENTS.name:
            reference.apply(moment.event, moment.at)
        check_room(moment.room, reference)
        core.apply(moment.event, moment.at)
        relay.apply(event)
        board.apply(event)
        space.apply(moment.event, moment.at)
        if moment.topic == ROOM_EVENTS.name:
            room_version += 1
            roles.fold(event)  # what its durable apply folds into its cache and writes as rows
            apply_room(stats, stats_members, moment.event, moment.at.timestamp(), room_version)
        room, mod = moment.room, moment.moderation
        check_membership(core, room, mod)
        for user in USERS:
            assert roles_in(roles.cached(SPACE), user).actor == room.role_of(user), user
        check_relay(relay, room, mod)
        check_presence(board, room, mod)
        check_space_at(space, room)
        check_figures(stats, stats_members, room)

    final = log[-1].room
    check_space_at(state_at([(m.event, m.at) for m in log], log[-1].at), final)
    listeners = [space_view(m.room).listener_count for m in log]
    counts = [e.listeners for e in tl.build([(m.event, m.at) for m in log], NOW) if e.kind == tl.LISTENERS]
    assert (counts or [0])[-1] == listeners[-1]
    report = build(SPACE, [(m.event, m.at) for m in log if m.topic == ROOM_EVENTS.name])
    peak, unique = settled_listeners([m for m in log if m.topic == ROOM_EVENTS.name])
    assert (report.peak_listeners, report.unique_listeners) == (peak, unique)


def settled_listeners(log: list) -> tuple[int, int]:
    """The reference for peak and unique listeners (libs.analytics.space_figures): each stretch a
    user spends in the listener role, as the room's own state says after each event, counts from
    SETTLE_SECONDS after it began until it ends, if it lasts that long by its end (or by the end of
    the log, or of the Space). Stretches settle before an event at the same moment ends any."""
    since: dict[str, float] = {}
    stretches: list[tuple[str, float, float]] = []
    for moment in log:
        at = moment.at.timestamp()
        listening = (
            {user for user, p in moment.room.participants.items() if p.role == types.ROLE_LISTENER}
            if not moment.room.is_over
            else set()
        )
        for user in [u for u in since if u not in listening]:
            stretches.append((user, since.pop(user), at))
        for user in listening - since.keys():
            since[user] = at
    as_of = log[-1].at.timestamp() if log else 0.0
    stretches += [(user, began, as_of) for user, began in since.items()]
    counted = [
        (user, began + SETTLE_SECONDS, end) for user, began, end in stretches if began + SETTLE_SECONDS <= end
    ]
    marks = sorted([(start, 0, +1) for _, start, _ in counted] + [(end, 1, -1) for _, _, end in counted])
    peak = level = 0
    for _, _, change in marks:
        level += change
        peak = max(peak, level)
    return peak, len({user for user, _, _ in counted})


def test_the_histories_reach_mutes_bars_and_removals_of_people_in_the_space():
    """Not an invariant: proof that the generated vocabulary reaches what the test is about."""
    script = [
        ("a", c.JoinSpace(SPACE), 1),
        ("b", c.JoinSpace(SPACE), 1),
        (HOST, c.InviteToSpeak(SPACE, "a"), 1),
        (HOST, Moderate(mc.MuteParticipant, "a"), 1),
        ("a", c.StepDown(SPACE), 1),
        ("b", c.RequestToSpeak(SPACE), 1),
        (HOST, Moderate(mc.RemoveParticipant, "b"), 1),
        ("b", c.JoinSpace(SPACE), 1),
        (HOST, c.EndSpace(SPACE), 1),
    ]
    log = history(script, RoomLimits(), "live")
    kinds = [type(m.event) for m in log]
    assert mev.ParticipantMuted in kinds and mev.ParticipantRemoved in kinds
    left = [m.event for m in log if isinstance(m.event, ev.ParticipantLeft)]
    assert [(e.user_id, e.reason) for e in left] == [("b", ev.LEAVE_REASON_REMOVED)]
    assert kinds.count(ev.ParticipantJoined) == 3  # host, a, b; b's rejoin was refused: barred
    assert kinds[-1] is ev.SpaceEnded


@settings(max_examples=75, deadline=None)
@given(steps, limits, started, st.integers(2, 4))
def test_members_entries_kept_in_shards_by_user_add_up_to_the_room(sequence, room_limits, start, shards):
    """Ready for listener shards: a user's entry changes only with events about that user, so
    stores that each keep some users' entries (and see every event about the whole Space) fold
    independently, and together they say what the room says."""
    log = history(sequence, room_limits, start)
    stores = [SpaceMembers() for _ in range(shards)]
    for moment in log:
        user = subject(moment.event)
        targets = stores if user is None else [stores[USERS.index(user) % shards]]
        for store in targets:
            store.apply(moment.event, moment.at)
        room = moment.room
        present = {u: m.role for store in stores for u, m in store.present()}
        assert present == roles_of(room)
        assert sum(store.roster.listeners for store in stores) == space_view(room).listener_count
