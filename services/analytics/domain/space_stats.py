"""One Space's running figures, as plain values faust tables can store, and the fold over them.

    apply_room(stats, members, event, at)      -> closed windows   (in room-stream order)
    apply_talking(stats, event)                                     (order does not matter)
    apply_replay(stats, event)                                      (order does not matter)
    close_windows(stats, until)                -> closed windows   (a clock tick)
    snapshot(stats, as_of, final)              -> SpaceStats

`stats` is the Space's value (small: counters, the speaking-role holders, open
speak requests). `members` maps `member_key(space, user)` to that user's state
in the Space, one entry per user, so a Space with thousands of listeners never
rewrites a big value. Only room events change counts and windows, and they
arrive in stream order; talking and replay events only add to sums. So the
figures are a function of the events alone, never of when or in which
interleaving they were processed: a rebuild from the log gives the same values.

Listeners are counted as `libs.analytics.space_report` counts them (the same
figures `podium report` prints): a user in a listener role, including a
speaker who was moved back to listening; unique listeners are users who joined
as listeners.
"""

from __future__ import annotations

import statistics
from collections.abc import MutableMapping

from google.protobuf.timestamp_pb2 import Timestamp

from libs.analytics.space_report import SOURCES
from podium.analytics.v1 import analytics_stats_pb2 as an
from podium.media.v1 import media_events_pb2 as mev
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

VOICE_ROLES = (rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER)
LISTENER, VOICE, AWAY = "listener", "voice", "away"


def member_key(space_id: str, user_id: str) -> str:
    return f"{space_id}|{user_id}"


def empty(space_id: str, window_seconds: int) -> dict:
    return {
        "space_id": space_id,
        "title": "",
        "host": "",
        "window": window_seconds,
        "started_at": None,
        "ended_at": None,
        "last_at": None,  # time of the last room event folded in (listener-seconds run to here)
        "listeners": 0,
        "peak": 0,
        "unique": 0,
        "listener_seconds": 0.0,
        "voices": {},  # user -> since: who holds a speaking role now
        "role_seconds": {},  # user -> seconds held, closed stretches only
        "talking": {},  # user -> seconds talked
        "requests": 0,
        "approved": 0,
        "requested": {},  # user -> asked at: open requests
        "waits": [],
        "joins": {},
        "listens": 0,
        "room_version": 0,
        "versions": {},  # other streams (media, replay) -> last version folded in
        "window_start": None,  # the open window: start, listeners at start, peak inside it
        "window_first": 0,
        "window_peak": 0,
    }


def is_live(stats: dict) -> bool:
    return stats["started_at"] is not None and stats["ended_at"] is None


