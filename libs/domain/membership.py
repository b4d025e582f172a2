"""Who is in a Space, and in which role: the one fold of membership that every service reuses.

Moderation authorizes with it, the media relay admits voices and listeners with it, presence
shows it, replay travels in time with it, and analytics and `podium report` count with it. It is
one module because the same facts folded eight times gave eight subtly different answers. It
follows the room's own `evolve` (services/room/domain/evolve.py), the authority on membership and
roles, event for event, and adds what only moderation's events say (mutes, bars).
tests/unit/membership/test_one_fold.py holds every consumer to the room's answer on histories
the room's own `decide` generates.

Two plain frozen values (named tuples: every service folds every event through them, and a tuple
is the cheapest frozen value to make and compare), so that no event costs O(members), even with
100,000 listeners:

- `Roster`, the Space's own part, small and bounded by the room's limits: its lifecycle, its
  host, its co-hosts and speakers (in the room's order), how many are in and how many listen.
- `Member`, one user's entry: role (ROLE_UNSPECIFIED when out), when they joined, their mute,
  an open request to speak, and whether the room removed or moderation barred them.

    subject(event) -> user id | None          # whose entry the event changes
    evolve(roster, member, event, at) -> (roster, member)

`evolve` takes and returns the entry of `subject(event)`; an event about the whole Space takes
and returns `NOBODY`. Where the entries are kept is the caller's choice: a dict per Space in
memory (`SpaceMembers`), a frozen value with a persistent map (`Membership`, the room's own
state: O(1) per event, and the state it was given is never changed), a faust table keyed by
Space and user (analytics). A user's entry changes
only with events about that user, so the entries of different users commute: listener shards can
keep theirs apart and fold them independently (counts add up across shards). A join folded after
its user's promotion takes the role the roster lists, so a join and a promotion kept on different
streams give the same entry in either order (tests/unit/membership/test_cross_stream_order.py). Ending a Space does
not touch the entries: once the Space is over, `role_of` says nobody is in.

Blocks are not here: they are keyed by host, not by Space, and the room consults moderation's
block lists when someone joins. `removed` (the room took the user out) and `barred` (moderation's
ParticipantRemoved) are as far as the Space's own events tell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import immutables
from google.protobuf.message import Message

from podium.moderation.v1 import moderation_events_pb2 as mev
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

NOT_IN = rt.ROLE_UNSPECIFIED
VOICES = frozenset({rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER})
ROLE_ORDER = {rt.ROLE_HOST: 0, rt.ROLE_CO_HOST: 1, rt.ROLE_SPEAKER: 2, rt.ROLE_LISTENER: 3}
OVER = frozenset({rt.SPACE_STATE_ENDED, rt.SPACE_STATE_CANCELLED})


class Roster(NamedTuple):
    space_id: str = ""
    host_user_id: str = ""
    state: int = rt.SPACE_STATE_UNSPECIFIED  # podium.room.v1.SpaceState
    co_hosts: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()
    present: int = 0  # participants now
    listeners: int = 0  # of whom in the listener role

    @property
    def exists(self) -> bool:
        return self.state != rt.SPACE_STATE_UNSPECIFIED

    @property
    def is_live(self) -> bool:
        return self.state == rt.SPACE_STATE_LIVE

    @property
    def is_over(self) -> bool:
        return self.state in OVER


class Member(NamedTuple):
    role: int = NOT_IN  # podium.room.v1.Role
    joined_at: Any = None  # the caller's time type: a datetime, or seconds
    muted: bool = False
    mute_kind: int = 0  # podium.moderation.v1.MuteKind, while muted
    hand_raised_at: Any = None  # an open request to speak
    removed: bool = False  # the room bars them: took them out (ParticipantLeft, REMOVED) or ParticipantBarred
    barred: bool = False  # moderation removed them (ParticipantRemoved): they may not come back

    @property
    def is_in(self) -> bool:
        return self.role != NOT_IN


NOBODY = Member()
EMPTY = Roster()


def role_of(roster: Roster, member: Member) -> int:
    """The user's role now: ROLE_UNSPECIFIED when out, and for everyone once the Space is over."""
    return NOT_IN if roster.is_over else member.role


def subject(event: Message) -> str | None:
    """The user whose entry `event` changes, or None for an event about the whole Space (or none)."""
    return event.user_id if type(event) in _MEMBER_EVENTS else None


