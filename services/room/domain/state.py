"""A Space as the room service knows it: a frozen value that `evolve` replaces, never mutates.

Who is in the Space, in which role, with a hand raised or removed, is `membership`: the one fold
of membership every service reuses (`libs.domain.membership.Membership`). The room keeps beside
it only what is its own: the Space's description, invitations, the order of the queue to speak,
and since when no host or co-host has been present. The lifecycle (`state`), the Space's id, the host, co-hosts
and speakers are read from the membership's roster, so there is one answer to each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from immutables import Map

from libs.domain.membership import NO_MEMBERS, NOT_IN, Membership
from podium.room.v1 import room_types_pb2 as types


@dataclass(frozen=True)
class Participant:
    user_id: str
    role: int
    joined_at: datetime


class Participants(Mapping[str, Participant]):
    """Everyone in the Space now, as user id -> Participant: a read-only view of the membership.
    Lookups and `len` are O(1); iterating visits every entry."""

    __slots__ = ("_membership",)

    def __init__(self, membership: Membership):
        self._membership = membership

    def __getitem__(self, user_id: str) -> Participant:
        m = self._membership
        member = m.member(user_id)
        if m.roster.is_over or member.role == NOT_IN:
            raise KeyError(user_id)
        return Participant(user_id, member.role, member.joined_at)

    def __contains__(self, user_id: object) -> bool:
        return self._membership.is_in(user_id)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return (user_id for user_id, _ in self._membership.present())

    def __len__(self) -> int:
        roster = self._membership.roster
        return 0 if roster.is_over else roster.present


NO_SUBSCRIBERS: Map = Map()
NO_GUESTS: Map = Map()


@dataclass(frozen=True)
class Space:
    title: str = ""
    description: str = ""
    join_policy: int = types.JOIN_POLICY_ANYONE
    scheduled_start: datetime | None = None
    recording_enabled: bool = False
    topics: tuple[str, ...] = ()
    language: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    membership: Membership = NO_MEMBERS  # who is in, in which role, hands raised, removed; lifecycle
    invited: frozenset[str] = frozenset()
    # Participants who came in with an invite link (user id -> link id): with the invited, they
    # still qualify when the Space turns invite-only; anyone else listening is evicted.
    link_guests: Map = NO_GUESTS
    invite_links: dict[str, datetime] = field(default_factory=dict)  # link id -> expiry
    request_queue: tuple[str, ...] = ()  # users with a raised hand, oldest first (bounded by the limits)
    unattended_since: datetime | None = None  # live, and no host or co-host present since then
    # Users to remind of the scheduled start (a persistent map, so a subscription is O(1)), and the
    # reminders already sent for the scheduled start as it is now (moving it sends them again).
    subscribers: Map = NO_SUBSCRIBERS  # user id -> when they subscribed
    reminded: frozenset[int] = frozenset()  # podium.room.v1.ReminderKind values
    # False when the last of them left in a mass time-out: no evidence that they are gone.
    unattended_on_evidence: bool = True
    # How many listener shard streams the Space has (ADR 0012): 1 until it grows.
    listener_shards: int = 1
    # How many writer lanes its shards are dealt to (ADR 0018), set at the first growth.
    listener_lanes: int = 1
    # Set on the state one decision is made on, once the application has put in it the members of
    # the listener shards the decision is about (`commands.WithShardMembers`); never folded.
    shards_consulted: bool = False
    # The listener shards, (shard, version) each, that one answer's join or leave was recorded on
    # (for its read-your-writes token, `view.space_view`); set on that answer's state, never folded.
    shard_positions: tuple[tuple[int, int], ...] = ()
    version: int = 0

    # Read from the membership

    @property
    def exists(self) -> bool:
        return self.membership.roster.exists

    @property
    def space_id(self) -> str:
        return self.membership.roster.space_id

    @property
    def state(self) -> int:
        return self.membership.roster.state

    @property
    def host_user_id(self) -> str:
        return self.membership.roster.host_user_id

    @property
    def co_hosts(self) -> tuple[str, ...]:
        return self.membership.roster.co_hosts

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.membership.roster.speakers

    @property
    def participants(self) -> Participants:
        return Participants(self.membership)

    @property
    def listener_count(self) -> int:
        roster = self.membership.roster
        return 0 if roster.is_over else roster.listeners

    @property
    def removed(self) -> frozenset[str]:
        """Users the room took out, who may not come back. O(entries): use `is_removed` to ask."""
        return frozenset(u for u, m in self.membership.entries.items() if m.removed)

    @property
    def speak_requests(self) -> tuple[tuple[str, datetime], ...]:
        """The queue to speak, oldest first, with when each hand was raised."""
        member = self.membership.member
        return tuple((u, member(u).hand_raised_at) for u in self.request_queue)

    @property
    def is_live(self) -> bool:
        return self.state == types.SPACE_STATE_LIVE

    @property
    def is_over(self) -> bool:
        return self.membership.roster.is_over

    def is_in(self, user_id: str) -> bool:
        return self.membership.is_in(user_id)

    def is_removed(self, user_id: str) -> bool:
        return self.membership.member(user_id).removed

    def role_of(self, user_id: str) -> int:
        return self.membership.role_of(user_id)

    def is_manager(self, user_id: str) -> bool:
        """The host and co-hosts manage roles and invites."""
        return user_id == self.host_user_id or user_id in self.co_hosts

    def requested_at(self, user_id: str) -> datetime | None:
        """When the user raised the hand still raised; None once the Space is over (requests lapse)."""
        return None if self.is_over else self.membership.member(user_id).hand_raised_at

    def holds_anything(self, user_id: str) -> bool:
        """A voice (co-host, speaker) or a raised hand on the Space's own stream: what a leave through
        a listener shard leaves behind for `ReleaseLeaver` to take back."""
        return user_id in self.co_hosts or user_id in self.speakers or self.requested_at(user_id) is not None

    def managers_present(self) -> bool:
        return managers_present(self.membership)

    def admits(self, user_id: str) -> bool:
        """The user may be in the Space under its join policy as it is now: anyone may in an open
        Space; in an invite-only one, the host, co-hosts, speakers, the invited and link guests."""
        if self.join_policy != types.JOIN_POLICY_INVITED_ONLY:
            return True
        return (
            user_id in self.invited
            or user_id in self.link_guests
            or user_id == self.host_user_id
            or user_id in self.co_hosts
            or user_id in self.speakers
        )

    def listeners_outside_policy(self) -> list[str]:
        """Listeners the join policy no longer admits (admitted while the Space was open): the
        evictor's work after a switch to invite-only. O(participants)."""
        if self.is_over or self.join_policy != types.JOIN_POLICY_INVITED_ONLY:
            return []
        return [
            user_id
            for user_id, member in self.membership.present()
            if member.role == types.ROLE_LISTENER and not self.admits(user_id)
        ]


def managers_present(membership: Membership) -> bool:
    """The host or a co-host is in. Co-hosts are always participants (leaving ends the role): O(1)."""
    return membership.is_in(membership.roster.host_user_id) or bool(membership.roster.co_hosts)


INITIAL = Space()
