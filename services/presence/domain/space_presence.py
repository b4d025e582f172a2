"""One Space's presence, as a plain value a faust table can store, and the rules over it.

    beat(state, gateway, users, now)     -> events   (joins and reconnects)
    time_out(state, user, at, cause)     -> event    (one user's connection is gone)
    drop_gateway(state, gateway, now)    -> events   (a gateway is gone)
    forget_gone(state, now)                          (reconnect graces that ran out)
    split_off(state, key, home)      -> moved        (the Space split further: parts.py)
    hand_over(state, users)          -> entries      (users now of another part)
    adopt(state, entries, unique)                    (users handed over from another part)
    follow_room(state, stream, version, event, at)   (the room says a user left, or the Space ended)

Each mutates the state dict it is given (it is the table's value, written back
by the caller) and returns the events to publish. A user who comes back within
`reconnect_grace` of timing out is a reconnect, not a new join. Counts follow:
current, peak and unique users present. Who is timed out, and when, is decided
on evidence (`evidence.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from libs.domain.streams import is_space_stream
from podium.presence.v1 import presence_events_pb2 as ev
from podium.presence.v1 import presence_types_pb2 as pt
from podium.room.v1 import room_events_pb2 as rev


@dataclass(frozen=True)
class PresenceRules:
    timeout_seconds: float = 30.0
    reconnect_grace_seconds: float = 60.0
    # An ended Space's value is dropped this long after the end (heartbeats already on their way
    # are still recognised as late, not taken for a new Space), so memory and the changelog's
    # recovery follow live Spaces, not history.
    forget_ended_after_seconds: float = 60.0
    # The evidence rules (evidence.py). A pause that can time a user out wrongly is longer than
    # the timeout less one report interval, so with gateways reporting at least every third of
    # the timeout, a gap of half of it in a partition's records is an outage, never normal traffic.
    gap_seconds: float = 15.0
    max_lag_seconds: float = 15.0  # behind the input, or its newest record older: no time-outs
    # A gateway's reports pulse the partitions they have no Space on this often: shorter than the gap,
    # so a partition with nothing but a gateway's pulses reads as continuous.
    pulse_every_seconds: float = 7.5
    # The brake: more than this share of a Space's present users (and at least `brake_min_users`
    # of them), or more than `brake_max_users` on a partition, overdue at once wait one more period.
    brake_share: float = 0.5
    brake_min_users: int = 3
    brake_max_users: int = 1000
    brake_hold_seconds: float = 30.0


# A Space's value records, per source, the position of the last record applied to it. After a
# crash the table (from its changelog) may be ahead of the committed offsets, since there are no
# transactions here, so the records since the last commit are delivered again: they are skipped,
# and no record is applied twice (a heartbeat replayed onto a later state would corrupt the counts).
# Heartbeats carry no version, so theirs is the partition offset. Room events carry their stream's
# version, and a Space's room events come on several streams (its own and its listener shards,
# libs.domain.streams), each numbered from 1 and ordered only within itself: so the Space stream's
# version is under ROOM and each shard's in a map under ROOM_SHARDS (a few hundred at most).
# ("room_offset", the room record's offset, was the older room marker.) A lost log is not repaired
# here: the operator's recovery empties the table's changelog (docs/operations.md).
HEARTBEATS, ROOM, ROOM_SHARDS = "heartbeats_offset", "room_version", "room_shard_versions"


def already_applied(state: dict, source: str, position: int) -> bool:
    """True if `state` already reflects the record at `position` of `source`; else marks it applied."""
    if position <= state.get(source, -1):
        return True
    state[source] = position
    return False


def room_applied(state: dict, stream_id: str, version: int) -> bool:
    """`already_applied` for version `version` of the Space's room stream `stream_id` (its own
    stream when none is named)."""
    if not stream_id or is_space_stream(stream_id, state["space_id"]):
        return already_applied(state, ROOM, version)
    return already_applied(state.setdefault(ROOM_SHARDS, {}), stream_id, version)


def follow_room(state: dict, stream_id: str, version: int, event: Message, at: float) -> bool:
    """What presence takes from a room event: a user left, or the Space ended (at `at`). True when
    `state` changed and is to be persisted; an event applied before changes nothing."""
    if room_applied(state, stream_id, version):
        return False
    if isinstance(event, rev.SpaceEnded):
        end(state, at)
        return True
    if isinstance(event, rev.ParticipantLeft) and event.user_id in state["present"]:
        leave(state, [event.user_id], at)
        return True
    return False


def empty(space_id: str) -> dict:
    return {
        "space_id": space_id,
        "present": {},  # user -> [gateway, connected_at, last_seen]
        "gone": {},  # user -> [gateway, timed_out_at]: inside the reconnect grace
        "unique": [],  # every user ever present, in order of first arrival
        "peak": 0,
        "version": 0,  # of this Space's presence event stream
        # Added when needed: "left" (user -> when the room said they left), "held" (user -> when
        # the brake held their time-out), "ended_at", and the positions of `already_applied`.
    }


def beat(state: dict, gateway: str, users: list[str], now: float, rules: PresenceRules) -> list[Message]:
    events: list[Message] = []
    present, gone = state["present"], state["gone"]
    seen: set[str] | None = None  # built only when someone arrives: most beats are from users present
    left = state.get("left", {})
    for user in users:
        entry = present.get(user)
        if entry is not None:
            entry[0], entry[2] = gateway, now
            continue
        if user in left:
            if now <= left[user]:
                continue  # a heartbeat from before the room saw them leave
            del left[user]
        returning = gone.pop(user, None)
        recent = returning is not None and now - returning[1] <= rules.reconnect_grace_seconds
        kind = ev.CONNECT_KIND_RECONNECT if recent else ev.CONNECT_KIND_NEW
        present[user] = [gateway, now, now]
        if seen is None:
            seen = set(state["unique"])
        if user not in seen:
            seen.add(user)
            state["unique"].append(user)
        events.append(
            ev.ParticipantConnected(space_id=state["space_id"], user_id=user, gateway_id=gateway, kind=kind)
        )
    state["peak"] = max(state["peak"], len(present))
    return events


def time_out(state: dict, user: str, at: float, cause: int, *, mass: bool = False) -> Message:
    """The user's connection is gone: they are no longer present, and may reconnect within the grace."""
    gateway = state["present"].pop(user)[0]
    state["gone"][user] = [gateway, at]
    state.get("held", {}).pop(user, None)
    return ev.ParticipantTimedOut(
        space_id=state["space_id"], user_id=user, gateway_id=gateway, cause=cause, mass_time_out=mass
    )


