"""decide(command, state, context) -> events: the room's rules, one small function per command.

A command that would change nothing (joining a Space you are in, starting a
live Space) emits nothing; a command that breaks a rule raises a DomainError
with a stable reason. Limits are checked here, on the write path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from google.protobuf.message import Message

from libs.domain.decider import SYSTEM_CLAIM, Context, Decider
from libs.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Validator,
)
from libs.domain.reasons import Reason
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain import commands as c
from services.room.domain.evolve import evolve, replace, with_members
from services.room.domain.limits import RoomLimits
from services.room.domain.state import INITIAL, Space

JOIN_POLICIES = (types.JOIN_POLICY_ANYONE, types.JOIN_POLICY_INVITED_ONLY)


def decide(command: object, state: Space, ctx: Context, limits: RoomLimits = RoomLimits()) -> list[Message]:
    if isinstance(command, c.WithShardMembers):
        state, command = replace(with_members(state, command.members), shards_consulted=True), command.command
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"room cannot decide {type(command).__name__}")
    if not isinstance(command, c.CreateSpace) and not state.exists:
        raise NotFound(f"space {command.space_id!r} does not exist", reason=Reason.SPACE_NOT_FOUND)
    return handler(command, state, ctx, limits)


class OnListenerShards(Aborted):
    """Whether `user_id` is in is for the Space's listener shards to say, not its own stream: the
    application routes the command there, or decides it again with what the shards say
    (`c.WithShardMembers`). Raised only where the answer matters, never to a client but in a race
    with a growth the application did not see (then ABORTED: a retry is routed)."""

    def __init__(self, space_id: str, user_id: str):
        super().__init__(
            f"space {space_id!r} has listener shards: where {user_id!r} is in is for them to say",
            reason=Reason.ON_LISTENER_SHARDS,
        )
        self.user_id = user_id


def _is_in(state: Space, user_id: str) -> bool:
    """The user is in through the Space's own stream; OnListenerShards when that is not the whole
    answer (the Space has shards, the user may be in through one, and nobody has asked them)."""
    if state.is_in(user_id):
        return True
    if state.listener_shards >= 2 and not state.shards_consulted and user_id != state.host_user_id:
        raise OnListenerShards(state.space_id, user_id)
    return False


def make_decider(limits: RoomLimits = RoomLimits()) -> Decider:
    return Decider(partial(decide, limits=limits), evolve, INITIAL)


# Checks shared by several commands


def _timestamp(message: Message, name: str, value: datetime | None) -> Message:
    if value is not None:
        getattr(message, name).FromDatetime(value.astimezone(UTC))
    return message


def _require_host(state: Space, ctx: Context, action: str) -> None:
    if ctx.actor_user_id != state.host_user_id:
        raise PermissionDenied(f"only the host can {action}", reason=Reason.NOT_HOST)


def _require_manager(state: Space, ctx: Context, action: str) -> None:
    if not state.is_manager(ctx.actor_user_id):
        raise PermissionDenied(f"only the host and co-hosts can {action}", reason=Reason.NOT_HOST_OR_CO_HOST)


def _require_not_over(state: Space) -> None:
    if state.is_over:
        raise FailedPrecondition(
            f"space {state.space_id} has {'ended' if state.state == types.SPACE_STATE_ENDED else 'been cancelled'}",
            reason=Reason.SPACE_ENDED,
        )


def _require_live(state: Space) -> None:
    _require_not_over(state)
    if not state.is_live:
        raise FailedPrecondition(f"space {state.space_id} has not started yet", reason=Reason.SPACE_NOT_LIVE)


def _require_participant(state: Space, user_id: str) -> None:
    if not _is_in(state, user_id):
        raise FailedPrecondition(
            f"user {user_id!r} is not in space {state.space_id}", reason=Reason.USER_NOT_A_PARTICIPANT
        )


# BCP 47's shape (RFC 5646, section 2.1), without checking subtags against the IANA registry: a
# primary language subtag, then script, region, variant and extension subtags.
_LANGUAGE_TAG = re.compile(
    r"[A-Za-z]{2,3}(-[A-Za-z]{3}){0,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-[0-9A-WY-Za-wy-z](-[A-Za-z0-9]{2,8})+)*(-x(-[A-Za-z0-9]{1,8})+)?"
)


def is_language_tag(value: str) -> bool:
    return len(value) <= 35 and _LANGUAGE_TAG.fullmatch(value) is not None


def _check_about(
    check: Validator, topics: tuple[str, ...] | None, language: str | None, limits: RoomLimits
) -> None:
    if topics is not None:
        check.check(
            len(topics) <= limits.max_topics, "topics", f"at most {limits.max_topics} (got {len(topics)})"
        )
        check.check(len(set(topics)) == len(topics), "topics", "each at most once")
        unknown = sorted(set(topics) - limits.topics)
        check.check(
            not unknown,
            "topics",
            f"{', '.join(unknown)} not among this deployment's topics ({', '.join(sorted(limits.topics))})",
        )
    if language:
        check.check(
            is_language_tag(language),
            "language",
            f"{language!r} is not a BCP 47 language tag (like en or pt-BR)",
        )


def _check_text(check: Validator, title: str | None, description: str | None, limits: RoomLimits) -> None:
    if title is not None:
        length = len(title.strip())  # surrounding whitespace is trimmed, so it does not count
        check.check(
            limits.min_title <= length <= limits.max_title,
            "title",
            f"must be {limits.min_title} to {limits.max_title} characters, not blank (got {length})",
        )
    if description is not None:
        check.check(
            len(description) <= limits.max_description,
            "description",
            f"must be at most {limits.max_description} characters (got {len(description)})",
        )


# Lifecycle


def _create(cmd: c.CreateSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if state.exists:
        raise AlreadyExists(f"space {cmd.space_id} already exists", reason=Reason.SPACE_EXISTS)
    check = Validator()
    _check_text(check, cmd.title, cmd.description, limits)
    _check_about(check, cmd.topics, cmd.language, limits)
    check.check(
        cmd.join_policy in (types.JOIN_POLICY_UNSPECIFIED, *JOIN_POLICIES),
        "join_policy",
        "must be JOIN_POLICY_ANYONE or JOIN_POLICY_INVITED_ONLY",
    )
    check.check(
        cmd.scheduled_start is None or cmd.scheduled_start > ctx.now,
        "scheduled_start",
        "must be in the future",
    )
    check.raise_if_any("CreateSpace has invalid fields")
    event = ev.SpaceCreated(
        space_id=cmd.space_id,
        host_user_id=ctx.actor_user_id,
        title=cmd.title.strip(),
        description=cmd.description,
        join_policy=cmd.join_policy or types.JOIN_POLICY_ANYONE,
        recording_enabled=cmd.recording_enabled,
        topics=cmd.topics,
        language=cmd.language,
    )
    return [_timestamp(event, "scheduled_start", cmd.scheduled_start)]


#: The settings UpdateSpace may change, each named in the event's `changed_fields`.
UPDATABLE = (
    "title",
    "description",
    "join_policy",
    "scheduled_start",
    "recording_enabled",
    "topics",
    "language",
)


def _update(cmd: c.UpdateSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "update the space")
    _require_not_over(state)
    check = Validator()
    _check_text(check, cmd.title, cmd.description, limits)
    _check_about(check, cmd.topics, cmd.language, limits)
    if cmd.join_policy is not None:
        check.check(cmd.join_policy in JOIN_POLICIES, "join_policy", "must be ANYONE or INVITED_ONLY")
    if cmd.scheduled_start is not None:
        check.check(not state.is_live, "scheduled_start", "cannot change once the space is live")
        check.check(cmd.scheduled_start > ctx.now, "scheduled_start", "must be in the future")
    check.raise_if_any("UpdateSpace has invalid fields")
    event = ev.SpaceUpdated(space_id=state.space_id)
    for name in UPDATABLE:
        value = getattr(cmd, name)
        if name == "title" and value is not None:
            value = value.strip()
        if value is None or value == getattr(state, name):
            continue
        event.changed_fields.append(name)
        if name == "scheduled_start":
            _timestamp(event, name, value)
        elif name == "topics":
            event.topics[:] = value
        else:
            setattr(event, name, value)
    if not event.changed_fields:
        return []
    if "scheduled_start" in event.changed_fields and state.state == types.SPACE_STATE_SCHEDULED:
        return [event, *reminders(state, ev.REMINDER_KIND_RESCHEDULED, limits, cmd.scheduled_start)]
    return [event]


def _start(cmd: c.StartSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "start the space")
    _require_not_over(state)
    if state.is_live:
        return []
    return [
        ev.SpaceStarted(space_id=state.space_id, host_user_id=state.host_user_id),
        ev.ParticipantJoined(
            space_id=state.space_id,
            user_id=state.host_user_id,
            role=types.ROLE_HOST,
            source=ev.JOIN_SOURCE_HOST,
        ),
    ]


def _end(cmd: c.EndSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "end the space")
    if state.state == types.SPACE_STATE_ENDED:
        return []
    if state.state == types.SPACE_STATE_CANCELLED:
        raise FailedPrecondition("the space was cancelled; it cannot end", reason=Reason.SPACE_ENDED)
    if not state.is_live:
        raise FailedPrecondition("the space has not started; cancel it instead", reason=Reason.SPACE_NOT_LIVE)
    return [ev.SpaceEnded(space_id=state.space_id, reason=ev.END_REASON_HOST_ENDED)]


def _end_abandoned(cmd: c.EndAbandonedSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied(
            "only the room service itself ends abandoned spaces", reason=Reason.SYSTEM_ONLY
        )
    _require_live(state)
    if state.unattended_since is None or ctx.now - state.unattended_since < limits.abandoned_grace:
        raise FailedPrecondition(
            "a host or co-host is present, or was recently", reason=Reason.SPACE_ATTENDED
        )
    ends_at = state.unattended_since + limits.abandoned_grace_without_evidence
    if not state.unattended_on_evidence and ctx.now < ends_at:
        raise FailedPrecondition(
            "the host and co-hosts left in a mass time-out, which is no evidence that they are gone; "
            f"the Space waits for them until {ends_at.isoformat()}",
            reason=Reason.HOSTS_GONE_IN_MASS_TIME_OUT,
            metadata={"not_before": ends_at.isoformat()},
        )
    return [ev.SpaceEnded(space_id=state.space_id, reason=ev.END_REASON_ABANDONED)]


def _cancel(cmd: c.CancelSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "cancel the space")
    if state.state == types.SPACE_STATE_CANCELLED:
        return []
    if state.state == types.SPACE_STATE_ENDED:
        raise FailedPrecondition(f"space {state.space_id} has already ended", reason=Reason.SPACE_ENDED)
    if state.state not in (types.SPACE_STATE_CREATED, types.SPACE_STATE_SCHEDULED):
        raise FailedPrecondition(
            "only a space that has not started can be cancelled; end it instead", reason=Reason.SPACE_STARTED
        )
    return [ev.SpaceCancelled(space_id=state.space_id)]


# Reminders of a scheduled Space

ZERO = timedelta(0)


def _subscribe(cmd: c.SubscribeToSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if state.state != types.SPACE_STATE_SCHEDULED:
        raise FailedPrecondition(
            "only a scheduled space that has not started can be subscribed to",
            reason=Reason.SPACE_NOT_SCHEDULED,
        )
    if ctx.actor_user_id in state.subscribers:
        return []
    return [ev.SpaceSubscribed(space_id=state.space_id, user_id=ctx.actor_user_id)]


def _unsubscribe(
    cmd: c.UnsubscribeFromSpace, state: Space, ctx: Context, limits: RoomLimits
) -> list[Message]:
    if ctx.actor_user_id not in state.subscribers:
        return []
    return [ev.SpaceUnsubscribed(space_id=state.space_id, user_id=ctx.actor_user_id)]


def reminders(
    state: Space, kind: int, limits: RoomLimits, scheduled_start: datetime | None = None
) -> list[Message]:
    """The SpaceReminder events that tell every subscriber about `kind` (and the scheduled start,
    the Space's own unless given), up to `limits.reminder_batch` subscribers each (none when
    nobody subscribed)."""
    scheduled_start = scheduled_start or state.scheduled_start
    users = sorted(state.subscribers)
    size = limits.reminder_batch
    parts = (len(users) + size - 1) // size
    events = []
    for part in range(parts):
        event = ev.SpaceReminder(
            space_id=state.space_id,
            kind=kind,
            title=state.title,
            host_user_id=state.host_user_id,
            subscriber_user_ids=users[part * size : (part + 1) * size],
            part=part + 1,
            parts=parts,
        )
        events.append(_timestamp(event, "scheduled_start", scheduled_start))
    return events


def _remind(cmd: c.RemindSubscribers, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied("only the room service itself sends reminders", reason=Reason.SYSTEM_ONLY)
    if (
        state.state != types.SPACE_STATE_SCHEDULED
        or state.scheduled_start != cmd.scheduled_start  # moved since the reminder fell due
        or cmd.kind in state.reminded
    ):
        return []
    due = state.scheduled_start - (
        limits.reminder_lead if cmd.kind == ev.REMINDER_KIND_STARTING_SOON else ZERO
    )
    if ctx.now < due:
        raise FailedPrecondition("the reminder is not due yet", reason=Reason.REMINDER_NOT_DUE)
    # Nobody to remind still counts as reminded, so the reminder is not looked at again.
    return reminders(state, cmd.kind, limits) or [
        _timestamp(
            ev.SpaceReminder(space_id=state.space_id, kind=cmd.kind, parts=0),
            "scheduled_start",
            state.scheduled_start,
        )
    ]


def _expire(cmd: c.ExpireSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied("only the room service itself expires spaces", reason=Reason.SYSTEM_ONLY)
    if state.state != types.SPACE_STATE_SCHEDULED:
        return []
    if state.scheduled_start is None or ctx.now < state.scheduled_start + limits.start_window:
        raise FailedPrecondition("the space may still start", reason=Reason.SPACE_NOT_EXPIRED)
    return [ev.SpaceEnded(space_id=state.space_id, reason=ev.END_REASON_EXPIRED)]


# Membership


def _join(cmd: c.JoinSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    user = ctx.actor_user_id
    if (
        state.is_live
        and state.listener_shards >= 2
        and user != state.host_user_id
        and not _is_in(state, user)
    ):
        raise OnListenerShards(state.space_id, user)  # the host's joins stay here
    return join_decision(cmd, state, ctx, limits)


def join_decision(cmd: c.JoinSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    """The Space's rule for a join, on its own stream or, against its state, on a listener shard."""
    user = ctx.actor_user_id
    _require_live(state)
    if state.is_in(user):
        return []
    if state.is_removed(user) or cmd.barred:
        raise PermissionDenied("you were removed from this space", reason=Reason.REMOVED_FROM_SPACE)
    if cmd.blocked_by & {state.host_user_id, *state.co_hosts}:
        raise PermissionDenied("the host or a co-host of this space has blocked you", reason=Reason.BLOCKED)
    source, link_id = ev.JOIN_SOURCE_DIRECT, ""
    if cmd.invite_link_id:
        expires = state.invite_links.get(cmd.invite_link_id)
        if expires is None:
            raise PermissionDenied("the invite link is not for this space", reason=Reason.INVITE_OTHER_SPACE)
        if expires <= ctx.now:
            raise PermissionDenied("the invite link has expired", reason=Reason.INVITE_EXPIRED)
        source, link_id = ev.JOIN_SOURCE_INVITE_LINK, cmd.invite_link_id
    elif user in state.invited:
        source = ev.JOIN_SOURCE_INVITED
    admitted = source != ev.JOIN_SOURCE_DIRECT or user == state.host_user_id or user in state.co_hosts
    if state.join_policy == types.JOIN_POLICY_INVITED_ONLY and not admitted:
        raise PermissionDenied(
            "this space is invite-only: you need an invitation or an invite link", reason=Reason.NOT_INVITED
        )
    role = types.ROLE_HOST if user == state.host_user_id else types.ROLE_LISTENER
    if user == state.host_user_id:
        source = ev.JOIN_SOURCE_HOST
    return [
        ev.ParticipantJoined(
            space_id=state.space_id, user_id=user, role=role, source=source, invite_link_id=link_id
        )
    ]