def evolve(roster: Roster, member: Member, event: Message, at: Any) -> tuple[Roster, Member]:
    """The Space and the entry of `subject(event)` after `event`. Unknown events change nothing.

    Returns the very objects given when nothing changed, so callers can tell by identity."""
    space_step = _SPACE_EVENTS.get(type(event))
    if space_step is not None:
        return space_step(roster, event, at), member
    member_step = _MEMBER_EVENTS.get(type(event))
    if member_step is None:
        return roster, member
    return _member_evolve(roster, member, member_step, event, at)


def _member_evolve(roster: Roster, member: Member, step, event: Message, at: Any) -> tuple[Roster, Member]:
    """`evolve` for an event about one user, whose `step` is given: the counts follow the role."""
    roster, after = step(roster, member, event, at)
    if after == member:
        return roster, member
    role, was = after.role, member.role
    if role == was or roster.is_over:
        return roster, after
    present = roster.present + (role != NOT_IN) - (was != NOT_IN)
    listeners = roster.listeners + (role == rt.ROLE_LISTENER) - (was == rt.ROLE_LISTENER)
    if present != roster.present or listeners != roster.listeners:
        space_id, host, state, co_hosts, speakers, _, _ = roster
        roster = Roster(space_id, host, state, co_hosts, speakers, present, listeners)
    return roster, after


# The Space's own events


def _created(r: Roster, e: rev.SpaceCreated, at: Any) -> Roster:
    scheduled = e.HasField("scheduled_start")
    state = rt.SPACE_STATE_SCHEDULED if scheduled else rt.SPACE_STATE_CREATED
    return r._replace(space_id=e.space_id, host_user_id=e.host_user_id, state=state)


def _updated(r: Roster, e: rev.SpaceUpdated, at: Any) -> Roster:
    if "scheduled_start" in e.changed_fields and r.state in (
        rt.SPACE_STATE_CREATED,
        rt.SPACE_STATE_SCHEDULED,
    ):
        state = rt.SPACE_STATE_SCHEDULED if e.HasField("scheduled_start") else rt.SPACE_STATE_CREATED
        return r if state == r.state else r._replace(state=state)
    return r


def _started(r: Roster, e: rev.SpaceStarted, at: Any) -> Roster:
    return r._replace(state=rt.SPACE_STATE_LIVE)


def _ended(r: Roster, e: rev.SpaceEnded, at: Any) -> Roster:
    """Ending a Space empties it: every participant leaves and all roles lapse."""
    return r._replace(state=rt.SPACE_STATE_ENDED, co_hosts=(), speakers=(), present=0, listeners=0)


def _cancelled(r: Roster, e: rev.SpaceCancelled, at: Any) -> Roster:
    return r._replace(state=rt.SPACE_STATE_CANCELLED)


_SPACE_EVENTS: dict[type, Callable[[Roster, Any, Any], Roster]] = {
    rev.SpaceCreated: _created,
    rev.SpaceUpdated: _updated,
    rev.SpaceStarted: _started,
    rev.SpaceEnded: _ended,
    rev.SpaceCancelled: _cancelled,
}


# Events about one user: (roster, member) -> (roster, member), counts adjusted by `evolve`


def _without(users: tuple[str, ...], user_id: str) -> tuple[str, ...]:
    return tuple(u for u in users if u != user_id) if user_id in users else users


# The frequent events (joins, leaves, hands) build their Member directly: `_replace` costs more.


def _joined(r: Roster, m: Member, e: rev.ParticipantJoined, at: Any) -> tuple[Roster, Member]:
    role = e.role or rt.ROLE_LISTENER
    if role == rt.ROLE_LISTENER and (r.co_hosts or r.speakers):
        # A voice the roster already lists: its promotion was folded before this join. Never so
        # on one stream (the room promotes only people who are in); with listener shards a join
        # and a promotion are on different streams, and either may be folded first.
        if e.user_id in r.co_hosts:
            role = rt.ROLE_CO_HOST
        elif e.user_id in r.speakers:
            role = rt.ROLE_SPEAKER
    return r, Member(role, at, m.muted, m.mute_kind, m.hand_raised_at, m.removed, m.barred)


def _left(r: Roster, m: Member, e: rev.ParticipantLeft, at: Any) -> tuple[Roster, Member]:
    removed = m.removed or e.reason == rev.LEAVE_REASON_REMOVED
    r = _with_voices(r, _without(r.co_hosts, e.user_id), _without(r.speakers, e.user_id))
    return r, Member(NOT_IN, None, m.muted, m.mute_kind, None, removed, m.barred)


