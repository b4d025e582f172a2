"""The Space at a moment, rebuilt from a log whose room events are on the Space's stream and its
listener shards (ADR 0012), as `podium state` reads it: the same Space as on one stream, and its
version the Space's own stream's.

Histories come from the room's and moderation's own deciders (tests/unit/membership/test_one_fold.py),
each event a millisecond after the one before; the room's are laid out on streams
(tests/support/sharded_log.py) and read, in the room's order or a random interleaving, with events
delivered more than once, through `libs.events.tail.in_log_order`.
"""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.domain.streams import space_stream
from libs.events.envelope import Causation, wrap
from libs.events.tail import in_log_order
from libs.events.topics import ROOM_EVENTS
from services.replay.domain.space_at import SpaceAt, merge_by_time, state_at
from tests.support.sharded_log import merged, on_streams
from tests.unit.libs.test_sharded_history import redelivered
from tests.unit.membership.test_one_fold import history, steps
from tests.unit.room.given import NOW, SPACE
from tests.unit.room.test_invariants import limits, started


def _timed(sequence, room_limits, start):
    """The room's and moderation's events, each a millisecond after the one before, by topic."""
    log = history(sequence, room_limits, start)
    timed = [(m.event, NOW + timedelta(milliseconds=n), m.topic) for n, m in enumerate(log)]
    room = [(e, at) for e, at, topic in timed if topic == ROOM_EVENTS.name]
    moderation = [(e, at) for e, at, topic in timed if topic != ROOM_EVENTS.name]
    return room, moderation


def _read(log, rng: random.Random):
    """`log`'s events delivered as a log holds them, read each once (`in_log_order`)."""
    cause = Causation("someone", "c", "c")
    return in_log_order(
        (
            wrap(item.payload, producer="room", stream_id=item.stream_id, version=item.version,
                 space_id=SPACE, occurred_at=item.at, causation=cause),
            item.payload,
        )
        for item in redelivered(log, rng)
    )  # fmt: skip


def _same_space(got: SpaceAt, one_stream: SpaceAt) -> None:
    assert (got.exists, got.status, got.title, got.host_user_id) == (
        one_stream.exists,
        one_stream.status,
        one_stream.title,
        one_stream.host_user_id,
    )
    assert got.roles == one_stream.roles and got.listener_count == one_stream.listener_count
    assert (got.muted, got.hands) == (one_stream.muted, one_stream.hands)


@settings(max_examples=60, deadline=None)
@given(steps, limits, started, st.sampled_from([2, 4, 8]), st.integers(0, 2**32), st.booleans())
def test_a_sharded_space_at_any_moment_is_the_one_stream_space_with_its_own_streams_version(
    sequence, room_limits, start, shards, seed, interleaved
):
    room, moderation = _timed(sequence, room_limits, start)
    log = on_streams(SPACE, room, shards)
    rng = random.Random(seed)
    got = _read(merged(log, rng) if interleaved else log, rng)
    assert len(got) == len(room)
    events = merge_by_time(got, moderation)
    one_stream = merge_by_time(room, moderation)
    for cut in sorted({rng.randrange(len(events)) for _ in range(4)} | {len(events) - 1}):
        moment = events[cut][1]
        space = state_at(events, moment)
        _same_space(space, state_at(one_stream, moment))
        own = [i.version for i in log if i.stream_id == space_stream(SPACE) and i.at <= moment]
        assert space.room_version == own[-1]  # not the count of room events: shards have their own
    assert state_at(one_stream, moment).room_version == len(room)  # one stream: each event is a version
