"""One Space's figures, folded from its events: the one implementation, for analytics and `podium report`.

    apply_room(stats, members, event, at, version, stream) -> closed windows   (in stream order)
    apply_talking(stats, stream, version, event)                        (order does not matter)
    apply_replay(stats, stream, version, event)                         (order does not matter)
    close_windows(stats, until)                    -> closed windows   (a clock tick)
    snapshot(stats, as_of, final)                  -> SpaceStats

`stats` is the Space's value (small: counters, the membership `Roster`, the
speaking-role holders), stored as plain JSON values so faust tables can keep
it. `members` maps `member_key(space, user)` to that user's entry, one per
user, so a Space with thousands of listeners never rewrites a big value; analytics
keeps it in a faust table, `podium report` (`libs.analytics.space_report`) in a
dict. Who is in and in which role is the membership fold every service shares
(`libs.domain.membership`); this module counts with it.

Only room events change counts and windows, and they arrive in stream order:
each of the Space's room streams (its own and its listener shards, ADR 0012)
in its own order, interleaved as the room topic's partition holds them, which
a rebuild reads the same way. Talking and replay events only add to sums. So
the figures are a function of the events alone, never of when or in which
interleaving of the topics they were processed: a rebuild from the log gives
the same values. Who is in, and in which role, does not depend on how the room
streams interleave either (`libs.domain.membership`); what accrues with time
between room events (listener-seconds, windows, settling) follows the
partition's order.

Listeners are users in the listener role, including a speaker moved back to
listening. Peak and unique listeners count a listener once the role has
settled: held for `SETTLE_SECONDS`. So someone who joins and is made a speaker
(or co-host) moments later counts as a speaker, never as a listener for the
milliseconds before the promotion; a listening stretch that settles counts from
then on. Unique listeners are the users with at least one settled listening
stretch. Current listeners, listener-minutes and the per-window series count
everyone in the listener role at the moment.

Time in a speaking role (`speaking_role_seconds`: host, co-host, speaker) and
talking time (`talking_seconds`: the media relay's `SpeakerStoppedTalking`) are
separate figures: a host who never publishes audio holds the role, and talks 0 s.
"""

from __future__ import annotations

import statistics
from collections.abc import MutableMapping

from google.protobuf.timestamp_pb2 import Timestamp

from libs.domain import membership as ms
from libs.domain.streams import is_space_stream
from podium.analytics.v1 import analytics_stats_pb2 as an
from podium.media.v1 import media_events_pb2 as mev
from podium.replay.v1 import replay_events_pb2 as rpe
from podium.room.v1 import room_events_pb2 as rev
from podium.room.v1 import room_types_pb2 as rt

SOURCES = {
    rev.JOIN_SOURCE_DIRECT: "direct",
    rev.JOIN_SOURCE_INVITE_LINK: "invite link",
    rev.JOIN_SOURCE_INVITED: "invited",
    rev.JOIN_SOURCE_HOST: "host",
}


#: A listener counts towards peak and unique listeners once the role has been held this long.
SETTLE_SECONDS = 1.0


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
        "roster": _dump_roster(ms.EMPTY),  # who is in and in which role: the membership fold
        "listeners": 0,
        "settled": 0,  # listeners whose role has settled (held SETTLE_SECONDS)
        "pending": {},  # user -> [since, counted before]: listening stretches not settled yet
        "peak": 0,
        "unique": 0,
        "listener_seconds": 0.0,
        "voices": {},  # user -> since: who holds a speaking role now
        "role_seconds": {},  # user -> seconds held, closed stretches only
        "talking": {},  # user -> seconds talked
        "requests": 0,
        "approved": 0,
        "waits": [],
        "joins": {},
        "listens": 0,
        "room_version": 0,  # the Space's own room stream: the last version folded in
        "shard_versions": {},  # its listener shard streams -> last version folded in
        "versions": {},  # other streams (media, replay) -> last version folded in
        "window_start": None,  # the open window: start, listeners at start, peak inside it
        "window_first": 0,
        "window_peak": 0,
    }


def is_live(stats: dict) -> bool:
    return stats["started_at"] is not None and stats["ended_at"] is None