def _with_voices(r: Roster, co_hosts: tuple[str, ...], speakers: tuple[str, ...]) -> Roster:
    if co_hosts is r.co_hosts and speakers is r.speakers:
        return r
    return r._replace(co_hosts=co_hosts, speakers=speakers)


def _as(m: Member, role: int) -> Member:
    """The member in `role` if they are in the Space (the room changes only present participants' roles)."""
    return m._replace(role=role) if m.is_in and m.role != role else m


def _co_host_added(r: Roster, m: Member, e: rev.CoHostAdded, at: Any) -> tuple[Roster, Member]:
    r = _with_voices(r, (*r.co_hosts, e.user_id), _without(r.speakers, e.user_id))
    return r, _as(m, rt.ROLE_CO_HOST)._replace(hand_raised_at=None)


def _co_host_removed(r: Roster, m: Member, e: rev.CoHostRemoved, at: Any) -> tuple[Roster, Member]:
    return _with_voices(r, _without(r.co_hosts, e.user_id), r.speakers), _as(m, rt.ROLE_LISTENER)


def _speaker_added(r: Roster, m: Member, e: rev.SpeakerAdded, at: Any) -> tuple[Roster, Member]:
    r = _with_voices(r, r.co_hosts, (*r.speakers, e.user_id))
    return r, _as(m, rt.ROLE_SPEAKER)._replace(hand_raised_at=None)


def _speaker_removed(r: Roster, m: Member, e: rev.SpeakerRemoved, at: Any) -> tuple[Roster, Member]:
    return _with_voices(r, r.co_hosts, _without(r.speakers, e.user_id)), _as(m, rt.ROLE_LISTENER)


def _hand_raised(r: Roster, m: Member, e: rev.SpeakRequested, at: Any) -> tuple[Roster, Member]:
    return r, Member(m.role, m.joined_at, m.muted, m.mute_kind, at, m.removed, m.barred)


def _hand_lowered(r: Roster, m: Member, e: Message, at: Any) -> tuple[Roster, Member]:
    if m.hand_raised_at is None:
        return r, m
    return r, Member(m.role, m.joined_at, m.muted, m.mute_kind, None, m.removed, m.barred)


def _room_barred(r: Roster, m: Member, e: rev.ParticipantBarred, at: Any) -> tuple[Roster, Member]:
    """The room bars a user who is not in (through this stream): as a removal does, without a leave."""
    return (r, m) if m.removed else (r, m._replace(removed=True))


def _muted(r: Roster, m: Member, e: mev.ParticipantMuted, at: Any) -> tuple[Roster, Member]:
    return r, m._replace(muted=True, mute_kind=e.kind)


def _unmuted(r: Roster, m: Member, e: mev.ParticipantUnmuted, at: Any) -> tuple[Roster, Member]:
    return r, m._replace(muted=False, mute_kind=0)


def _barred(r: Roster, m: Member, e: mev.ParticipantRemoved, at: Any) -> tuple[Roster, Member]:
    """Moderation removed the user: barred from the Space, mute lifted (moderation's own fold does
    the same). They stay in until the room's ParticipantLeft(REMOVED) says they left."""
    return r, m._replace(barred=True, muted=False, mute_kind=0)


_MEMBER_EVENTS: dict[type, Callable[[Roster, Member, Any, Any], tuple[Roster, Member]]] = {
    rev.ParticipantJoined: _joined,
    rev.ParticipantLeft: _left,
    rev.ParticipantBarred: _room_barred,
    rev.CoHostAdded: _co_host_added,
    rev.CoHostRemoved: _co_host_removed,
    rev.SpeakerAdded: _speaker_added,
    rev.SpeakerRemoved: _speaker_removed,
    rev.SpeakRequested: _hand_raised,
    rev.SpeakRequestWithdrawn: _hand_lowered,
    rev.SpeakRequestApproved: _hand_lowered,
    rev.SpeakRequestDenied: _hand_lowered,
    mev.ParticipantMuted: _muted,
    mev.ParticipantUnmuted: _unmuted,
    mev.ParticipantRemoved: _barred,
}


# One Space in memory


class Change(NamedTuple):
    """What an event did to one user's entry."""

    user_id: str
    before: Member
    after: Member


