"""Analytics over a Space whose room events come on several streams (listener shards, ADR 0012):
each stream numbered from 1, interleaved on the partition. Folded per stream, nothing is taken for
a duplicate of another stream's version or held behind it, a redelivery of any stream is dropped,
and the figures are the single-stream fold's."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from types import SimpleNamespace

from libs.analytics.space_figures import MARKS, apply_room, empty, room_version, snapshot
from libs.config.settings import PodiumSettings
from libs.domain import membership as ms
from libs.domain.streams import listener_shard_stream, space_stream
from libs.events.envelope import Causation, wrap
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt
from services.analytics.application.stream_processor import AnalyticsStreams
from tests.support.sharded_log import OnStream, merged, on_streams
from tests.unit.analytics.test_space_report import SCRIPT

S = "s"
T0 = 1_790_000_000.0
SHARDS = 4
MINUTE = 60
SCRIPT_AT = [(event, when.timestamp()) for event, when in SCRIPT]  # test_space_report's Space


def _joined(user: str, role: int = rt.ROLE_LISTENER) -> ev.ParticipantJoined:
    source = ev.JOIN_SOURCE_HOST if role == rt.ROLE_HOST else ev.JOIN_SOURCE_DIRECT
    return ev.ParticipantJoined(space_id=S, user_id=user, role=role, source=source)


def history(users: int = 24, *, ended: bool = True) -> list[tuple[object, float]]:
    """A Space in the room's order: listeners come and go on their shards while the Space's own
    stream lets some of them speak. Whoever leaves never held a voice or a raised hand: a leave
    racing a promotion or a request across streams is the room's tidy-up reaction to settle (ADR
    0012), not a consumer's, so only then does every merge give the same membership."""
    names = [f"u{i:02d}" for i in range(users)]
    events: list[object] = [
        ev.SpaceCreated(space_id=S, host_user_id="host", title="Sharded"),
        ev.SpaceStarted(space_id=S, host_user_id="host"),
        _joined("host", rt.ROLE_HOST),
    ]
    events += [_joined(user) for user in names]
    for i, user in enumerate(names):
        if i % 3 == 1:  # leaves; every other one comes back
            events.append(ev.ParticipantLeft(space_id=S, user_id=user, reason=ev.LEAVE_REASON_LEFT))
        elif i % 6 == 0:  # asks, and speaks
            events.append(ev.SpeakRequested(space_id=S, user_id=user))
            events.append(ev.SpeakRequestApproved(space_id=S, user_id=user))
            events.append(ev.SpeakerAdded(space_id=S, user_id=user))
        elif i % 6 == 3:
            events.append(ev.SpeakRequested(space_id=S, user_id=user))
            events.append(ev.SpeakRequestDenied(space_id=S, user_id=user))
    events += [_joined(user) for i, user in enumerate(names) if i % 6 == 1]
    events += [ev.SpeakerRemoved(space_id=S, user_id=names[0]), ev.CoHostAdded(space_id=S, user_id=names[2])]
    if ended:
        events.append(ev.SpaceEnded(space_id=S, reason=ev.END_REASON_HOST_ENDED))
    return [(event, T0 + 7 * n) for n, event in enumerate(events)]


def fold_one_stream(events) -> tuple[dict, dict, list]:
    """The Space as it was folded before shards: every event on its own stream, numbered 1, 2, ..."""
    stats, members, windows = empty(S, MINUTE), {}, []
    for version, (event, at) in enumerate(events, start=1):
        windows += apply_room(stats, members, event, at, version)
    return stats, members, windows


def fold(log: list[OnStream], stats=None, members=None) -> tuple[dict, dict, list]:
    stats = empty(S, MINUTE) if stats is None else stats
    members, windows = {} if members is None else members, []
    for item in log:
        windows += apply_room(stats, members, item.payload, item.at, item.version, item.stream_id)
    return stats, members, windows


def streams_of(log: list[OnStream]) -> dict[str, int]:
    """Each stream of the log and its last version."""
    last: dict[str, int] = {}
    for item in log:
        last[item.stream_id] = item.version
    return last


def without_versions(stats: dict, members: dict) -> tuple[dict, dict]:
    stats = {k: v for k, v in stats.items() if k not in ("room_version", "shard_versions")}
    return stats, {key: {k: v for k, v in e.items() if k not in MARKS} for key, e in members.items()}


