"""evolve(state, event, occurred_at) -> state: what each room event means.

The write side folds it over a Space's stream, and the room's own directory
over the topic. Membership and roles (who is in, in which role, hands raised,
removed) and the Space's lifecycle are folded by `libs.domain.membership`, the
one fold every service reuses: this function hands each event to it and folds
only what is the room's own (the Space's description, invitations, the order
of the queue to speak, since when it is unattended). Each event costs O(1),
whatever the Space's size: the membership is a persistent map, and the value
given is never changed. Unknown events leave the state as it was, so older
code can read newer streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.message import Message

from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.state import NO_GUESTS, Space, managers_present


def evolve(state: Space, event: Message, occurred_at: datetime) -> Space:
    membership = state.membership.apply(event, occurred_at)
    apply = _APPLIERS.get(type(event))
    next_state = replace(state, membership=membership, version=state.version + 1)
    if apply is not None:
        apply(state, next_state.__dict__, event, occurred_at)
    return next_state


def replace(original: Space, /, **changes) -> Space:
    """A copy of the Space `original` with `changes`: `dataclasses.replace` without re-running __init__.

    Views fold millions of events through here; this is what keeps a rebuild fast.
    """
    copy = object.__new__(Space)
    copy.__dict__.update(original.__dict__)
    copy.__dict__.update(changes)
    return copy


# The room's own part of each event. Each applier gets the state before the event (`s`) and the
# fields of the fresh copy that `evolve` returns (`new`, whose membership is already the one after
# the event), and sets what changes in it; the copy is not yet shared, so this is still pure.


def _timestamp(message: Message, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def _created(s: Space, new: dict, e: ev.SpaceCreated, at: datetime) -> None:
    new.update(
        title=e.title,
        description=e.description,
        join_policy=e.join_policy,
        scheduled_start=_timestamp(e, "scheduled_start"),
        recording_enabled=e.recording_enabled,
        topics=tuple(e.topics),
        language=e.language,
        created_at=at,
    )


def _updated(s: Space, new: dict, e: ev.SpaceUpdated, at: datetime) -> None:
    for name in e.changed_fields:
        if name == "scheduled_start":
            new[name] = _timestamp(e, name)
            new["reminded"] = frozenset()  # the reminders are due again for the new start
        elif name == "topics":
            new[name] = tuple(e.topics)
        elif name in ("title", "description", "join_policy", "recording_enabled", "language"):
            new[name] = getattr(e, name)


def _started(s: Space, new: dict, e: ev.SpaceStarted, at: datetime) -> None:
    new.update(started_at=at, unattended_since=at)


def _ended(s: Space, new: dict, e: ev.SpaceEnded, at: datetime) -> None:
    """Ending a Space empties it (the membership says nobody is in); requests lapse."""
    new.update(
        ended_at=at,
        request_queue=(),
        unattended_since=None,
        unattended_on_evidence=True,
        link_guests=NO_GUESTS,
    )


def _cancelled(s: Space, new: dict, e: ev.SpaceCancelled, at: datetime) -> None:
    new["ended_at"] = at


def _subscribed(s: Space, new: dict, e: ev.SpaceSubscribed, at: datetime) -> None:
    new["subscribers"] = s.subscribers.set(e.user_id, at)


def _unsubscribed(s: Space, new: dict, e: ev.SpaceUnsubscribed, at: datetime) -> None:
    if e.user_id in s.subscribers:
        new["subscribers"] = s.subscribers.delete(e.user_id)


def _reminded(s: Space, new: dict, e: ev.SpaceReminder, at: datetime) -> None:
    if e.kind != ev.REMINDER_KIND_RESCHEDULED:
        new["reminded"] = s.reminded | {e.kind}


def _joined(s: Space, new: dict, e: ev.ParticipantJoined, at: datetime) -> None:
    if e.user_id == s.host_user_id or e.user_id in s.co_hosts:
        new.update(unattended_since=None, unattended_on_evidence=True)
    if e.source == ev.JOIN_SOURCE_INVITE_LINK:
        new["link_guests"] = s.link_guests.set(e.user_id, e.invite_link_id)


def _unattended_check(s: Space, new: dict, at: datetime, on_evidence: bool = True) -> None:
    """A live Space left without its host and co-hosts is unattended from now; not on evidence when
    the last of them left in a mass time-out."""
    if s.is_live and s.unattended_since is None and not managers_present(new["membership"]):
        new.update(unattended_since=at, unattended_on_evidence=on_evidence)


def _lower_hand(s: Space, new: dict, user_id: str) -> None:
    if s.requested_at(user_id) is not None:
        new["request_queue"] = tuple(u for u in s.request_queue if u != user_id)


def _left(s: Space, new: dict, e: ev.ParticipantLeft, at: datetime) -> None:
    _lower_hand(s, new, e.user_id)
    if e.user_id in s.link_guests:
        new["link_guests"] = s.link_guests.delete(e.user_id)
    _unattended_check(s, new, at, on_evidence=not e.mass_time_out)


def _invited(s: Space, new: dict, e: ev.UsersInvited, at: datetime) -> None:
    new["invited"] = s.invited | set(e.user_ids)


def _link_created(s: Space, new: dict, e: ev.InviteLinkCreated, at: datetime) -> None:
    new["invite_links"] = {**s.invite_links, e.link_id: e.expires_at.ToDatetime(tzinfo=UTC)}


def _co_host_added(s: Space, new: dict, e: ev.CoHostAdded, at: datetime) -> None:
    _lower_hand(s, new, e.user_id)
    if s.is_in(e.user_id):
        new.update(unattended_since=None, unattended_on_evidence=True)


def _co_host_removed(s: Space, new: dict, e: ev.CoHostRemoved, at: datetime) -> None:
    _unattended_check(s, new, at)


def _speaker_added(s: Space, new: dict, e: ev.SpeakerAdded, at: datetime) -> None:
    _lower_hand(s, new, e.user_id)


def _speak_requested(s: Space, new: dict, e: ev.SpeakRequested, at: datetime) -> None:
    if s.requested_at(e.user_id) is None:  # a raised hand keeps its place in the queue
        new["request_queue"] = (*s.request_queue, e.user_id)


def _request_closed(s: Space, new: dict, e: Message, at: datetime) -> None:
    _lower_hand(s, new, e.user_id)


def _shards_grown(s: Space, new: dict, e: ev.ListenerShardsGrown, at: datetime) -> None:
    new["listener_shards"] = max(s.listener_shards, e.shards)
    if e.lanes:  # 0: written before lanes existed, one lane
        new["listener_lanes"] = e.lanes


_APPLIERS = {
    ev.SpaceCreated: _created,
    ev.SpaceUpdated: _updated,
    ev.SpaceStarted: _started,
    ev.SpaceEnded: _ended,
    ev.SpaceCancelled: _cancelled,
    ev.ParticipantJoined: _joined,
    ev.ParticipantLeft: _left,
    ev.UsersInvited: _invited,
    ev.InviteLinkCreated: _link_created,
    ev.CoHostAdded: _co_host_added,
    ev.CoHostRemoved: _co_host_removed,
    ev.SpeakerAdded: _speaker_added,
    ev.SpeakRequested: _speak_requested,
    ev.SpeakRequestWithdrawn: _request_closed,
    ev.SpeakRequestApproved: _request_closed,
    ev.SpeakRequestDenied: _request_closed,
    ev.SpaceSubscribed: _subscribed,
    ev.SpaceUnsubscribed: _unsubscribed,
    ev.SpaceReminder: _reminded,
    ev.ListenerShardsGrown: _shards_grown,
}


def with_members(space: Space, members: Iterable[tuple[str, datetime]]) -> Space:
    """The Space's own state with users who are in through its shards (user, when they joined) in
    it too, each in the role the own stream lists them in (a voice) or as a listener: what the
    Space's own commands are decided on, and what its participants are read from.

    As `evolve` of a listener's ParticipantJoined for each, the version kept, but in one pass: the
    membership folds them on one copy of its entries, and the room's own part of a join (`_joined`:
    the host or a co-host back, a link guest) depends only on the state before the joins, which
    they do not change. A Space of 100,000 is read, or evicted from, without 100,000 copies."""
    joins, now_in = [], set()
    for user_id, joined_at in members:
        # In already, or listed twice (the first time counts): as `is_in` on the state so far says,
        # which for a Space that is over is nobody.
        if space.is_in(user_id) or (user_id in now_in and not space.is_over):
            continue
        now_in.add(user_id)
        event = ev.ParticipantJoined(space_id=space.space_id, user_id=user_id, role=types.ROLE_LISTENER)
        joins.append((event, joined_at))
    if not joins:
        return space
    joined = replace(space, membership=space.membership.apply_all(joins))
    for event, joined_at in joins:
        _joined(space, joined.__dict__, event, joined_at)
    return joined


def with_counts(space: Space, present: int, listeners: int) -> Space:
    """The Space's own state counting `present` more participants, `listeners` of them listeners:
    those in through its listener shards, counted there, for a view that does not list them."""
    if not (present or listeners):
        return space
    roster = space.membership.roster
    counted = roster._replace(present=roster.present + present, listeners=roster.listeners + listeners)
    return replace(space, membership=space.membership._replace(roster=counted))