def forget_gone(state: dict, now: float, rules: PresenceRules) -> None:
    """Users timed out longer ago than the reconnect grace: back later, they are a new join."""
    forgotten = [u for u, (_g, at) in state["gone"].items() if now - at > rules.reconnect_grace_seconds]
    for user in forgotten:
        del state["gone"][user]


def drop_gateway(state: dict, gateway: str, now: float) -> list[Message]:
    held = [u for u, entry in state["present"].items() if entry[0] == gateway]
    return [time_out(state, u, now, ev.TIMEOUT_CAUSE_GATEWAY_DISCONNECTED) for u in held]


def hand_over(state: dict, users: list[str]) -> list[tuple[str, list]]:
    """These present users belong to another part of the Space now (it was split further): they
    leave this value with no event, uncounted here, and their entries go to the part that has them
    now (`adopt`)."""
    held = state.get("held", {})
    for user in users:
        held.pop(user, None)
    moved = set(users)
    state["unique"] = [u for u in state["unique"] if u not in moved]
    return [(user, state["present"].pop(user)) for user in users]


def split_off(state: dict, key: str, home: Callable[[str], str]) -> dict[str, tuple[list, list[str]]]:
    """The Space was split further and this value, under `key`, keeps only the users whose `home`
    is still `key`: for each other key, the entries of its users present here (`hand_over`) and
    those who were present here before, counted unique (`adopt` takes both). Their reconnect graces,
    held time-outs and recorded leaves are dropped."""
    leaving: dict[str, list[str]] = {}
    for user in state["present"]:
        if (there := home(user)) != key:
            leaving.setdefault(there, []).append(user)
    moved = {there: (hand_over(state, users), []) for there, users in leaving.items()}
    kept = []
    for user in state["unique"]:
        there = home(user)
        if there == key:
            kept.append(user)
        else:
            moved.setdefault(there, ([], []))[1].append(user)
    state["unique"] = kept
    for field in ("gone", "left", "held"):
        entries = state.get(field, {})
        for user in [u for u in entries if home(u) != key]:
            del entries[user]
    # The parts' peaks add up to the Space's: each starts again from who it holds now.
    state["peak"] = len(state["present"])
    return moved