def membership(stats: dict, members: dict) -> dict:
    """The figures that do not depend on how the room streams interleave: who is in and in which
    role, and what is counted per event. (Listener-seconds, windows and settling accrue between
    consecutive events, so they follow the partition's order.)"""
    same = {k: stats[k] for k in ("title", "host", "started_at", "ended_at", "roster", "listeners")}
    same |= {k: stats[k] for k in ("joins", "requests", "approved", "waits")}
    same["voices"] = sorted(stats["voices"])
    roster = ms.Roster(*stats["roster"])
    # Each member as membership answers for them: their role as `role_of` gives it (once the Space
    # is over nobody is in, whatever role a join folded after the end left in the entry).
    same["members"] = {
        key: ms.Member(*entry["member"])._replace(role=ms.role_of(roster, ms.Member(*entry["member"])))
        for key, entry in members.items()
    }
    return same


def test_the_history_reaches_every_shard_and_ends_with_voices_and_listeners_in():
    """Not an invariant: proof that the history is what the tests here are about."""
    log = on_streams(S, history(ended=False), SHARDS)
    assert set(streams_of(log)) == {space_stream(S)} | {listener_shard_stream(S, k) for k in range(SHARDS)}
    assert streams_of(log)[space_stream(S)] > max(
        v for s, v in streams_of(log).items() if s != space_stream(S)
    )
    stats, _, _ = fold_one_stream(history(ended=False))
    assert stats["listeners"] > 10 and len(stats["voices"]) == 5  # the host, three speakers, a co-host


def test_in_the_rooms_order_the_sharded_fold_is_the_single_stream_fold():
    for events in (SCRIPT_AT, history()):
        whole, whole_members, whole_windows = fold_one_stream(events)
        log = on_streams(S, events, SHARDS)
        stats, members, windows = fold(log)
        assert without_versions(stats, members) == without_versions(whole, whole_members)
        assert windows == whole_windows
        last = streams_of(log)
        assert stats["room_version"] == last.pop(space_stream(S))
        assert stats["shard_versions"] == last
        end = whole["ended_at"]
        assert snapshot(stats, end, final=True).room_version == room_version(stats, space_stream(S))
        assert (
            snapshot(stats, end, final=True).peak_listeners == snapshot(whole, end, final=True).peak_listeners
        )


def test_any_merge_of_the_streams_with_redeliveries_folds_every_event_once():
    for ended in (False, True):
        events = history(ended=ended)
        expected = membership(*fold_one_stream(events)[:2])
        log = on_streams(S, events, SHARDS)
        for seed in range(20):
            rng = random.Random(seed)
            stats, members = empty(S, MINUTE), {}
            done: list[OnStream] = []
            for item in merged(log, rng):
                fold([item], stats, members)
                done.append(item)
                if rng.random() < 0.3:  # a redelivery, of any stream
                    fold([rng.choice(done)], stats, members)
            assert membership(stats, members) == expected, (ended, seed)
            last = streams_of(log)
            assert (stats["room_version"], stats["shard_versions"]) == (last.pop(space_stream(S)), last)
            before = copy.deepcopy((stats, members))
            fold(merged(log, rng), stats, members)  # the whole log again: every record a duplicate
            assert (stats, members) == before, seed


def test_old_figures_take_shard_events_from_version_1_and_space_events_after_their_room_version():
    stats, members, _ = fold_one_stream(history(ended=False)[:3])  # created, started, the host in
    del stats["shard_versions"]  # a value from before shards
    assert room_version(stats, listener_shard_stream(S, 1)) == 0
    at = T0 + 1000
    apply_room(stats, members, _joined("ann"), at, 1, listener_shard_stream(S, 1))
    assert stats["listeners"] == 1 and stats["shard_versions"] == {listener_shard_stream(S, 1): 1}
    apply_room(stats, members, ev.SpeakRequested(space_id=S, user_id="ann"), at, 3, space_stream(S))
    assert stats["requests"] == 0  # the Space stream is at 3: a duplicate
    apply_room(stats, members, ev.SpeakRequested(space_id=S, user_id="ann"), at, 4, space_stream(S))
    assert stats["requests"] == 1 and stats["room_version"] == 4