class SpaceMembers:
    """One Space's membership held in memory: its `Roster` and a dict of the entries that say
    something (a user who left unmuted and unbarred has none). `apply` is O(1) per event; ending
    the Space drops the entries."""

    __slots__ = ("entries", "roster")

    def __init__(self) -> None:
        self.roster: Roster = EMPTY
        self.entries: dict[str, Member] = {}

    def apply(self, event: Message, at: Any) -> Change | None:
        """Folds one event in; the change to the user it is about, if any."""
        user_id = subject(event)
        if user_id is None:
            self.roster, _ = evolve(self.roster, NOBODY, event, at)
            if self.roster.is_over and self.entries:
                self.entries = {}
            return None
        before = self.entries.get(user_id, NOBODY)
        self.roster, after = evolve(self.roster, before, event, at)
        if after is before:
            return None
        if after == NOBODY:
            self.entries.pop(user_id, None)
        else:
            self.entries[user_id] = after
        return Change(user_id, before, after)

    def member(self, user_id: str) -> Member:
        return self.entries.get(user_id, NOBODY)

    def role_of(self, user_id: str) -> int:
        return role_of(self.roster, self.entries.get(user_id, NOBODY))

    def present(self) -> Iterator[tuple[str, Member]]:
        """Everyone in the Space now, in no particular order."""
        if self.roster.is_over:
            return iter(())
        return ((u, m) for u, m in self.entries.items() if m.is_in)

    def ordered(self) -> list[str]:
        """Everyone in: the host, then co-hosts, speakers and listeners, each in joining order
        (the room's own order for ListParticipants)."""
        people = sorted(self.present(), key=lambda p: (ROLE_ORDER.get(p[1].role, 9), p[1].joined_at, p[0]))
        return [user_id for user_id, _ in people]


# One Space as a frozen value

_NO_ENTRIES: immutables.Map = immutables.Map()


class Membership(NamedTuple):
    """One Space's membership as a frozen value: its `Roster` and a persistent map of the entries
    that say something (as `SpaceMembers` keeps them). `apply` returns a new value in O(1) (the map
    shares all but one entry with the old one), so a fold over a Space of 100,000 listeners costs
    no more per event than one of ten. Ending the Space keeps the entries (who was removed still
    matters to the room), but nobody is in any more."""

    roster: Roster = EMPTY
    entries: immutables.Map = _NO_ENTRIES

    def apply(self, event: Message, at: Any) -> Membership:
        """The membership after `event`; this very value when the event changed nothing."""
        member_step = _MEMBER_EVENTS.get(type(event))
        if member_step is None:
            space_step = _SPACE_EVENTS.get(type(event))
            if space_step is None:
                return self
            roster = space_step(self.roster, event, at)
            return self if roster is self.roster else Membership(roster, self.entries)
        user_id = event.user_id
        before = self.entries.get(user_id, NOBODY)
        roster, after = _member_evolve(self.roster, before, member_step, event, at)
        if after is before:
            return self if roster is self.roster else Membership(roster, self.entries)
        if after == NOBODY:
            entries = self.entries.delete(user_id) if user_id in self.entries else self.entries
        else:
            entries = self.entries.set(user_id, after)
        return Membership(roster, entries)

    def apply_all(self, events: Iterable[tuple[Message, Any]]) -> Membership:
        """`apply` of each (event, at) in turn, on one mutable copy of the entries: folding many
        joins at once (everyone in through a Space's listener shards) makes no map per event."""
        roster = self.roster
        with self.entries.mutate() as entries:
            for event, at in events:
                member_step = _MEMBER_EVENTS.get(type(event))
                if member_step is None:
                    space_step = _SPACE_EVENTS.get(type(event))
                    roster = space_step(roster, event, at) if space_step else roster
                    continue
                user_id = event.user_id
                before = entries.get(user_id, NOBODY)
                roster, after = _member_evolve(roster, before, member_step, event, at)
                if after is before:
                    continue
                if after != NOBODY:
                    entries[user_id] = after
                elif user_id in entries:
                    del entries[user_id]
            return Membership(roster, entries.finish())

    def member(self, user_id: str) -> Member:
        return self.entries.get(user_id, NOBODY)

    def role_of(self, user_id: str) -> int:
        return role_of(self.roster, self.entries.get(user_id, NOBODY))

    def is_in(self, user_id: str) -> bool:
        return not self.roster.is_over and self.entries.get(user_id, NOBODY).role != NOT_IN

    def present(self) -> Iterator[tuple[str, Member]]:
        """Everyone in the Space now, in no particular order."""
        if self.roster.is_over:
            return iter(())
        return ((u, m) for u, m in self.entries.items() if m.role != NOT_IN)


NO_MEMBERS = Membership()