def adopt(state: dict, entries: list[tuple[str, list]], unique: Iterable[str] = ()) -> None:
    """Users another part handed over (`hand_over`, `split_off`): present as they were there, with no
    event (they never left), unless they are present here already (they reported here since) or the
    room said they left after they were last seen; and `unique`, counted unique here from now on.
    Their heartbeats, or their absence, decide from here on."""
    present, left = state["present"], state.get("left", {})
    seen = set(state["unique"])
    for user, (gateway, connected_at, last_seen) in entries:
        if user in present or left.get(user, float("-inf")) >= last_seen:
            continue
        left.pop(user, None)
        state["gone"].pop(user, None)
        present[user] = [gateway, connected_at, last_seen]
        if user not in seen:
            seen.add(user)
            state["unique"].append(user)
    for user in unique:
        if user not in seen:
            seen.add(user)
            state["unique"].append(user)
    state["peak"] = max(state["peak"], len(present))


def present_user(user_id: str, entry: list) -> pt.PresentUser:
    """A present user's entry (`[gateway, connected_at, last_seen]`) as the API shows it."""
    gateway, connected_at, last_seen = entry
    user = pt.PresentUser(user_id=user_id, gateway_id=gateway)
    user.connected_at.FromNanoseconds(int(connected_at * 1e9))
    user.last_seen.FromNanoseconds(int(last_seen * 1e9))
    return user


def entry_of(user: pt.PresentUser) -> list:
    """`present_user` the other way."""
    return [user.gateway_id, user.connected_at.ToNanoseconds() / 1e9, user.last_seen.ToNanoseconds() / 1e9]


def counts(state: dict) -> tuple[int, int, int]:
    """(current, peak, unique) users present."""
    return len(state["present"]), state["peak"], len(state["unique"])


def end(state: dict, at: float) -> None:
    """The Space ended at `at`: everyone leaves, and nobody joins it again."""
    leave(state, list(state["present"]), at)
    state.setdefault("ended_at", at)


def forgettable(state: dict, now: float, rules: PresenceRules) -> bool:
    """Whether the Space ended long enough ago for its value to go (a tombstone in the changelog)."""
    ended = state.get("ended_at")
    return ended is not None and now - ended > rules.forget_ended_after_seconds


def leave(state: dict, users: list[str], at: float) -> None:
    """The room says these users left (or the Space ended) at `at`: they are not present any more.

    No event: the room's own event already says so, and this is not a timeout,
    so no reconnect grace either. Heartbeats written before `at` that arrive
    later (they travel on another topic) do not bring the user back.
    """
    left = state.setdefault("left", {})
    held = state.get("held", {})
    for user in users:
        state["present"].pop(user, None)
        state["gone"].pop(user, None)
        held.pop(user, None)
        left[user] = at