def apply_room(
    stats: dict, members: MutableMapping[str, dict], event, at: float, version: int
) -> list[an.ListenersInWindow]:
    """Folds one room event (the Space's next, by version); returns the windows it closed."""
    if version <= stats["room_version"]:
        return []  # a duplicate delivery
    stats["room_version"] = version
    members = MembersAsOf(members, version)
    closed = close_windows(stats, at) if is_live(stats) else []
    _advance(stats, at)
    match event:
        case rev.SpaceCreated():
            stats["title"], stats["host"] = event.title, event.host_user_id
        case rev.SpaceUpdated():
            if "title" in event.changed_fields:
                stats["title"] = event.title
        case rev.SpaceStarted():
            stats["started_at"] = at
            stats["window_start"] = _window_of(at, stats["window"])
            stats["window_first"] = stats["window_peak"] = stats["listeners"]
        case rev.ParticipantJoined():
            source = SOURCES.get(event.source, "other")
            stats["joins"][source] = stats["joins"].get(source, 0) + 1
            key = member_key(stats["space_id"], event.user_id)
            member = members.get(key)
            if event.role in VOICE_ROLES:
                _voice_starts(stats, event.user_id, at)
                members[key] = {"state": VOICE, "listened": bool(member and member["listened"])}
            elif member is None or member["state"] == AWAY:
                if member is None or not member["listened"]:
                    stats["unique"] += 1
                stats["listeners"] += 1
                members[key] = {"state": LISTENER, "listened": True}
        case rev.ParticipantLeft():
            _leaves(stats, members, event.user_id, at)
            stats["requested"].pop(event.user_id, None)
        case rev.SpeakerAdded() | rev.CoHostAdded():
            key = member_key(stats["space_id"], event.user_id)
            member = members.get(key)
            if member is not None and member["state"] == LISTENER:
                stats["listeners"] -= 1
            _voice_starts(stats, event.user_id, at)
            members[key] = {"state": VOICE, "listened": bool(member and member["listened"])}
        case rev.SpeakerRemoved() | rev.CoHostRemoved():
            key = member_key(stats["space_id"], event.user_id)
            member = members.get(key)
            _voice_stops(stats, event.user_id, at)
            if member is None or member["state"] != LISTENER:
                stats["listeners"] += 1
            members[key] = {"state": LISTENER, "listened": bool(member and member["listened"])}
        case rev.SpeakRequested():
            stats["requests"] += 1
            stats["requested"][event.user_id] = at
        case rev.SpeakRequestApproved():
            stats["approved"] += 1
            asked = stats["requested"].pop(event.user_id, None)
            if asked is not None:
                stats["waits"].append(at - asked)
        case rev.SpeakRequestWithdrawn() | rev.SpeakRequestDenied():
            stats["requested"].pop(event.user_id, None)
        case rev.SpaceEnded():
            for user in list(stats["voices"]):
                _voice_stops(stats, user, at)
            stats["ended_at"] = at
            closed += _close_final_window(stats, at)
            stats["listeners"] = 0
    stats["peak"] = max(stats["peak"], stats["listeners"])
    stats["window_peak"] = max(stats["window_peak"], stats["listeners"])
    return closed


def apply_talking(stats: dict, stream_id: str, version: int, event) -> bool:
    """Adds a finished stretch of talking. False for a duplicate."""
    if not _first_delivery(stats, stream_id, version):
        return False
    if isinstance(event, mev.SpeakerStoppedTalking):
        stats["talking"][event.user_id] = stats["talking"].get(event.user_id, 0.0) + event.talked_ms / 1000
    return True


def apply_replay(stats: dict, stream_id: str, version: int, event) -> bool:
    """Counts a replay listen. False for a duplicate."""
    if not _first_delivery(stats, stream_id, version):
        return False
    if isinstance(event, rpe.ReplayListened):
        stats["listens"] += 1
    return True


def close_windows(stats: dict, until: float) -> list[an.ListenersInWindow]:
    """Closes every open window that ended at or before `until` (no events inside it means the
    count held steady through it)."""
    closed = []
    start, width = stats["window_start"], stats["window"]
    while start is not None and start + width <= until:
        closed.append(_window(stats, start, stats["window_first"], stats["window_peak"], stats["listeners"]))
        start += width
        stats["window_first"] = stats["window_peak"] = stats["listeners"]
    stats["window_start"] = start
    return closed