def room_version(stats: dict, stream_id: str | None = None) -> int:
    """The last version folded in of the Space's room stream `stream_id` (its own when none is named)."""
    shard = _shard(stats, stream_id)
    return stats.get("shard_versions", {}).get(shard, 0) if shard else stats["room_version"]


def apply_room(
    stats: dict,
    members: MutableMapping[str, dict],
    event,
    at: float,
    version: int,
    stream_id: str | None = None,
) -> list[an.ListenersInWindow]:
    """Folds one room event, the next by version of its stream `stream_id` (the Space's own when
    none is named); returns the windows it closed."""
    shard = _shard(stats, stream_id)
    if version <= room_version(stats, shard):
        return []  # a duplicate delivery
    if shard:
        stats.setdefault("shard_versions", {})[shard] = version
    else:
        stats["room_version"] = version
    members = MembersAsOf(members, version, shard)
    _upcast(stats)
    closed = close_windows(stats, at) if is_live(stats) else []
    # An entry written at this version reads as it was before it (MembersAsOf), so who has just
    # settled is passed on, not read back.
    settled_now = _settle(stats, members, at)
    _advance(stats, at)
    roster = _roster(stats)
    user = ms.subject(event)
    key = member_key(stats["space_id"], user) if user is not None else ""
    entry = members.get(key) if user is not None else None
    before = _member(entry, stats, roster, user)
    after_roster, after = ms.evolve(roster, before, event, at)
    listened = bool(entry and entry["listened"]) or user in settled_now
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
        case rev.SpeakRequested():
            stats["requests"] += 1
        case rev.SpeakRequestApproved():
            stats["approved"] += 1
            if before.hand_raised_at is not None:
                stats["waits"].append(at - before.hand_raised_at)
        case rev.SpaceEnded():
            for voice in list(stats["voices"]):
                _voice_stops(stats, voice, at)
            stats["pending"], stats["settled"] = {}, 0
            stats["ended_at"] = at
            closed += _close_final_window(stats, at)
    if user is not None:
        role_before, role_after = ms.role_of(roster, before), ms.role_of(after_roster, after)
        if role_after in ms.VOICES and role_before not in ms.VOICES:
            _voice_starts(stats, user, at)
        elif role_before in ms.VOICES and role_after not in ms.VOICES:
            _voice_stops(stats, user, at)
        if role_after == rt.ROLE_LISTENER and role_before != rt.ROLE_LISTENER:
            stats["pending"][user] = [at, listened]
        elif role_before == rt.ROLE_LISTENER and role_after != rt.ROLE_LISTENER:
            if stats["pending"].pop(user, None) is None:
                stats["settled"] -= 1
        if after is not before or listened != bool(entry and entry["listened"]):
            members[key] = {"member": _dump_member(after), "listened": listened}
    if after_roster is not roster:
        stats["roster"] = _dump_roster(after_roster)
    stats["listeners"] = after_roster.listeners
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
    peak, unique = _settled_by(stats, as_of)
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
        peak_listeners=peak,
        unique_listeners=unique,
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


def _settle(stats: dict, members: MutableMapping[str, dict], until: float) -> set[str]:
    """Counts the listening stretches that have lasted SETTLE_SECONDS by `until`, in the order they
    settled: each raises the settled count (and the peak), and a user's first one the unique count.
    Returns the users counted as unique listeners for the first time."""
    first: set[str] = set()
    due = sorted(
        (since, user) for user, (since, _) in stats["pending"].items() if since + SETTLE_SECONDS <= until
    )
    for _, user in due:
        _, counted = stats["pending"].pop(user)
        stats["settled"] += 1
        stats["peak"] = max(stats["peak"], stats["settled"])
        if not counted:
            stats["unique"] += 1
            first.add(user)
            key = member_key(stats["space_id"], user)
            entry = members.get(key)
            if entry is not None:
                members[key] = {k: v for k, v in entry.items() if k not in MARKS} | {"listened": True}
    return first


