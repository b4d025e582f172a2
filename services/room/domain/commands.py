"""Room commands, in the imperative. The acting user is never in a command:
it comes from the verified token, through the decide Context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CreateSpace:
    space_id: str
    title: str
    description: str = ""
    join_policy: int = 0
    scheduled_start: datetime | None = None
    recording_enabled: bool = False
    topics: tuple[str, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class UpdateSpace:
    """Fields left as None are unchanged."""

    space_id: str
    title: str | None = None
    description: str | None = None
    join_policy: int | None = None
    scheduled_start: datetime | None = None
    recording_enabled: bool | None = None
    topics: tuple[str, ...] | None = None
    language: str | None = None


@dataclass(frozen=True)
class StartSpace:
    space_id: str


@dataclass(frozen=True)
class EndSpace:
    space_id: str


@dataclass(frozen=True)
class CancelSpace:
    space_id: str


@dataclass(frozen=True)
class SubscribeToSpace:
    space_id: str


@dataclass(frozen=True)
class UnsubscribeFromSpace:
    space_id: str


@dataclass(frozen=True)
class RemindSubscribers:
    """Issued by the service itself when a scheduled Space's reminder is due (`kind`, a
    podium.room.v1.ReminderKind), for the scheduled start it was due for."""

    space_id: str
    kind: int
    scheduled_start: datetime


@dataclass(frozen=True)
class ExpireSpace:
    """Issued by the service itself when a scheduled Space did not start within the window."""

    space_id: str


@dataclass(frozen=True)
class EndAbandonedSpace:
    """Issued by the service itself when no host or co-host has been present for the grace period."""

    space_id: str


@dataclass(frozen=True)
class JoinSpace:
    space_id: str
    invite_link_id: str | None = None  # from a link token whose signature the application checked
    barred: bool = False  # moderation removed the user from this Space
    blocked_by: frozenset[str] = frozenset()  # hosts who have blocked the user


@dataclass(frozen=True)
class LeaveSpace:
    space_id: str


@dataclass(frozen=True)
class TimeOutParticipant:
    """Presence lost the user's connection. `mass_time_out`: in a time-out of many at once (held by
    presence's brake first), which is not evidence that a host or co-host left the Space."""

    space_id: str
    user_id: str
    mass_time_out: bool = False


@dataclass(frozen=True)
class RemoveParticipant:
    """Moderation removed the user; they may not rejoin this Space."""

    space_id: str
    user_id: str


@dataclass(frozen=True)
class EvictListeners:
    """Issued by the room's evictor once the Space turned invite-only: each of these listeners goes
    if the policy as it is now still does not admit them (decided again, so a repeat changes
    nothing). Many to a command: a Space of thousands is emptied in a few appends."""

    space_id: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class InviteUsers:
    space_id: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class CreateInviteLink:
    space_id: str
    link_id: str
    expires_at: datetime


@dataclass(frozen=True)
class AddCoHost:
    space_id: str
    user_id: str


@dataclass(frozen=True)
class RemoveCoHost:
    space_id: str
    user_id: str


@dataclass(frozen=True)
class WithShardMembers:
    """`command`, decided on the Space's own state with `members` (user id, when they joined) in it
    too: users the application found in through the Space's listener shards (ADR 0012), whom the own
    stream alone does not show as in (an actor, or a command's target)."""

    command: object
    members: tuple[tuple[str, datetime], ...]

    @property
    def space_id(self) -> str:
        return self.command.space_id


@dataclass(frozen=True)
class ReleaseLeaver:
    """Issued by the room after `user_id` left through a listener shard (ADR 0012): the co-host's
    or speaker's slot and the raised hand the Space's own stream still holds for them go.

    `unless_back`: nothing goes if they are in again. The release view's, which may run long after
    the leave: a voice or hand they hold by then was given to them since (the release that ran with
    the leave took the old one), or, if that release never ran, was kept across their return."""

    space_id: str
    user_id: str
    unless_back: bool = False


@dataclass(frozen=True)
class GrowListenerShards:
    """Issued by the room when a live Space's joins outgrow its listener shards (ADR 0012): from
    now on its listeners' joins spread over `shards` streams. Growing to a count it already has,
    or fewer, changes nothing, so replicas that both see the rush grow it once. `lanes`, the writer
    lanes the shards are dealt to (ADR 0018), counts at the first growth only: a Space keeps its
    lanes, so every replica finds a listener's stream where it was written."""

    space_id: str
    shards: int
    lanes: int = 1


@dataclass(frozen=True)
class InviteToSpeak:
    space_id: str
    user_id: str


@dataclass(frozen=True)
class RevokeSpeaker:
    space_id: str
    user_id: str


@dataclass(frozen=True)
class StepDown:
    space_id: str


@dataclass(frozen=True)
class RequestToSpeak:
    space_id: str


@dataclass(frozen=True)
class WithdrawSpeakRequest:
    space_id: str


@dataclass(frozen=True)
class ApproveSpeakRequest:
    space_id: str
    user_id: str


@dataclass(frozen=True)
class DenySpeakRequest:
    space_id: str
    user_id: str
