"""Reading a Space whose room events are on several streams (ADR 0012's listener shards): each event
once, each stream in its version order, the log's order across streams, however the streams are
interleaved and however often an event is delivered. `podium events export` writes each event once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.domain.streams import listener_shard_stream, space_stream
from libs.events.envelope import Causation, EventEnvelope, wrap
from libs.events.export import Seen
from libs.events.tail import as_line, in_log_order
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_types_pb2 as rt
from services.replay.domain.space_at import merge_by_time
from tests.support.sharded_log import OnStream, merged, on_streams

SPACE = "sp-1"
T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SHARDS = 4
LISTENERS = ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal")


def _room() -> list:
    """A Space's room events in the room's order, each a second after the one before."""
    events = [
        ev.SpaceCreated(space_id=SPACE, host_user_id="host", title="sharded"),
        ev.SpaceStarted(space_id=SPACE, host_user_id="host"),
        ev.ParticipantJoined(space_id=SPACE, user_id="host", role=rt.ROLE_HOST),
        *(ev.ParticipantJoined(space_id=SPACE, user_id=u, role=rt.ROLE_LISTENER) for u in LISTENERS),
        ev.SpeakRequested(space_id=SPACE, user_id="ann"),
        ev.SpeakRequestApproved(space_id=SPACE, user_id="ann"),
        ev.SpeakerAdded(space_id=SPACE, user_id="ann"),
        ev.ParticipantLeft(space_id=SPACE, user_id="ben", reason=ev.LEAVE_REASON_LEFT),
        ev.ParticipantLeft(space_id=SPACE, user_id="cat", reason=ev.LEAVE_REASON_REMOVED),
        ev.ParticipantJoined(space_id=SPACE, user_id="ben", role=rt.ROLE_LISTENER),
        ev.CoHostAdded(space_id=SPACE, user_id="dan"),
        ev.ParticipantLeft(space_id=SPACE, user_id="eve", reason=ev.LEAVE_REASON_LEFT),
        ev.SpaceEnded(space_id=SPACE),
    ]
    return [(event, T + timedelta(seconds=n)) for n, event in enumerate(events)]


ROOM = _room()
LOG = on_streams(SPACE, ROOM, SHARDS)


def enveloped(log: list[OnStream]) -> dict[tuple[str, int], tuple[EventEnvelope, object]]:
    """Each event of `log` as the room publishes it, by (stream, version): one envelope (one event id)
    however often it is delivered."""
    return {
        (item.stream_id, item.version): (
            wrap(
                item.payload,
                producer="room",
                stream_id=item.stream_id,
                version=item.version,
                space_id=SPACE,
                occurred_at=item.at,
                causation=Causation("someone", "c", "c"),
            ),
            item.payload,
        )
        for item in log
    }


def redelivered(order: list[OnStream], rng: random.Random, rate: float = 0.3) -> list[OnStream]:
    """`order` as an at-least-once log holds it: now and then an event already delivered comes again."""
    out: list[OnStream] = []
    for n, item in enumerate(order):
        out.append(item)
        if rng.random() < rate:
            out.append(rng.choice(order[: n + 1]))
    return out


def read(order: list[OnStream], rng: random.Random) -> list[tuple[EventEnvelope, object]]:
    events = enveloped(LOG)
    return [events[(item.stream_id, item.version)] for item in redelivered(order, rng)]


def where(items) -> list[tuple[str, int]]:
    return [(item.stream_id, item.version) for item in items]


def test_the_history_is_on_the_spaces_stream_and_several_shards_whose_versions_overlap():
    streams = {item.stream_id for item in LOG}
    assert space_stream(SPACE) in streams and len(streams) >= 4
    assert sum(1 for item in LOG if item.version == 1) == len(streams)  # every stream starts at 1


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_in_the_rooms_order_every_event_comes_back_once_and_in_that_order(seed):
    got = in_log_order(read(LOG, random.Random(seed)))
    assert where(got) == where(LOG)
    assert [(e.payload, e.at) for e in got] == ROOM  # what one stream would have given


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32))
def test_any_interleaving_of_the_streams_is_read_in_its_log_order_each_event_once(seed):
    rng = random.Random(seed)
    order = merged(LOG, rng)
    got = in_log_order(read(order, rng))
    assert where(got) == where(order)  # nothing lost, no repeat, each stream by version
    assert [(m, at) for m, at, *_ in merge_by_time(got)] == ROOM  # and in time, the room's order


def test_an_event_that_overtook_the_one_before_it_waits_for_it_and_a_gap_never_filled_still_counts():
    events = enveloped(LOG)
    shard = listener_shard_stream(SPACE, 1)
    ones = [item for item in LOG if item.stream_id == shard]
    assert len(ones) >= 3
    first, second, third = (events[(shard, item.version)] for item in ones[:3])
    created = events[(space_stream(SPACE), 1)]
    got = in_log_order([created, second, first, created, second])
    assert where(got) == [(space_stream(SPACE), 1), (shard, 1), (shard, 2)]
    lost_first = in_log_order([created, third, second])  # version 1 never comes
    assert where(lost_first) == [(space_stream(SPACE), 1), (shard, 2), (shard, 3)]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_the_export_writes_each_event_of_every_stream_once(seed):
    rng = random.Random(seed)
    order = merged(LOG, rng)
    seen = Seen()
    written = [envelope for envelope, _ in read(order, rng) if seen.first_time(envelope)]
    assert [(e.stream_id, e.stream_version) for e in written] == where(order)


def test_a_tail_line_names_the_shard_whose_version_it_shows():
    events = enveloped(LOG)
    shard = next(item for item in LOG if item.stream_id != space_stream(SPACE))
    k = shard.stream_id.rsplit("/l", 1)[1]
    assert f" {SPACE}/l{k} v{shard.version} ParticipantJoined " in as_line(
        *events[(shard.stream_id, shard.version)]
    )
    assert f" {SPACE} v1 SpaceCreated " in as_line(*events[(space_stream(SPACE), 1)])