def _settled_by(stats: dict, as_of: float) -> tuple[int, int]:
    """Peak and unique listeners as of `as_of`, counting the stretches that will have settled by
    then (without folding them in)."""
    pending = stats.get("pending", {})
    due = sorted(since for since, _ in pending.values() if since + SETTLE_SECONDS <= as_of)
    peak = max(stats["peak"], stats.get("settled", 0) + len(due))
    unique = stats["unique"] + sum(
        1 for since, counted in pending.values() if since + SETTLE_SECONDS <= as_of and not counted
    )
    return peak, unique


def _upcast(stats: dict) -> None:
    """Figures written before listeners settled: everyone listening then counts as settled."""
    if "pending" not in stats:
        stats["pending"], stats["settled"] = {}, stats["listeners"]
        stats["peak"] = max(stats["peak"], stats["settled"])


def _shard(stats: dict, stream_id: str | None) -> str:
    """The listener shard stream `stream_id` names, or "" for the Space's own room stream."""
    return "" if not stream_id or is_space_stream(stream_id, stats["space_id"]) else stream_id


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


MARKS = ("version", "stream", "prior")  # what MembersAsOf adds to a member's entry


class MembersAsOf(MutableMapping):
    """The members table as room event `version` of stream `shard` ("" for the Space's own) must see it.

    The Space's figures and its members are two tables, written one after the other with no
    transaction. A crash between the writes leaves a member already changed by an event whose
    figures were lost; the event is then folded again, and must see the member as it was before.
    So each entry records the event that wrote it (its stream and version: every stream numbers its
    events from 1) and the entry it replaced. (The writes reach the broker in the order they are
    made, so a member is at most that one event ahead.)
    """

    def __init__(self, table: MutableMapping[str, dict], version: int, shard: str = ""):
        self.table, self.version, self.shard = table, version, shard

    def __getitem__(self, key: str) -> dict:
        entry = self.table[key]
        if entry.get("version") == self.version and entry.get("stream", "") == self.shard:
            if entry.get("prior") is None:
                raise KeyError(key)
            return entry["prior"]
        return entry

    def __setitem__(self, key: str, value: dict) -> None:
        prior = self.get(key)
        if prior is not None:
            prior = {k: v for k, v in prior.items() if k not in MARKS}
        self.table[key] = {**value, "version": self.version, "stream": self.shard, "prior": prior}

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self):
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def _dump_roster(r: ms.Roster) -> list:
    return [r.space_id, r.host_user_id, r.state, list(r.co_hosts), list(r.speakers), r.present, r.listeners]


def _dump_member(m: ms.Member) -> list:
    return [m.role, m.joined_at, m.muted, m.mute_kind, m.hand_raised_at, m.removed, m.barred]


def _roster(stats: dict) -> ms.Roster:
    dumped = stats.get("roster")
    if dumped is None:  # written before the figures folded membership: upcast
        return _upcast_roster(stats)
    space_id, host, state, co_hosts, speakers, present, listeners = dumped
    return ms.Roster(space_id, host, state, tuple(co_hosts), tuple(speakers), present, listeners)


def _member(entry: dict | None, stats: dict, roster: ms.Roster, user: str | None) -> ms.Member:
    if entry is None:
        return ms.NOBODY
    dumped = entry.get("member")
    if dumped is None:  # written before the figures folded membership: {"state", "listened"}
        voice = rt.ROLE_HOST if user == roster.host_user_id else rt.ROLE_SPEAKER
        role = {"listener": rt.ROLE_LISTENER, "voice": voice}.get(entry.get("state"), ms.NOT_IN)
        return ms.Member(role=role, hand_raised_at=stats.get("requested", {}).get(user))
    return ms.Member(*dumped)


def _upcast_roster(stats: dict) -> ms.Roster:
    """The roster an older `stats` implies: its counts, its voices (as speakers), its lifecycle."""
    if stats["ended_at"] is not None:
        return ms.Roster(stats["space_id"], stats["host"], rt.SPACE_STATE_ENDED)
    state = rt.SPACE_STATE_LIVE if stats["started_at"] is not None else rt.SPACE_STATE_CREATED
    if not stats["host"]:
        state = rt.SPACE_STATE_UNSPECIFIED
    speakers = tuple(u for u in stats["voices"] if u != stats["host"])
    present = stats["listeners"] + len(stats["voices"])
    return ms.Roster(stats["space_id"], stats["host"], state, (), speakers, present, stats["listeners"])


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