def test_a_member_written_by_a_shard_event_is_not_mistaken_for_the_space_streams_same_version():
    """A member entry remembers the event that wrote it, so that the event folded again after a
    crash sees the entry as it was (MembersAsOf). Versions alone collide across streams."""
    shard = listener_shard_stream(S, 0)
    stats, members = empty(S, MINUTE), {}
    apply_room(stats, members, ev.SpaceCreated(space_id=S, host_user_id="host"), T0, 1, space_stream(S))
    apply_room(stats, members, ev.SpaceStarted(space_id=S), T0, 2, space_stream(S))
    for version, user in enumerate(["host", "bo", "ann"], start=1):
        role = rt.ROLE_HOST if user == "host" else rt.ROLE_LISTENER
        apply_room(stats, members, _joined(user, role), T0 + version, version, shard)
    # ann's entry was written by shard version 3; the Space stream's version 3 is about her too.
    apply_room(stats, members, ev.SpeakerAdded(space_id=S, user_id="ann"), T0 + 10, 3, space_stream(S))
    assert members[f"{S}|ann"]["member"][0] == rt.ROLE_SPEAKER
    assert stats["listeners"] == 1 and sorted(stats["voices"]) == ["ann", "host"]


def test_a_crash_between_writing_members_and_the_figures_folds_a_shard_event_once():
    log = on_streams(S, history(), SHARDS)
    whole, whole_members, _ = fold(log)
    for crash_at in range(len(log)):
        stats, members = empty(S, MINUTE), {}
        for n, item in enumerate(log):
            if n == crash_at:  # the members' write reached the changelog, the figures' did not
                before = copy.deepcopy(stats)
                fold([item], stats, members)
                stats = before
            fold([item], stats, members)
        assert stats == whole, f"crash at {item.stream_id} v{item.version}"
        assert without_versions(stats, members)[1] == without_versions(whole, whole_members)[1]


# The processor: which events it folds, holds or drops, per stream.


class Partition:
    """The room topic's partition as `_fold_room` reads it, recording acks."""

    enable_acks = False

    def __init__(self, log: list[OnStream]):
        self.records = [_record(item) for item in log]
        self.acked: set[int] = set()

    def noack(self):
        return self

    async def events(self):
        for offset, value in enumerate(self.records):
            yield SimpleNamespace(value=value, message=SimpleNamespace(offset=offset, tp=None))

    async def ack(self, event) -> None:
        self.acked.add(event.message.offset)


def _record(item: OnStream) -> bytes:
    return wrap(
        item.payload,
        producer="room",
        stream_id=item.stream_id,
        version=item.version,
        space_id=S,
        occurred_at=datetime.fromtimestamp(item.at, UTC),
        causation=Causation("host", "c", "c"),
    ).SerializeToString()


class Topic:
    def __init__(self):
        self.sent: list[dict] = []

    async def send(self, **record) -> None:
        self.sent.append(record)


def processor() -> AnalyticsStreams:
    """The analytics processor, its tables plain dicts (a faust table is written only inside a
    stream) and its output topics lists."""
    streams = AnalyticsStreams(PodiumSettings(), window_seconds=MINUTE)
    streams.stats, streams.members = {}, {}
    streams.out_stats, streams.out_windows = Topic(), Topic()
    return streams


async def test_the_processor_folds_every_streams_events_and_holds_none():
    events = history()
    log = merged(on_streams(S, events, SHARDS), random.Random(7))
    streams, partition = processor(), Partition(log + log[: len(log) // 2])  # and half again
    await streams._fold_room(partition)
    assert not streams._held_since and streams.gate.held_count == 0
    assert partition.acked == set(range(len(partition.records)))
    stats, members = streams.stats[S], streams.members
    assert stats == fold(log)[0]
    assert membership(stats, members) == membership(*fold_one_stream(events)[:2])


async def test_a_hole_in_one_shard_holds_that_shard_only_until_it_fills():
    log = merged(on_streams(S, history(), SHARDS), random.Random(3))
    shard = listener_shard_stream(S, 2)
    missing = next(i for i, item in enumerate(log) if item.stream_id == shard and item.version == 2)
    late = log[:missing] + log[missing + 1 :]
    streams, partition = processor(), Partition(late)
    await streams._fold_room(partition)
    held = [i for i, item in enumerate(late) if item.stream_id == shard and item.version > 2]
    assert held and set(streams._held_since) == {("room", shard)}
    assert partition.acked == set(range(len(late))) - set(held)  # every other stream went on
    assert room_version(streams.stats[S], shard) == 1
    assert streams.stats[S]["room_version"] == streams_of(log)[space_stream(S)]

    partition.records = [_record(log[missing])]  # the hole fills
    await streams._fold_room(partition)
    assert not streams._held_since and streams.gate.held_count == 0
    stats = streams.stats[S]
    assert room_version(stats, shard) == streams_of(log)[shard]
    assert membership(stats, streams.members) == membership(*fold_one_stream(history())[:2])