def snapshot(stats: dict, as_of: float, *, final: bool = False) -> an.SpaceStats:
    """The figures as of `as_of` (no earlier than the last room event folded in)."""
    last = stats["last_at"]
    ongoing = stats["ended_at"] is None
    running = max(0.0, as_of - last) if last is not None and ongoing else 0.0
    role_seconds = dict(stats["role_seconds"])
    if ongoing:
        for user, since in stats["voices"].items():
            role_seconds[user] = role_seconds.get(user, 0.0) + max(0.0, as_of - since)
    out = an.SpaceStats(
        space_id=stats["space_id"],
        title=stats["title"],
        host_user_id=stats["host"],
        as_of=_timestamp(as_of),
        final=final,
        current_listeners=stats["listeners"],
        peak_listeners=stats["peak"],
        unique_listeners=stats["unique"],
        listener_minutes=(stats["listener_seconds"] + stats["listeners"] * running) / 60,
        speaking_role_seconds=role_seconds,
        talking_seconds=stats["talking"],
        speak_requests=stats["requests"],
        speak_requests_approved=stats["approved"],
        joins_by_source=stats["joins"],
        replay_listens=stats["listens"],
        room_version=stats["room_version"],
    )
    if stats["started_at"] is not None:
        out.started_at.CopyFrom(_timestamp(stats["started_at"]))
    if stats["ended_at"] is not None:
        out.ended_at.CopyFrom(_timestamp(stats["ended_at"]))
    if stats["waits"]:
        out.median_wait_seconds = statistics.median(stats["waits"])
    return out


def _first_delivery(stats: dict, stream_id: str, version: int) -> bool:
    if version <= stats["versions"].get(stream_id, 0):
        return False
    stats["versions"][stream_id] = version
    return True


def _advance(stats: dict, at: float) -> None:
    """Listener-seconds accrue between consecutive room events until the Space ends."""
    if stats["ended_at"] is None and stats["last_at"] is not None and at > stats["last_at"]:
        stats["listener_seconds"] += stats["listeners"] * (at - stats["last_at"])
    if stats["last_at"] is None or at > stats["last_at"]:
        stats["last_at"] = at


class MembersAsOf(MutableMapping):
    """The members table as room event `version` must see it.

    The Space's figures and its members are two tables, written one after the other with no
    transaction. A crash between the writes leaves a member already changed by an event whose
    figures were lost; the event is then folded again, and must see the member as it was before.
    So each entry records the version that wrote it and the entry it replaced. (The writes reach
    the broker in the order they are made, so a member is at most that one event ahead.)
    """

    def __init__(self, table: MutableMapping[str, dict], version: int):
        self.table, self.version = table, version

    def __getitem__(self, key: str) -> dict:
        entry = self.table[key]
        if entry.get("version") == self.version:
            if entry.get("prior") is None:
                raise KeyError(key)
            return entry["prior"]
        return entry

    def __setitem__(self, key: str, value: dict) -> None:
        prior = self.get(key)
        if prior is not None:
            prior = {k: v for k, v in prior.items() if k not in ("version", "prior")}
        self.table[key] = {**value, "version": self.version, "prior": prior}

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self):
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def _leaves(stats: dict, members: MutableMapping[str, dict], user: str, at: float) -> None:
    key = member_key(stats["space_id"], user)
    member = members.get(key)
    if member is None:
        return
    if member["state"] == LISTENER:
        stats["listeners"] -= 1
    elif member["state"] == VOICE:
        _voice_stops(stats, user, at)
    members[key] = {"state": AWAY, "listened": member["listened"]}


def _voice_starts(stats: dict, user: str, at: float) -> None:
    stats["voices"].setdefault(user, at)


def _voice_stops(stats: dict, user: str, at: float) -> None:
    since = stats["voices"].pop(user, None)
    if since is not None:
        stats["role_seconds"][user] = stats["role_seconds"].get(user, 0.0) + (at - since)


def _close_final_window(stats: dict, at: float) -> list[an.ListenersInWindow]:
    start = stats["window_start"]
    if start is None or at <= start:
        return []
    window = _window(stats, start, stats["window_first"], stats["window_peak"], 0)
    stats["window_start"] = None
    return [window]


def _window(stats: dict, start: float, first: int, peak: int, last: int) -> an.ListenersInWindow:
    return an.ListenersInWindow(
        space_id=stats["space_id"],
        window_start=_timestamp(start),
        window_seconds=stats["window"],
        listeners_at_start=first,
        peak_listeners=peak,
        listeners_at_end=last,
    )


def _window_of(at: float, width: int) -> float:
    return at - (at % width)


def _timestamp(at: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(at * 1e9))
    return ts
