"""A Space as the room service knows it: a frozen value that `evolve` replaces, never mutates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from podium.room.v1 import room_types_pb2 as types


@dataclass(frozen=True)
class Participant:
    user_id: str
    role: int
    joined_at: datetime


@dataclass(frozen=True)
class Space:
    exists: bool = False
    space_id: str = ""
    host_user_id: str = ""
    title: str = ""
    description: str = ""
    join_policy: int = types.JOIN_POLICY_ANYONE
    scheduled_start: datetime | None = None
    recording_enabled: bool = False
    state: int = types.SPACE_STATE_UNSPECIFIED
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    participants: dict[str, Participant] = field(default_factory=dict)  # copied on write, never mutated
    co_hosts: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()
    invited: frozenset[str] = frozenset()
    invite_links: dict[str, datetime] = field(default_factory=dict)  # link id -> expiry
    speak_requests: tuple[tuple[str, datetime], ...] = ()  # oldest first
    removed: frozenset[str] = frozenset()
    unattended_since: datetime | None = None  # live, and no host or co-host present since then
    version: int = 0

    @property
    def is_live(self) -> bool:
        return self.state == types.SPACE_STATE_LIVE

    @property
    def is_over(self) -> bool:
        return self.state in (types.SPACE_STATE_ENDED, types.SPACE_STATE_CANCELLED)

    def role_of(self, user_id: str) -> int:
        participant = self.participants.get(user_id)
        return participant.role if participant else types.ROLE_UNSPECIFIED

    def is_manager(self, user_id: str) -> bool:
        """The host and co-hosts manage roles and invites."""
        return user_id == self.host_user_id or user_id in self.co_hosts

    def requested_at(self, user_id: str) -> datetime | None:
        for requester, at in self.speak_requests:
            if requester == user_id:
                return at
        return None

    def managers_present(self) -> bool:
        return self.host_user_id in self.participants or any(c in self.participants for c in self.co_hosts)


INITIAL = Space()