def _leave_event(state: Space, user_id: str, reason: int, *, mass_time_out: bool = False) -> list[Message]:
    if not _is_in(state, user_id):
        return []
    return [
        ev.ParticipantLeft(
            space_id=state.space_id,
            user_id=user_id,
            reason=reason,
            previous_role=state.role_of(user_id),
            mass_time_out=mass_time_out,
        )
    ]


def _leave(cmd: c.LeaveSpace, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    return _leave_event(state, ctx.actor_user_id, ev.LEAVE_REASON_LEFT)


def _time_out(cmd: c.TimeOutParticipant, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied("only presence reports timed-out participants", reason=Reason.SYSTEM_ONLY)
    return _leave_event(state, cmd.user_id, ev.LEAVE_REASON_TIMED_OUT, mass_time_out=cmd.mass_time_out)


def _remove(cmd: c.RemoveParticipant, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        _require_manager(state, ctx, "remove participants")
    if cmd.user_id == state.host_user_id:
        raise PermissionDenied("the host cannot be removed", reason=Reason.CANNOT_REMOVE_HOST)
    if cmd.user_id == ctx.actor_user_id:
        raise FailedPrecondition(
            "you cannot remove yourself (that would bar you from rejoining); use LeaveSpace",
            reason=Reason.CANNOT_REMOVE_SELF,
        )
    if not _is_in(state, cmd.user_id):
        if state.is_removed(cmd.user_id) or (state.is_over and SYSTEM_CLAIM in ctx.claims):
            return []  # barred already, or a Space nobody can join any more
        if SYSTEM_CLAIM in ctx.claims:
            # Moderation's bar, recorded where joins are decided: a join decided after it is refused,
            # one decided before it is in the stream ahead of it and was taken out above (ADR 0014).
            return [ev.ParticipantBarred(space_id=state.space_id, user_id=cmd.user_id)]
        raise FailedPrecondition(
            f"user {cmd.user_id!r} is not in the space", reason=Reason.USER_NOT_A_PARTICIPANT
        )
    return _leave_event(state, cmd.user_id, ev.LEAVE_REASON_REMOVED)


def _evict(cmd: c.EvictListeners, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied("only the room service itself evicts listeners", reason=Reason.SYSTEM_ONLY)
    return [
        left
        for user_id in dict.fromkeys(cmd.user_ids)
        if state.role_of(user_id) == types.ROLE_LISTENER and not state.admits(user_id)
        for left in _leave_event(state, user_id, ev.LEAVE_REASON_POLICY)
    ]


def _grow_shards(cmd: c.GrowListenerShards, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied(
            "only the room service itself grows listener shards", reason=Reason.SYSTEM_ONLY
        )
    _require_live(state)
    check = Validator()
    for name, value in (("shards", cmd.shards), ("lanes", cmd.lanes)):
        check.check(
            1 <= value <= limits.max_listener_shards and value & (value - 1) == 0,
            name,
            f"a power of two from 1 to {limits.max_listener_shards}",
        )
    check.raise_if_any("GrowListenerShards has invalid fields")
    if cmd.shards <= state.listener_shards:
        return []
    lanes = state.listener_lanes if state.listener_shards >= 2 else cmd.lanes
    return [ev.ListenerShardsGrown(space_id=state.space_id, shards=cmd.shards, lanes=lanes)]


def _release_leaver(cmd: c.ReleaseLeaver, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if SYSTEM_CLAIM not in ctx.claims:
        raise PermissionDenied(
            "only the room service itself releases a leaver's slot", reason=Reason.SYSTEM_ONLY
        )
    user, released = cmd.user_id, []
    if state.is_over or state.is_in(user) or not state.holds_anything(user):
        return []  # over: every role lapsed; in: through the own stream; or nothing to release
    # Back through a shard (the shards consulted): asked only of a leaver who holds something, so a
    # plain listener's leave never costs a read of the shards.
    if cmd.unless_back and _is_in(state, user):
        return []
    if user in state.co_hosts:
        released.append(ev.CoHostRemoved(space_id=state.space_id, user_id=user))
    if user in state.speakers:
        released.append(
            ev.SpeakerRemoved(space_id=state.space_id, user_id=user, reason=ev.SPEAKER_REMOVAL_REASON_LEFT)
        )
    if state.requested_at(user) is not None:
        released.append(ev.SpeakRequestWithdrawn(space_id=state.space_id, user_id=user))
    return released


# Invites


def _invite(cmd: c.InviteUsers, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "invite people")
    _require_not_over(state)
    check = Validator()
    check.check(
        0 < len(cmd.user_ids) <= limits.max_invitees_per_call,
        "user_ids",
        f"give 1 to {limits.max_invitees_per_call} user ids",
    )
    check.check(
        all(u.strip() and len(u) <= limits.max_user_id for u in cmd.user_ids),
        "user_ids",
        f"user ids must be non-empty and at most {limits.max_user_id} characters",
    )
    check.raise_if_any("InviteUsers has invalid fields")
    new = [u for u in dict.fromkeys(cmd.user_ids) if u not in state.invited]
    return [ev.UsersInvited(space_id=state.space_id, user_ids=new)] if new else []


def _create_link(cmd: c.CreateInviteLink, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "create invite links")
    _require_not_over(state)
    check = Validator()
    check.check(bool(cmd.link_id.strip()), "link_id", "must not be empty")
    check.check(
        ctx.now < cmd.expires_at <= ctx.now + limits.max_invite_link_ttl,
        "ttl",
        f"must be positive and at most {limits.max_invite_link_ttl.days} days",
    )
    check.raise_if_any("CreateInviteLink has invalid fields")
    if cmd.link_id in state.invite_links:
        return []
    return [
        _timestamp(
            ev.InviteLinkCreated(space_id=state.space_id, link_id=cmd.link_id), "expires_at", cmd.expires_at
        )
    ]


# Roles


def _voices_check(state: Space, limits: RoomLimits) -> None:
    if len(state.speakers) >= limits.max_speakers:
        raise ResourceExhausted(
            f"the space already has {limits.max_speakers} speakers; revoke one first",
            reason=Reason.SPEAKER_LIMIT_REACHED,
        )


def _add_co_host(cmd: c.AddCoHost, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "add co-hosts")
    _require_live(state)
    if cmd.user_id == state.host_user_id:
        raise FailedPrecondition("the host cannot also be a co-host", reason=Reason.ALREADY_HOST)
    if cmd.user_id in state.co_hosts:
        return []
    _require_participant(state, cmd.user_id)
    if len(state.co_hosts) >= limits.max_co_hosts:
        raise ResourceExhausted(
            f"the space already has {limits.max_co_hosts} co-hosts; remove one first",
            reason=Reason.CO_HOST_LIMIT_REACHED,
        )
    return [ev.CoHostAdded(space_id=state.space_id, user_id=cmd.user_id)]


def _remove_co_host(cmd: c.RemoveCoHost, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_host(state, ctx, "remove co-hosts")
    _require_live(state)
    if cmd.user_id not in state.co_hosts:
        raise FailedPrecondition(f"user {cmd.user_id!r} is not a co-host", reason=Reason.NOT_A_CO_HOST)
    return [ev.CoHostRemoved(space_id=state.space_id, user_id=cmd.user_id)]


def _invite_to_speak(cmd: c.InviteToSpeak, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "invite speakers")
    _require_live(state)
    _require_participant(state, cmd.user_id)
    role = state.role_of(cmd.user_id)
    if role == types.ROLE_SPEAKER:
        return []
    if role != types.ROLE_LISTENER:
        raise FailedPrecondition("hosts and co-hosts already speak", reason=Reason.ALREADY_A_VOICE)
    _voices_check(state, limits)
    return [ev.SpeakerAdded(space_id=state.space_id, user_id=cmd.user_id, source=ev.SPEAKER_SOURCE_INVITED)]


def _revoke_speaker(cmd: c.RevokeSpeaker, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "revoke speakers")
    _require_live(state)
    if cmd.user_id not in state.speakers:
        raise FailedPrecondition(f"user {cmd.user_id!r} is not a speaker", reason=Reason.USER_NOT_A_SPEAKER)
    return [
        ev.SpeakerRemoved(
            space_id=state.space_id, user_id=cmd.user_id, reason=ev.SPEAKER_REMOVAL_REASON_REVOKED
        )
    ]


def _step_down(cmd: c.StepDown, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    user = ctx.actor_user_id
    _require_live(state)
    if user in state.speakers:
        return [
            ev.SpeakerRemoved(
                space_id=state.space_id, user_id=user, reason=ev.SPEAKER_REMOVAL_REASON_STEPPED_DOWN
            )
        ]
    if user in state.co_hosts:
        return [ev.CoHostRemoved(space_id=state.space_id, user_id=user)]
    if user == state.host_user_id:
        raise FailedPrecondition("the host cannot step down; end the space instead", reason=Reason.IS_HOST)
    return []


# Requests to speak


def _request(cmd: c.RequestToSpeak, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    user = ctx.actor_user_id
    _require_live(state)
    _require_participant(state, user)
    if state.role_of(user) != types.ROLE_LISTENER:
        raise FailedPrecondition("you can already speak", reason=Reason.ALREADY_A_VOICE)
    if state.requested_at(user) is not None:
        return []
    if len(state.request_queue) >= limits.max_speak_requests:
        raise ResourceExhausted(
            "too many pending requests to speak; try later", reason=Reason.REQUEST_QUEUE_FULL
        )
    return [ev.SpeakRequested(space_id=state.space_id, user_id=user)]


def _withdraw(cmd: c.WithdrawSpeakRequest, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    if state.requested_at(ctx.actor_user_id) is None:
        return []
    return [ev.SpeakRequestWithdrawn(space_id=state.space_id, user_id=ctx.actor_user_id)]


def _pending_request(state: Space, user_id: str) -> datetime:
    requested = state.requested_at(user_id)
    if requested is None:
        raise FailedPrecondition(f"user {user_id!r} has not asked to speak", reason=Reason.NO_SPEAK_REQUEST)
    return requested


def _approve(cmd: c.ApproveSpeakRequest, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "approve requests to speak")
    _require_live(state)
    requested = _pending_request(state, cmd.user_id)
    _voices_check(state, limits)
    approved = _timestamp(
        ev.SpeakRequestApproved(space_id=state.space_id, user_id=cmd.user_id), "requested_at", requested
    )
    return [
        approved,
        ev.SpeakerAdded(
            space_id=state.space_id, user_id=cmd.user_id, source=ev.SPEAKER_SOURCE_REQUEST_APPROVED
        ),
    ]


def _deny(cmd: c.DenySpeakRequest, state: Space, ctx: Context, limits: RoomLimits) -> list[Message]:
    _require_manager(state, ctx, "deny requests to speak")
    _require_live(state)
    requested = _pending_request(state, cmd.user_id)
    return [
        _timestamp(
            ev.SpeakRequestDenied(space_id=state.space_id, user_id=cmd.user_id), "requested_at", requested
        )
    ]


_HANDLERS: dict[type, Callable[..., list[Message]]] = {
    c.CreateSpace: _create,
    c.UpdateSpace: _update,
    c.StartSpace: _start,
    c.EndSpace: _end,
    c.EndAbandonedSpace: _end_abandoned,
    c.SubscribeToSpace: _subscribe,
    c.UnsubscribeFromSpace: _unsubscribe,
    c.RemindSubscribers: _remind,
    c.ExpireSpace: _expire,
    c.CancelSpace: _cancel,
    c.JoinSpace: _join,
    c.LeaveSpace: _leave,
    c.TimeOutParticipant: _time_out,
    c.RemoveParticipant: _remove,
    c.EvictListeners: _evict,
    c.GrowListenerShards: _grow_shards,
    c.ReleaseLeaver: _release_leaver,
    c.InviteUsers: _invite,
    c.CreateInviteLink: _create_link,
    c.AddCoHost: _add_co_host,
    c.RemoveCoHost: _remove_co_host,
    c.InviteToSpeak: _invite_to_speak,
    c.RevokeSpeaker: _revoke_speaker,
    c.StepDown: _step_down,
    c.RequestToSpeak: _request,
    c.WithdrawSpeakRequest: _withdraw,
    c.ApproveSpeakRequest: _approve,
    c.DenySpeakRequest: _deny,
}
